"""Calls into the other areas (learning, scoring, labelling) that a round makes, in one place.

Kept thin: every function delegates to the owning module's public API and returns
plain ids and dicts for the round's step record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from mds.db.engine import session_scope
from mds.db.models import Checkpoint, LabelingTask, Video
from mds.errors import ConfigError


def ensure_base(db_url: str, evaluator: str, *, data_dir: Path, seed: int) -> tuple[int, bool]:
    """The current (promoted) base checkpoint id; trains the CPU default on the source split if none."""
    from mds.learning.checkpoints import current_base_checkpoint

    with session_scope(db_url) as s:
        ck = current_base_checkpoint(s, evaluator)
        if ck is not None:
            return ck.id, False
    if evaluator != "cpu-default":
        raise ConfigError(f"no promoted base checkpoint of {evaluator!r}: register one first")
    from mds.learning.finetune import train_base_model

    res = train_base_model(db_url, evaluator=evaluator, data_dir=data_dir, seed=seed, promote=True)
    return int(res["checkpoint_id"]), True


def _ck_id(res: Any) -> int:
    if isinstance(res, int):
        return res
    if isinstance(res, Checkpoint):
        return res.id
    if isinstance(res, dict):
        return int(res.get("checkpoint_id") or res["id"])
    for attr in ("checkpoint_id", "id"):
        if hasattr(res, attr):
            return int(getattr(res, attr))
    raise TypeError(f"cannot read a checkpoint id from {type(res).__name__}")


def score(db_url: str, evaluator: str, checkpoint_id: int | None, *, data_dir: Path, round_id: int | None = None,
          splits: tuple[str, ...] = ("pool", "source", "test")) -> dict[str, Any]:
    """Predictions of a checkpoint on ``splits`` (skips what this version already scored)."""
    from mds.scoring import score_pool

    out: dict[str, Any] = {}
    for split in splits:
        rep = score_pool(db_url, evaluator, options={"data_dir": str(data_dir)}, split=split,
                         checkpoint_id=checkpoint_id, round_id=round_id)
        out[split] = {"scored": rep.scored, "skipped": rep.skipped, "errors": rep.errors}
        out["evaluator"], out["evaluator_version"] = rep.evaluator, rep.evaluator_version
    return out


def predictions(db_url: str, evaluator: str, version: str) -> dict[int, float]:
    """``video_id → score`` of one evaluator version (usable scores only)."""
    from mds.scoring import latest_predictions

    return {vid: float(p.score) for vid, p in latest_predictions(db_url, evaluator, version).items()
            if p.score is not None}


def difficulty(db_url: str, evaluator: str, base_checkpoint_id: int, *, data_dir: Path, seed: int,
               options: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    """Train g on everything labelled (source split and earlier rounds' picks), reused when the same
    training was done before, then score the pool. Earlier picks carry out-of-sample errors: those of
    the base model their round selected them with (its stored predictions), not of the current one."""
    from mds.learning.failure import score_failure_predictor, train_failure_predictor

    rep = train_failure_predictor(db_url, evaluator=evaluator, data_dir=data_dir, splits=("source", "pool"),
                                  seed=seed, **options)
    sc = score_failure_predictor(db_url, rep.checkpoint_id, evaluator=evaluator, split="pool", data_dir=data_dir)
    info = {"reused": bool(rep.reused), "n_train": rep.n_train, "val_spearman": rep.val_spearman,
            "tie_fraction": rep.tie_fraction, "scored": sc.scored, "skipped": sc.skipped}
    return rep.checkpoint_id, rep.predictor, info


def finetune(db_url: str, round_id: int, evaluator: str, *, data_dir: Path, seed: int, promote: bool,
             options: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Active fine-tuning of the current base model on the source labels plus every round's labels
    up to this one (reused when the same training exists)."""
    from mds.db.models import Round
    from mds.learning.finetune import finetune as ft

    with session_scope(db_url) as s:
        rnd = s.get(Round, round_id)
        number, base_id = rnd.number, rnd.base_checkpoint_id
        round_ids = sorted(s.scalars(select(Round.id).where(Round.number <= number)))
        # a crash after training but before the step was recorded: the checkpoint is already there
        # (and may already be promoted, so the learning code would build on top of it)
        done = [c for c in s.scalars(select(Checkpoint).where(
            Checkpoint.kind == "finetuned", Checkpoint.evaluator == evaluator, Checkpoint.parent_id == base_id,
            Checkpoint.status == "ready").order_by(Checkpoint.id.desc())) if sorted(c.round_ids or []) == round_ids]
        if done:
            if promote and not done[0].promoted:
                from mds.learning.checkpoints import promote_checkpoint

                promote_checkpoint(s, done[0])
            return done[0].id, {"reused": True, "promoted": bool(done[0].promoted)}
    res = ft(db_url, evaluator=evaluator, round_ids=round_ids, promote=promote, data_dir=data_dir, seed=seed,
             **options)
    info = {k: v for k, v in res.items() if isinstance(v, (int, float, str, bool)) and k != "path"}
    for k in ("before", "after"):
        if isinstance(res.get(k), dict):
            info[k] = res[k]
    return int(res["checkpoint_id"]), info


def ls_client(settings: Any):
    from labeling.client import client_from_settings

    return client_from_settings(settings)


def answer_in_label_studio(db_url: str, client: Any, round_id: int, oracle: dict[str, float], panel: Any) -> int:
    """Simulated raters submit their ratings through the Label Studio API (missing ones only)."""
    from labeling.kinds import get_kind

    kind = get_kind("scalar")
    users: dict[str, int] = {}
    n = 0
    with session_scope(db_url) as s:
        tasks = list(s.scalars(select(LabelingTask).where(LabelingTask.round_id == round_id)))
        for t in tasks:
            if not t.external_task_id:
                continue
            v = s.get(Video, t.video_id)
            remote = client.get_task(int(t.external_task_id)) or {}
            have = len(remote.get("annotations") or [])
            for rater, value in panel.rate(v.name, oracle[v.name], t.ratings_wanted)[have:]:
                if rater not in users:
                    users[rater] = _ls_user(client, rater)
                client.create_annotation(int(t.external_task_id), kind.prediction_result(float(value)),
                                         completed_by=users[rater])
                n += 1
    return n


def _ls_user(client: Any, rater: str) -> int:
    email = f"{rater}@sim.mds.local"
    for u in client.sdk.users.list():
        if (u.email or "") == email:
            return int(u.id)
    return client.create_user(rater, email)
