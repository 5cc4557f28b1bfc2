"""Matplotlib figures (Agg backend): learning curves with bands, error ratios, the embedding map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

COLORS = {"mds": "#d62728", "random": "#7f7f7f", "difficulty": "#ff7f0e", "diversity": "#1f77b4"}
LABELS = {"mds": "MDS (difficulty + λ·diversity)", "random": "random", "difficulty": "difficulty only",
          "diversity": "diversity only"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(rounds: Any, out: str | Path, *, metric: str = "test_srcc", title: str | None = None) -> Path:
    """Mean ± std (over seeds) of ``metric`` per round, one line per strategy, one panel per budget."""
    import pandas as pd

    plt = _plt()
    df = rounds if isinstance(rounds, pd.DataFrame) else pd.DataFrame(rounds)
    budgets = list(dict.fromkeys(df["budget"]))
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.2 * len(budgets), 3.8), squeeze=False)
    for ax, budget in zip(axes[0], budgets):
        d = df[df.budget == budget]
        for strat in dict.fromkeys(d["strategy"]):
            s = d[d.strategy == strat].groupby("round")[metric]
            m, sd = s.mean(), s.std(ddof=1).fillna(0.0)
            x = m.index.to_numpy()
            c = COLORS.get(strat)
            ax.plot(x, m.to_numpy(), marker="o", color=c, label=LABELS.get(strat, strat))
            ax.fill_between(x, (m - sd).to_numpy(), (m + sd).to_numpy(), color=c, alpha=0.15)
        k = int(d["k"].iloc[0]) if "k" in d else None
        ax.set_title(f"budget {budget}" + (f" ({k} videos/round)" if k else ""))
        ax.set_xlabel("round (0 = base model)")
        ax.set_ylabel({"test_srcc": "target test SRCC", "test_plcc": "target test PLCC",
                       "source_test_srcc": "source test SRCC"}.get(metric, metric))
        ax.set_xticks(sorted(d["round"].unique()))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def error_ratio_bars(rounds: Any, out: str | Path) -> Path:
    """Mean base-model error of the picks ÷ pool mean error, per strategy (mean ± std over seeds and rounds)."""
    import pandas as pd

    plt = _plt()
    df = rounds if isinstance(rounds, pd.DataFrame) else pd.DataFrame(rounds)
    df = df[df["round"] >= 1]
    g = df.groupby("strategy")["error_ratio"]
    m, sd = g.mean(), g.std(ddof=1).fillna(0.0)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    xs = np.arange(len(m))
    ax.bar(xs, m.to_numpy(), yerr=sd.to_numpy(), color=[COLORS.get(s, "#333") for s in m.index], capsize=4)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.axhline(1.5, color="#d62728", lw=0.8, ls=":", label="1.5× target")
    ax.set_xticks(xs, [LABELS.get(s, s) for s in m.index], fontsize=8, rotation=10)
    ax.set_ylabel("error of picks / pool error")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def project_2d(vectors: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D coordinates of ``vectors`` (PCA via SVD, or t-SNE from scikit-learn)."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x - x.mean(axis=0)
    if method == "tsne" and len(x) > 5:
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), random_state=seed,
                    init="pca").fit_transform(x)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, :2] * s[:2]


def embedding_map(
    pooled: np.ndarray,
    categories: list[str],
    picks: dict[str, list[int]],
    out: str | Path,
    *,
    method: str = "pca",
    title: str = "pool on the CLIP embedding map",
    annotate_order: bool = True,
) -> Path:
    """The pool's pooled CLIP vectors in 2-D, coloured by ``categories``; each strategy's picks marked.

    ``picks`` maps a strategy to row positions (into ``pooled``) in pick order.
    """
    plt = _plt()
    xy = project_2d(pooled, method)
    cats = list(dict.fromkeys(categories))
    cmap = plt.get_cmap("tab10")
    n = max(1, len(picks))
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.6), squeeze=False)
    markers = {"mds": "*", "random": "s", "difficulty": "^", "diversity": "D"}
    for ax, (strat, rows) in zip(axes[0], picks.items()):
        for ci, c in enumerate(cats):
            m = np.array([x == c for x in categories])
            ax.scatter(xy[m, 0], xy[m, 1], s=12, color=cmap(ci % 10), alpha=0.45, label=c)
        rows = list(rows)
        ax.scatter(xy[rows, 0], xy[rows, 1], s=140, marker=markers.get(strat, "o"), facecolors="none",
                   edgecolors=COLORS.get(strat, "k"), linewidths=1.6, label=f"picked ({len(rows)})")
        if annotate_order:
            for i, r in enumerate(rows[:30]):
                ax.annotate(str(i + 1), xy[r], fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"{LABELS.get(strat, strat)}")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=7, loc="best", markerscale=0.8)
    fig.suptitle(f"{title} ({method.upper()})")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def distortion_counts(picks: Any, out: str | Path, *, seed: int | None = None) -> Path:
    """How many picks of each distortion kind each strategy made (summed over rounds)."""
    import pandas as pd

    plt = _plt()
    df = picks if isinstance(picks, pd.DataFrame) else pd.DataFrame(picks)
    if seed is not None:
        df = df[df.seed == seed]
    tab = df.groupby(["strategy", "distortion"]).size().unstack(fill_value=0)
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    tab.T.plot.bar(ax=ax, color=[COLORS.get(s, "#333") for s in tab.index])
    ax.set_ylabel("picks")
    ax.set_xlabel("distortion")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
