# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Anatomy of one MDS selection
#
# What the greedy selector does with one batch: the failure predictor g scores how hard each
# pool video is for the base model; CLIP frame embeddings give the Chamfer distance between
# videos; the first pick is the hardest video, every later pick maximises
# `g(x) + λ · mean distance to the picks so far`. Every pick keeps its two terms, so the
# batch can be audited. Environment: `MDS_NOTEBOOK_SIZE`, `MDS_NOTEBOOK_DIR`, `MDS_NOTEBOOK_POOL`.

# %%
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mds._compat import ensure_torchvision

ensure_torchvision()

SIZE = os.environ.get("MDS_NOTEBOOK_SIZE", "small")
WORK = Path(os.environ.get("MDS_NOTEBOOK_DIR", "notebook-out")).resolve()
POOL = Path(os.environ.get("MDS_NOTEBOOK_POOL", WORK / f"pool-{SIZE}"))
TINY = SIZE == "tiny"
WORK.mkdir(parents=True, exist_ok=True)

# %%
from mds.demo import build_demo_pool
from mds.simulate import load_pool_arrays
from mds.simulate.config import EncoderConfig

pool = build_demo_pool(POOL, SIZE, seed=0, import_db=False)
a = load_pool_arrays(pool, EncoderConfig(model="ViT-S-32", pretrained="none", frames=4))
src, cand = a.source, a.pool
len(src), len(cand)

# %% [markdown]
# ## Base model f and failure predictor g
# f learns MOS from the labelled source set; g learns to rank f's errors on it
# (pairwise Thurstone/fidelity loss, LoRA on f's layers).

# %%
from mds.learning import fit_failure_predictor, predict_difficulty, predict_quality, train_base

epochs = {"epochs": 40} if TINY else {}
f = train_base(a.X[src], a.mos[src], a.datasets[src], seed=0, **epochs)
err_src = np.abs(predict_quality(f, a.X[src]) - a.mos[src])
g = fit_failure_predictor(f, a.X[src], err_src, a.datasets[src], seed=0, **({"epochs": 15} if TINY else {}))
difficulty = predict_difficulty(g, a.X[cand])
true_err = np.abs(predict_quality(f, a.X[cand]) - a.mos[cand])  # known here only thanks to the oracle

from scipy.stats import spearmanr

print(f"Spearman(g, true error of f) on the pool: {spearmanr(difficulty, true_err)[0]:.3f}")

# %% [markdown]
# ## The selection, pick by pick

# %%
from selection.api import select

k = 4 if TINY else 10
res = select("mds", k, ids=cand, difficulty=difficulty, features=a.frames[cand], seed=0)
picks = pd.DataFrame([{
    "pick": i + 1, "video": a.names[p.video_id], "distortion": a.meta[p.video_id]["distortion"],
    "g (difficulty)": p.difficulty, "mean distance": p.diversity, "total": p.total,
    "true error of f": float(true_err[list(cand).index(p.video_id)]),
} for i, p in enumerate(res.picks)])
picks

# %% [markdown]
# ## Difficulty against diversity
# Each pool video at the moment of the last pick: its g and its mean distance to the batch.
# The picks sit on the upper-right frontier of `g + λ · distance`.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from IPython.display import Image, display

from selection.distances import FrameBank

bank = FrameBank.from_list(a.frames[cand])
pos = [list(cand).index(v) for v in res.ids]
mean_d = np.mean([bank.distances_from(p) for p in pos], axis=0)
lam = res.params.get("lambda", 0.25)
fig, ax = plt.subplots(figsize=(5.5, 4))
ax.scatter(mean_d, difficulty, s=14, alpha=0.5, label="pool")
ax.scatter(mean_d[pos], difficulty[pos], s=90, marker="*", color="#d62728", label="picked")
ax.set_xlabel("mean Chamfer distance to the batch")
ax.set_ylabel("difficulty g")
ax.set_title(f"λ = {lam}")
ax.legend()
fig.tight_layout()
fig.savefig(WORK / "anatomy_scatter.png", dpi=100)
plt.close(fig)
display(Image(filename=str(WORK / "anatomy_scatter.png")))

# %% [markdown]
# ## The picks on the embedding map
# Pooled CLIP vectors in 2-D (PCA), coloured by distortion. With a randomly initialised
# CLIP (no pretrained weights offline) the map groups by low-level appearance, mostly content.

# %%
from mds.report.plots import embedding_map

cats = [a.meta[i]["distortion"] for i in cand]
rand = select("random", k, ids=cand, seed=0)
m = embedding_map(a.pooled()[cand], cats, {"mds": pos, "random": [list(cand).index(v) for v in rand.ids]},
                  WORK / "anatomy_map.png")
display(Image(filename=str(m)))

# %% [markdown]
# ## Which distortions were picked, and why
# Per distortion: how often MDS picked it, its mean g, and f's true mean error on it.

# %%
pool_df = pd.DataFrame({"distortion": cats, "g": difficulty, "true error": true_err})
summary = pool_df.groupby("distortion").agg(n=("g", "size"), mean_g=("g", "mean"), mean_error=("true error", "mean"))
summary["picked by MDS"] = picks.groupby("distortion").size().reindex(summary.index).fillna(0).astype(int)
summary.sort_values("mean_g", ascending=False)
