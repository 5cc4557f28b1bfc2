"""``mds demo``: the whole loop offline on the small demo pool, MDS against random at equal budget.

1. build (or reuse) the demo pool from packaged material;
2. two projects over the same pool, ``arm-mds`` and ``arm-random`` (same seed, same base model);
3. in each: train the CPU default base model on the source domain, then ``rounds`` rounds of
   start (score → failure predictor → embed → select → hand to annotators) and finish
   (simulated annotators → MOS → active fine-tuning → test evaluation → report);
4. print per-round target-test SRCC of both arms and write ``OUT/report.html``.

With a Label Studio configured in mds.toml (``[labelstudio] url``), the MDS arm's batches go
through it and the simulated raters answer through its API; otherwise they answer locally.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mds.config import Settings, load_settings, write_project_file

Echo = Callable[[str], None] | None


def _arm_project(root: Path, pool_manifest: Path, ls_section: dict[str, Any]) -> Settings:
    from mds.db import migrate
    from mds.pool.manifest import import_manifest

    root.mkdir(parents=True, exist_ok=True)
    write_project_file(root, "sqlite:///mds.db")
    settings = load_settings(project_dir=root)
    if ls_section:
        settings.raw = {**settings.raw, "labelstudio": ls_section}
    migrate.upgrade(settings.db_url)
    summary = import_manifest(settings.db_url, pool_manifest)
    if summary.failed:
        from mds.errors import PoolError

        raise PoolError(f"{summary.failed} demo videos could not be ingested into {settings.db_url}")
    return settings


def run_demo(
    out: str | Path = "demo-out",
    *,
    size: str = "small",
    rounds: int = 3,
    budget: str = "5%",
    seed: int = 0,
    clip_model: str = "ViT-S-32",
    clip_pretrained: str | None = None,
    use_label_studio: bool = True,
    arms: tuple[str, ...] = ("mds", "random"),
    finetune: dict[str, Any] | None = None,
    failure: dict[str, Any] | None = None,
    echo: Echo = print,
) -> dict[str, Any]:
    """Run the demo; returns the per-round table and paths (also written to ``OUT/demo.json``)."""
    from mds.demo.pool import build_demo_pool
    from mds.rounds import RoundConfig, finish_round, round_status, start_round

    say = echo or (lambda _m: None)
    t0 = time.perf_counter()
    out = Path(out).resolve()
    outer = load_settings()
    ls_section = outer.section("labelstudio") if use_label_studio else {}
    import os

    if use_label_studio and os.environ.get("MDS_LABEL_STUDIO_URL") and not ls_section:
        ls_section = {"url": os.environ["MDS_LABEL_STUDIO_URL"]}
    if not clip_pretrained:
        say(f"CLIP encoder: {clip_model} with RANDOM weights (no pretrained weights offline; "
            "pass --clip-pretrained PATH to use real ones): the diversity term sees low-level appearance only")
    say(f"[1/4] demo pool ({size}) in {out / 'pool'} ...")
    pool = build_demo_pool(out / "pool", size, seed=seed, import_db=False)
    t_pool = time.perf_counter() - t0
    say(f"      {len(pool.videos)} videos {pool.counts()} ({t_pool:.0f} s)")
    timings: dict[str, float] = {"pool": round(t_pool, 1)}
    table: dict[str, list[dict[str, Any]]] = {}
    status: dict[str, list[dict[str, Any]]] = {}
    for ai, arm in enumerate(arms):
        ta = time.perf_counter()
        settings = _arm_project(out / f"arm-{arm}", pool.manifest, ls_section if arm == "mds" else {})
        via_ls = bool(ls_section) and arm == "mds"
        cfg = RoundConfig(strategy=arm, budget=budget, seed=seed, evaluator="cpu-default", clip_model=clip_model,
                          clip_pretrained=clip_pretrained, clip_frames=4,
                          labels="labelstudio" if via_ls else "simulated", simulate_raters=via_ls,
                          oracle=str(pool.root), ratings_per_video=5, finetune=dict(finetune or {}),
                          failure=dict(failure or {}))
        say(f"[{2 + ai}/4] arm '{arm}': {rounds} rounds of {budget} of the pool"
            + (" through Label Studio" if via_ls else " with simulated annotators"))
        rows = []
        sts = []
        for r in range(1, rounds + 1):
            existing = _existing_round(settings.db_url, r)
            if existing != "done":
                if existing is None or existing in ("created", "scored", "embedded", "selected"):
                    start_round(settings.db_url, cfg, settings=settings)
                finish_round(settings.db_url, r, settings=settings)
            st = round_status(settings.db_url, r)
            m = st["metrics"]
            row = {"round": r, "base_srcc": m.get("base", {}).get("target_test", {}).get("srcc"),
                   "srcc": m.get("finetuned", {}).get("target_test", {}).get("srcc"),
                   "plcc": m.get("finetuned", {}).get("target_test", {}).get("plcc"),
                   "error_ratio": m.get("picks", {}).get("error_ratio"), "k": st["budget"]}
            rows.append(row)
            sts.append(st)
            say(f"      round {r}: picked {row['k']}, target test SRCC {row['base_srcc']:.3f} -> {row['srcc']:.3f}"
                + (f", picks' base error {row['error_ratio']:.2f}x pool" if row["error_ratio"] else ""))
        table[arm] = rows
        status[arm] = sts
        timings[f"arm-{arm}"] = round(time.perf_counter() - ta, 1)
    timings["total"] = round(time.perf_counter() - t0, 1)
    report = _write_report(out, table, status, timings, clip_pretrained, clip_model, size, budget, seed)
    _print_table(table, say)
    say(f"report: {report}   (total {timings['total']:.0f} s)")
    result = {"table": table, "timings_s": timings, "report": str(report), "pool": str(pool.root),
              "clip_random_init": not clip_pretrained}
    (out / "demo.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def _existing_round(db_url: str, number: int) -> str | None:
    from sqlalchemy import select

    from mds.db.engine import session_scope
    from mds.db.models import Round

    with session_scope(db_url) as s:
        return s.scalar(select(Round.status).where(Round.number == number))


def _print_table(table: dict[str, list[dict[str, Any]]], say: Callable[[str], None]) -> None:
    arms = list(table)
    say("")
    say("target test SRCC after each round (round 0 = base model trained on the source domain)")
    say("round  " + "  ".join(f"{a:>8}" for a in arms) + ("   MDS-random" if {"mds", "random"} <= set(arms) else ""))
    first = table[arms[0]][0]["base_srcc"]
    say(f"{0:>5}  " + "  ".join(f"{first:8.3f}" for _ in arms))
    for i in range(len(table[arms[0]])):
        vals = [table[a][i]["srcc"] for a in arms]
        line = f"{i + 1:>5}  " + "  ".join(f"{v:8.3f}" for v in vals)
        if {"mds", "random"} <= set(arms):
            line += f"   {table['mds'][i]['srcc'] - table['random'][i]['srcc']:+.3f}"
        say(line)


def _write_report(out: Path, table, status, timings, clip_pretrained, clip_model, size, budget, seed) -> Path:
    import pandas as pd

    from mds.report.html import Section, write_html_report
    from mds.report.plots import _plt
    from mds.rounds.report import _embedding_map

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    colors = {"mds": "#d62728", "random": "#7f7f7f"}
    for arm, rows in table.items():
        xs = [0] + [r["round"] for r in rows]
        ys = [rows[0]["base_srcc"]] + [r["srcc"] for r in rows]
        ax.plot(xs, ys, marker="o", label=arm, color=colors.get(arm))
    ax.set_xlabel("round")
    ax.set_ylabel("target test SRCC")
    ax.set_xticks(range(len(next(iter(table.values()))) + 1))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    curve = out / "demo_srcc.png"
    fig.savefig(curve, dpi=110)
    plt.close(fig)
    sections = [Section("Target test SRCC by round", "One seed; `mds simulate` gives means over seeds.",
                        tables=[pd.DataFrame([{"arm": a, **r} for a, rows in table.items() for r in rows])],
                        images=[curve])]
    if "mds" in status:
        s = load_settings(project_dir=out / "arm-mds")
        m = _embedding_map(s.db_url, s.data_dir, out / "demo_map.png")
        if m is not None:
            sections.append(Section("MDS picks on the embedding map", "Pooled CLIP vectors of the target pool "
                                    "(PCA), coloured by distortion; all rounds' picks circled.", images=[m]))
        for st in status["mds"]:
            sections.append(Section(f"MDS round {st['number']}: picks", tables=[st["selection"]]))
    sections.append(Section("Timings (s)", tables=[[timings]]))
    notes = [f"demo pool '{size}', seed {seed}, budget {budget} per round"]
    if not clip_pretrained:
        notes.append(f"CLIP encoder {clip_model} is randomly initialised (no pretrained weights offline): "
                     "the diversity term reflects low-level appearance, not semantics.")
    return write_html_report(out / "report.html", "mds demo: MDS vs random selection", sections, notes=notes)
