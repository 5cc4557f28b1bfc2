"""Oracle replay: strategies × budgets × seeds × rounds on a pool whose labels are known.

One *arm* is (seed, strategy, budget). Per seed the base model f0 is trained on the
labelled source set; every arm of that seed starts from the same f0. Each round:

1. difficulty: g is retrained on everything labelled so far with *out-of-sample*
   errors (pairs within a dataset), then scores the remaining pool (only for
   strategies that use it). Earlier picks carry the error of the model that was in
   use when they were selected (its prediction stored before any fine-tuning on
   their labels); the source set carries the current model's errors, or with
   ``source_errors = "crossfit"`` out-of-fold errors of the base architecture;
2. selection: ``budget`` of the remaining pool with the strategy (MDS: greedy
   g + λ · mean Chamfer distance to the picks; earlier rounds' picks count as already
   selected in the diversity term);
3. labels: the picks' MOS from the simulated annotator panel (mean of
   ``ratings_per_video`` integer ratings) or the exact pseudo-MOS (``labels="oracle"``);
4. fine-tuning: a LoRA on f0 trained on the source set plus all picks so far
   (batches never mix datasets); the result is the next round's model.

Per round it records test SRCC/PLCC (target test split, and the source test split
to watch forgetting), the current model's mean absolute error on the picks and on
the whole remaining pool (and their ratio), the failure-identification SRCC of the
model on the picks (lower = harder picks), and the mean pairwise Chamfer distance of
the picks (diversity), and Spearman(g, true error) on the remaining pool (how well g
ranks where the model in use fails).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mds.simulate.config import SimConfig
from mds.simulate.data import PoolArrays, load_pool_arrays

ProgressFn = Callable[[str, int, int], None]


@dataclass
class SimResult:
    """Per-round records, per-pick records and the configuration that produced them."""

    config: dict[str, Any]
    rounds: list[dict[str, Any]] = field(default_factory=list)
    picks: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rounds)

    def picks_frame(self):
        import pandas as pd

        return pd.DataFrame(self.picks)

    def save(self, out: str | Path) -> dict[str, Path]:
        """Write ``results.json``, ``rounds.parquet``, ``picks.parquet`` into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "results.json", "rounds": out / "rounds.parquet", "picks": out / "picks.parquet"}
        paths["json"].write_text(json.dumps({"config": self.config, "info": self.info, "rounds": self.rounds,
                                             "picks": self.picks}, indent=1, default=_jsonable))
        self.frame().to_parquet(paths["rounds"], index=False)
        self.picks_frame().to_parquet(paths["picks"], index=False)
        return paths

    @classmethod
    def load(cls, path: str | Path) -> SimResult:
        p = Path(path)
        if p.is_dir():
            p = p / "results.json"
        d = json.loads(p.read_text())
        return cls(config=d["config"], rounds=d["rounds"], picks=d["picks"], info=d.get("info", {}))


