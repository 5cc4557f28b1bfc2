"""Tables of an oracle-replay result: per-round means, and MDS-vs-random gains at equal budget."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _frame(rounds: Any):
    import pandas as pd

    return rounds if isinstance(rounds, pd.DataFrame) else pd.DataFrame(rounds)


def summary_tables(rounds: Any, metrics: tuple[str, ...] = ("test_srcc", "test_plcc", "error_ratio", "sel_diversity")):
    """Mean and std over seeds per (budget, strategy, round) of ``metrics``."""
    df = _frame(rounds)
    cols = [m for m in metrics if m in df]
    g = df.groupby(["budget", "strategy", "round"])[cols]
    out = g.mean().add_suffix("_mean").join(g.std(ddof=1).add_suffix("_std"))
    return out.reset_index()


def gain_table(rounds: Any, *, metric: str = "test_srcc", strategy: str = "mds", baseline: str = "random"):
    """Paired gain ``strategy - baseline`` of ``metric`` per (budget, round), over seeds.

    Columns: ``mean``, ``std`` (sample std over seeds), ``n`` (seeds), ``lo``/``hi``
    (mean ± std) and ``excludes_zero`` (whether the mean ± std interval excludes 0).
    """
    import pandas as pd

    df = _frame(rounds)
    a = df[df.strategy == strategy].set_index(["budget", "seed", "round"])[metric]
    b = df[df.strategy == baseline].set_index(["budget", "seed", "round"])[metric]
    d = (a - b).dropna().reset_index()
    rows = []
    for (budget, rnd), grp in d.groupby(["budget", "round"]):
        v = grp[metric].to_numpy(dtype=float)
        mean = float(v.mean())
        std = float(v.std(ddof=1)) if len(v) > 1 else math.nan
        lo, hi = mean - (std if not math.isnan(std) else 0), mean + (std if not math.isnan(std) else 0)
        rows.append({"budget": budget, "round": int(rnd), "mean": mean, "std": std, "n": len(v), "lo": lo,
                     "hi": hi, "excludes_zero": bool(len(v) > 1 and (lo > 0 or hi < 0))})
    return pd.DataFrame(rows)


def error_ratio_table(rounds: Any):
    """Mean base-model error of the picks as a multiple of the pool mean, per strategy (rounds ≥ 1)."""
    df = _frame(rounds)
    df = df[df["round"] >= 1]
    g = df.groupby(["budget", "strategy"])["error_ratio"]
    out = g.agg(["mean", "std", "count"]).reset_index()
    r1 = df[df["round"] == 1].groupby(["budget", "strategy"])["error_ratio"].agg(["mean", "std"])
    out = out.merge(r1.add_prefix("round1_").reset_index(), on=["budget", "strategy"], how="left")
    return out


def fmt(x: float, nd: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"
