"""Write an experiment's results: JSON + Parquet, plots and an HTML report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mds.simulate.data import PoolArrays
from mds.simulate.replay import SimResult


def embedding_map_for(result: SimResult, arrays: PoolArrays, out: Path, *, seed: int | None = None,
                      budget: str | None = None, strategies: tuple[str, ...] = ("mds", "random"),
                      method: str = "pca") -> Path:
    """Embedding map of the pool with one seed's picks of each strategy (all rounds) marked."""
    from mds.report.plots import embedding_map

    df = result.picks_frame()
    seed = int(df.seed.iloc[0]) if seed is None else seed
    budget = str(df.budget.iloc[0]) if budget is None else budget
    pool = arrays.pool
    pos = {int(r): i for i, r in enumerate(pool)}
    picks = {}
    for s in strategies:
        d = df[(df.seed == seed) & (df.budget == budget) & (df.strategy == s)].sort_values(["round", "pick_order"])
        if len(d):
            picks[s] = [pos[int(r)] for r in d.row]
    cats = [arrays.meta[r]["distortion"] for r in pool]
    return embedding_map(arrays.pooled()[pool], cats, picks, out, method=method,
                         title=f"target pool, seed {seed}, budget {budget}")


def write_outputs(result: SimResult, arrays: PoolArrays, out: str | Path, *, title: str = "Oracle-replay experiment",
                  notes: list[str] = ()) -> dict[str, Path]:
    """Everything of one experiment into ``out``: results files, figures, ``report.html``."""
    from mds.report.html import Section, write_html_report
    from mds.report.plots import distortion_counts, error_ratio_bars, learning_curves
    from mds.report.summary import error_ratio_table, gain_table, summary_tables

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = result.save(out)
    df = result.frame()
    figs = {
        "curves": learning_curves(df, out / "learning_curves.png", metric="test_srcc",
                                  title="target test SRCC (mean ± std over seeds)"),
        "curves_plcc": learning_curves(df, out / "learning_curves_plcc.png", metric="test_plcc"),
        "error_ratio": error_ratio_bars(df, out / "error_ratio.png"),
        "distortions": distortion_counts(result.picks_frame(), out / "picked_distortions.png"),
    }
    method = result.config.get("embedding_map", "pca")
    strategies = tuple(s for s in ("mds", "random", "difficulty", "diversity") if s in set(df.strategy))
    figs["map"] = embedding_map_for(result, arrays, out / "embedding_map.png", strategies=strategies[:2],
                                    method=method)
    paths.update(figs)
    sections = [
        Section("Learning curves", "Target test SRCC / PLCC after each round's fine-tuning; round 0 is the base "
                "model trained on the source domain. Bands: ± one standard deviation over seeds.",
                images=[figs["curves"], figs["curves_plcc"]]),
    ]
    if {"mds", "random"} <= set(df.strategy):
        sections.append(Section("MDS − random at equal budget (test SRCC)", "Paired per seed.",
                                tables=[gain_table(df)]))
    sections += [
        Section("Difficulty of the picks", "Mean absolute error of the current model on the picked videos divided "
                "by its mean error on the whole remaining pool (1 = no better than chance).",
                tables=[error_ratio_table(df)], images=[figs["error_ratio"]]),
        Section("Embedding map", "Pooled CLIP vectors of the target pool in 2-D, coloured by distortion; picks "
                "of one seed over all rounds are circled and numbered in pick order.", images=[figs["map"]]),
        Section("Distortions picked", images=[figs["distortions"]]),
        Section("Per-round means", tables=[summary_tables(df)]),
        Section("Configuration", "```" + __import__("json").dumps(result.config, indent=1) + "```"),
    ]
    paths["report"] = write_html_report(out / "report.html", title, sections, notes=list(notes))
    return paths


def headline(result: SimResult) -> dict:
    """The two outcome figures: MDS − random test-SRCC gain and the MDS error ratio (last round / all rounds)."""
    from mds.report.summary import gain_table

    df = result.frame()
    out: dict = {}
    if {"mds", "random"} <= set(df.strategy):
        g = gain_table(df)
        last = g[g["round"] == g["round"].max()]
        out["gain_by_round"] = g.to_dict(orient="records")
        out["gain_last_round"] = last.to_dict(orient="records")
    for s in set(df.strategy):
        d = df[(df.strategy == s) & (df["round"] >= 1)]["error_ratio"].to_numpy(dtype=float)
        out.setdefault("error_ratio", {})[s] = {"mean": float(np.mean(d)), "std": float(np.std(d, ddof=1))
                                                if len(d) > 1 else float("nan")}
    return out