def _jsonable(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _corr(pred: np.ndarray, mos: np.ndarray) -> tuple[float, float]:
    from mds.metrics import correlations

    if len(pred) < 3:
        return float("nan"), float("nan")
    c = correlations(pred, mos, fit=len(pred) > 4)  # the 4-parameter fit needs more points than parameters
    return c.srcc, c.plcc


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def mean_pairwise_chamfer(frames: np.ndarray) -> float:
    """Mean pairwise Chamfer distance of a set of frame sets (the Div term of MDS-VQA)."""
    from selection.distances import FrameBank

    n = len(frames)
    if n < 2:
        return float("nan")
    bank = FrameBank.from_list(frames)
    tot = 0.0
    for i in range(n - 1):
        tot += float(bank.distances_from(i)[i + 1 :].sum())
    return tot / (n * (n - 1) / 2)


class _Labeller:
    """Labels of picked rows: the panel's mean rating or the exact pseudo-MOS."""

    def __init__(self, arrays: PoolArrays, mode: str, n: int) -> None:
        self.a, self.mode, self.n = arrays, mode, n

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if self.mode == "oracle":
            return self.a.mos[rows].copy()
        out = []
        for r in rows:
            ratings = self.a.panel.rate(self.a.names[r], float(self.a.mos[r]), self.n)
            out.append(float(np.mean([s for _, s in ratings])))
        return np.array(out)


def source_errors(a: PoolArrays, cfg: SimConfig, base: Any, seed: int) -> np.ndarray | None:
    """g's supervision on the source set for one seed: cross-fitted errors (or None for in-sample)."""
    from mds.errors import ConfigError
    from mds.learning.arrays import crossfit_predictions, group_folds

    if cfg.source_errors != "crossfit":
        return None
    src = a.source
    fold_of = None
    if cfg.crossfit_by:
        missing = [a.names[i] for i in src if cfg.crossfit_by not in a.meta[i]]
        if missing:
            raise ConfigError(f"crossfit_by: {missing[0]} has no metadata key {cfg.crossfit_by!r}")
        fold_of = group_folds([a.meta[i][cfg.crossfit_by] for i in src], cfg.crossfit_folds, seed)
    oof = crossfit_predictions(a.X[src], a.mos[src], a.datasets[src], folds=cfg.crossfit_folds, seed=seed,
                               fold_of=fold_of, **cfg.base)
    return np.abs(oof - a.mos[src])


def _difficulty(current: Any, a: PoolArrays, cfg: SimConfig, rows: np.ndarray, err: np.ndarray,
                remaining: np.ndarray, seed: int) -> np.ndarray:
    """g trained on ``err`` of ``rows`` (``cfg.g_ensemble`` seeds, scores averaged) on the remaining pool."""
    from mds.learning import fit_failure_predictor, predict_difficulty

    out = np.zeros(len(remaining))
    for m in range(cfg.g_ensemble):
        g = fit_failure_predictor(current, a.X[rows], err, a.datasets[rows], seed=seed + 7 * m, **cfg.failure)
        out += predict_difficulty(g, a.X[remaining])
    return out / cfg.g_ensemble


def run_arm(
    a: PoolArrays, cfg: SimConfig, *, seed: int, strategy: str, budget: str, base: Any,
    labeller: Callable[[np.ndarray], np.ndarray], tick: Callable[[], None] | None = None,
    source_err: np.ndarray | None = None,
) -> tuple[list[dict], list[dict]]:
    """Run ``cfg.rounds`` rounds of one (seed, strategy, budget) arm from the base model ``base``.

    ``source_err``: fixed (e.g. cross-fitted) errors of the source rows for g; ``None``
    uses the current model's in-sample errors on them each round.
    """
    from mds.learning import finetune_base, predict_quality
    from mds.learning.arrays import merge_finetuned
    from selection.api import resolve_budget, select

    src = a.source
    pool = a.pool
    test, stest = a.target_test, a.source_test
    k = resolve_budget(budget, len(pool))
    lab_rows = list(src)
    lab_y = list(a.mos[src])  # source labels are known (the labelled source set)
    # out-of-sample error of every pick: |prediction of the model in use at its selection - its label|
    pick_err: list[float] = []
    picked: list[int] = []
    model = base
    rounds: list[dict] = []
    picks: list[dict] = []

    def evaluate(m: Any, r: int, extra: dict) -> dict:
        t_srcc, t_plcc = _corr(predict_quality(m, a.X[test]), a.mos[test])
        s_srcc, s_plcc = _corr(predict_quality(m, a.X[stest]), a.mos[stest]) if len(stest) >= 3 else (np.nan, np.nan)
        return {"seed": seed, "strategy": strategy, "budget": budget, "k": k, "round": r,
                "n_labelled_target": len(picked), "test_srcc": t_srcc, "test_plcc": t_plcc,
                "source_test_srcc": s_srcc, "source_test_plcc": s_plcc, **extra}

    rounds.append(evaluate(model, 0, {}))
    for r in range(1, cfg.rounds + 1):
        remaining = np.array([i for i in pool if i not in set(picked)])
        if len(remaining) < k:
            break
        current = model if r == 1 else merge_finetuned(model)
        difficulty = None
        if strategy in ("mds", "difficulty"):
            lr = np.array(lab_rows)
            err = np.abs(predict_quality(current, a.X[lr]) - np.array(lab_y))  # in-sample (fit) errors
            if source_err is not None:
                err[: len(src)] = source_err
            if cfg.target_errors == "selection":
                err[len(src):] = pick_err
            difficulty = _difficulty(current, a, cfg, lr, err, remaining, seed + 1000 * r)
        needs_features = strategy in ("mds", "diversity")
        res = select(
            strategy, k, ids=remaining, difficulty=difficulty,
            features=a.frames[remaining] if needs_features else None,
            context_features=a.frames[np.array(picked)] if needs_features and picked else None,
            context_ids=picked if needs_features and picked else None,
            lambda_=cfg.lambda_ if strategy == "mds" else None, seed=seed * 7919 + r,
        )
        sel = np.array(res.ids, dtype=np.int64)
        pred_pool = predict_quality(current, a.X[remaining])
        err_pool = np.abs(pred_pool - a.mos[remaining])
        pos = {int(v): i for i, v in enumerate(remaining)}
        err_sel = err_pool[[pos[int(s)] for s in sel]]
        fi_srcc, fi_plcc = _corr(pred_pool[[pos[int(s)] for s in sel]], a.mos[sel])
        y = labeller(sel)
        for order, (p, row, yy) in enumerate(zip(res.picks, sel, y)):
            picks.append({"seed": seed, "strategy": strategy, "budget": budget, "round": r, "pick_order": order,
                          "row": int(row), "name": a.names[row], "difficulty": p.difficulty, "diversity": p.diversity,
                          "total": p.total, "label": float(yy), "true_mos": float(a.mos[row]),
                          "pred_at_selection": float(pred_pool[pos[int(row)]]),
                          "error": float(err_pool[pos[int(row)]]), **{k2: a.meta[row][k2] for k2 in
                                                                        ("distortion", "content", "level")}})
        pick_err += [float(abs(pred_pool[pos[int(s)]] - yy)) for s, yy in zip(sel, y)]
        picked += [int(s) for s in sel]
        lab_rows += [int(s) for s in sel]
        lab_y += [float(v) for v in y]
        lr = np.array(lab_rows)
        model = finetune_base(base, a.X[lr], np.array(lab_y), a.datasets[lr], seed=seed + 17 * r, **cfg.finetune)
        rounds.append(evaluate(model, r, {
            "sel_error": float(err_sel.mean()), "pool_error": float(err_pool.mean()),
            "error_ratio": float(err_sel.mean() / max(err_pool.mean(), 1e-12)),
            "sel_fi_srcc": fi_srcc, "sel_fi_plcc": fi_plcc,
            "sel_diversity": mean_pairwise_chamfer(a.frames[sel]),
            "g_pool_srcc": _spearman(difficulty, err_pool) if difficulty is not None else None,
            "label_mae": float(np.mean(np.abs(y - a.mos[sel]))),
        }))
        if tick:
            tick()
    return rounds, picks


def run_simulation(cfg: SimConfig, *, arrays: PoolArrays | None = None, progress: ProgressFn | None = None
                   ) -> SimResult:
    """Run the whole experiment of ``cfg`` (deterministic for a given config and pool)."""
    from mds.learning import train_base

    t0 = time.perf_counter()
    a = arrays or load_pool_arrays(cfg.pool, cfg.encoder, progress)
    labeller = _Labeller(a, cfg.labels, cfg.ratings_per_video)
    result = SimResult(config=cfg.as_dict())
    total = len(cfg.seeds) * len(cfg.strategies) * len(cfg.budgets) * cfg.rounds
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress("rounds", done, total)

    pool_div = mean_pairwise_chamfer(a.frames[a.pool])
    for seed in cfg.seeds:
        src = a.source
        base = train_base(a.X[src], a.mos[src], a.datasets[src], seed=seed, **cfg.base)
        uses_g = any(s in ("mds", "difficulty") for s in cfg.strategies)
        src_err = source_errors(a, cfg, base, seed) if uses_g else None
        for budget in cfg.budgets:
            for strategy in cfg.strategies:
                rows, picks = run_arm(a, cfg, seed=seed, strategy=strategy, budget=budget, base=base,
                                      labeller=labeller, tick=tick, source_err=src_err)
                for r in rows:
                    r["pool_diversity"] = pool_div
                result.rounds += rows
                result.picks += picks
    result.info = {"elapsed_s": round(time.perf_counter() - t0, 2), "encoder_key": a.encoder_key,
                   "n_source": len(a.source), "n_pool": len(a.pool), "n_test": len(a.target_test),
                   "n_source_test": len(a.source_test), "pool_info": a.info}
    return result
