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
# # Comparing selection strategies by oracle replay
#
# Before spending a labelling budget, replay the loop on a pool whose labels are known:
# every strategy picks a batch each round, the picks get labels from simulated annotators,
# the base model is fine-tuned, and the target test SRCC is tracked. This notebook uses the
# offline demo pool (`mds demo-pool`), whose pool labels are pseudo-MOS from VMAF kept in an
# oracle file that the selection never sees.
#
# Settings come from the environment so CI can run it on the tiny pool:
# `MDS_NOTEBOOK_SIZE` (default `small`), `MDS_NOTEBOOK_DIR` (working folder),
# `MDS_NOTEBOOK_POOL` (an existing demo pool folder).

# %%
import os
from pathlib import Path

from mds._compat import ensure_torchvision

ensure_torchvision()

SIZE = os.environ.get("MDS_NOTEBOOK_SIZE", "small")
WORK = Path(os.environ.get("MDS_NOTEBOOK_DIR", "notebook-out")).resolve()
POOL = Path(os.environ.get("MDS_NOTEBOOK_POOL", WORK / f"pool-{SIZE}"))
TINY = SIZE == "tiny"

# %% [markdown]
# ## The pool
# Source-domain videos (blur, noise, downscaling, some upload compression) are labelled;
# target-domain videos (H.264/HEVC/VP9/AV1 at several CRFs, banding, stutter) form the pool.

# %%
from mds.demo import build_demo_pool

pool = build_demo_pool(POOL, SIZE, seed=0, import_db=False)
pool.counts()

# %% [markdown]
# ## The experiment
# The same configuration a `mds simulate experiment.toml` file would hold.

# %%
from mds.simulate import load_pool_arrays, parse_config, run_simulation

cfg = parse_config({
    "pool": str(POOL),
    "out": str(WORK / "strategy-comparison"),
    "strategies": ["random", "difficulty", "diversity", "mds"],
    "budgets": ["3"] if TINY else ["5%"],
    "seeds": [0, 1] if TINY else [0, 1, 2],
    "rounds": 2 if TINY else 3,
    "encoder": {"model": "ViT-S-32", "pretrained": "none", "frames": 4},
    **({"base": {"epochs": 40}, "failure": {"epochs": 15}, "finetune": {"epochs": 15}} if TINY else {}),
})
arrays = load_pool_arrays(cfg.pool, cfg.encoder)
result = run_simulation(cfg, arrays=arrays)
df = result.frame()
df.head()

# %% [markdown]
# ## Learning curves
# Mean ± one standard deviation over seeds; round 0 is the base model trained on the source domain.

# %%
from IPython.display import Image, display

from mds.report.plots import error_ratio_bars, learning_curves

WORK.mkdir(parents=True, exist_ok=True)
display(Image(filename=str(learning_curves(df, WORK / "curves.png", title="target test SRCC"))))

# %% [markdown]
# ## MDS against random at equal budget
# Paired by seed; `excludes_zero` says whether mean ± std stays on one side of zero.

# %%
from mds.report.summary import gain_table, summary_tables

gain_table(df)

# %% [markdown]
# ## Were the picks hard for the model?
# Mean absolute error of the current model on the picks, as a multiple of its mean error on the pool.

# %%
display(Image(filename=str(error_ratio_bars(df, WORK / "error_ratio.png"))))
summary_tables(df)
