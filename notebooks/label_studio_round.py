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
# # A labelling round with Label Studio: a walkthrough for the annotation team lead
#
# mds keeps the whole pool in its database; each round only the selected batch goes to
# Label Studio. This notebook walks one round:
#
# 1. `mds round start` picks the batch and pushes it (videos served from local storage,
#    the base model's score shown as a pre-annotation, the queue in selection order);
# 2. the team rates (here: a simulated panel with biased, noisy and two careless raters);
# 3. `mds round finish` pulls the ratings, screens raters, aggregates MOS, fine-tunes and evaluates.
#
# With a reachable Label Studio (`MDS_LABEL_STUDIO_URL` plus `MDS_LABEL_STUDIO_TOKEN`, or
# `[labelstudio]` in mds.toml) the round really goes through it. Without one, the notebook
# shows exactly what would be sent and runs the round with the simulated panel locally.

# %%
import json
import os
from pathlib import Path

from mds._compat import ensure_torchvision

ensure_torchvision()

SIZE = os.environ.get("MDS_NOTEBOOK_SIZE", "small")
WORK = Path(os.environ.get("MDS_NOTEBOOK_DIR", "notebook-out")).resolve()
POOL = Path(os.environ.get("MDS_NOTEBOOK_POOL", WORK / f"pool-{SIZE}"))
PROJECT = WORK / "ls-round-project"
TINY = SIZE == "tiny"

# %% [markdown]
# ## A project over the demo pool

# %%
import shutil

from mds.config import load_settings, write_project_file
from mds.db import migrate
from mds.demo import build_demo_pool
from mds.pool.manifest import import_manifest

pool = build_demo_pool(POOL, SIZE, seed=0, import_db=False)
shutil.rmtree(PROJECT, ignore_errors=True)
PROJECT.mkdir(parents=True)
write_project_file(PROJECT)
settings = load_settings(project_dir=PROJECT)
migrate.upgrade(settings.db_url)
print(import_manifest(settings.db_url, pool.manifest).line())

# %% [markdown]
# ## Is a Label Studio server reachable?

# %%
import httpx

url = os.environ.get("MDS_LABEL_STUDIO_URL") or settings.section("labelstudio").get("url")
reachable = False
if url:
    try:
        reachable = httpx.get(url.rstrip("/") + "/health", timeout=3).json().get("status") == "UP"
    except Exception as e:  # noqa: BLE001
        print(f"Label Studio at {url} is not reachable: {e}")
print("Label Studio:", url if reachable else "none (the round runs with the simulated panel locally)")

# %% [markdown]
# ## Start the round
# Strategy MDS, 3 videos (tiny pool) or 5% of the pool; five ratings wanted per video.

# %%
from mds.rounds import RoundConfig, start_round

if reachable:
    settings.raw["labelstudio"] = {**settings.section("labelstudio"), "url": url}
cfg = RoundConfig(strategy="mds", budget="3" if TINY else "5%", labels="labelstudio" if reachable else "simulated",
                  simulate_raters=reachable, oracle=str(pool.root), ratings_per_video=5, clip_model="ViT-S-32",
                  **({"finetune": {"epochs": 15}, "failure": {"epochs": 15}} if TINY else {}))
st = start_round(settings.db_url, cfg, settings=settings)
print(st["status"], "| steps done:", ", ".join(st["steps_done"]))
import pandas as pd
from IPython.display import display

pd.DataFrame(st["selection"])

# %% [markdown]
# ## What Label Studio receives
# The labelling interface for a scalar MOS round and, for the first pick, the task: the video
# served from local storage, its metadata, and the base model's score as a pre-annotation.

# %%
from sqlalchemy import select as sql_select

from labeling.kinds import get_kind
from mds.db.engine import session_scope
from mds.db.models import Prediction, Video

kind = get_kind("scalar")
print(kind.label_config())
with session_scope(settings.db_url) as s:
    first = s.get(Video, s.scalars(sql_select(Video.id).where(Video.name == st["selection"][0]["video"])).one())
    pred = s.scalars(sql_select(Prediction).where(Prediction.video_id == first.id)).first()
    task = {"data": {"video": f"/data/local-files/?d={Path(first.uri).name}", "name": first.name,
                     "mds_video_id": first.id},
            "predictions": [{"model_version": pred.evaluator_version if pred else "base",
                             "score": pred.score if pred else None,
                             "result": kind.prediction_result(pred.score if pred else None)}]}
print(json.dumps(task, indent=1))

# %% [markdown]
# ## The team rates, mds collects
# `round finish` pulls the ratings (from Label Studio, or from the simulated panel), screens the
# raters, writes one MOS label per video, fine-tunes the base model and evaluates it.

# %%
from mds.rounds import finish_round

st = finish_round(settings.db_url, settings=settings)
print(st["status"], "| steps done:", ", ".join(st["steps_done"]))

# %% [markdown]
# ## The raters and the labels
# Per-rater ratings next to the resulting MOS; raters excluded by screening are listed in each label.

# %%
from mds.db.models import Annotation, Label

with session_scope(settings.db_url) as s:
    ann = pd.DataFrame([{"video": s.get(Video, a.video_id).name, "rater": a.annotator, "score": a.score}
                        for a in s.scalars(sql_select(Annotation).where(Annotation.status == "ok"))])
    labels = pd.DataFrame([{"video": s.get(Video, lab.video_id).name, "MOS": lab.mos, "n": lab.n_ratings,
                            "std": lab.std, "ci95": lab.ci95, "excluded": list((lab.value or {}).get("excluded", {}))}
                           for lab in s.scalars(sql_select(Label).where(Label.round_id.is_not(None)))])
display(ann.pivot_table(index="video", columns="rater", values="score"))
labels

# %% [markdown]
# ## Round summary
# Test SRCC before and after the round's fine-tuning, and where the HTML report is.

# %%
m = st["metrics"]
print("target test SRCC: base", round(m["base"]["target_test"]["srcc"], 3), "-> fine-tuned",
      round(m["finetuned"]["target_test"]["srcc"], 3))
print("report:", st["steps"]["report"]["path"])
