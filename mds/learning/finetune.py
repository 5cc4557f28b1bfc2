"""Base model training and active fine-tuning, database level.

* :func:`train_base_model` trains the CPU default on the labelled source set and
  registers a promoted ``base`` checkpoint.
* :func:`finetune` adds a LoRA adapter to the current base model, trained on the
  source labels plus the labels gathered in rounds (micro-batches never mix
  datasets), evaluates before/after on the test split (SRCC/PLCC after the 4PL
  fit, per dataset), and registers a ``finetuned`` checkpoint with its parent,
  round ids and metrics. It becomes the next base only when promoted.
* :func:`run_finetune_job` is the worker entry point for queued ``finetune`` jobs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from mds.errors import TrainingError

EpochFn = Callable[[int, int, dict[str, float]], None]
CPU = "cpu-default"


def _data_dir(db_url: str, data_dir: str | Path | None) -> Path:
    from mds.config import load_settings

    return Path(data_dir) if data_dir else load_settings(db_url=db_url).data_dir


def evaluate_model(model: Any, X: np.ndarray, mos: np.ndarray, datasets: Sequence[str]) -> dict[str, Any]:
    """SRCC/PLCC (4PL fit) of a quality model per dataset, plus their mean."""
    from mds.learning.arrays import predict_quality
    from mds.metrics import correlations

    pred = predict_quality(model, X)
    ds = np.asarray(datasets)
    out: dict[str, Any] = {"per_dataset": {}}
    for d in sorted(set(ds.tolist())):
        m = ds == d
        if m.sum() < 4:
            continue
        c = correlations(pred[m], mos[m])
        out["per_dataset"][d] = {"srcc": c.srcc, "plcc": c.plcc, "krcc": c.krcc, "rmse": c.rmse, "n": c.n}
    vals = list(out["per_dataset"].values())
    out["srcc"] = float(np.mean([v["srcc"] for v in vals])) if vals else None
    out["plcc"] = float(np.mean([v["plcc"] for v in vals])) if vals else None
    out["n"] = int(sum(v["n"] for v in vals))
    return out


def _test_set(session: Any, data_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from mds.learning.data import load_labels, quality_inputs

    lab = load_labels(session, splits=("test",))
    if not len(lab):
        return np.zeros((0, 0), np.float32), np.zeros(0), []
    X, ok, _ = quality_inputs(session, data_dir, lab.video_ids)
    pos = {v: i for i, v in enumerate(lab.video_ids)}
    keep = [pos[v] for v in ok]
    return X, lab.mos[keep], [lab.datasets[i] for i in keep]


def train_base_model(
    db_url: str,
    *,
    evaluator: str = CPU,
    name: str | None = None,
    data_dir: str | Path | None = None,
    promote: bool = True,
    epochs: int = 150,
    seed: int = 0,
    on_epoch: EpochFn | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train the CPU default on the labelled source set; register (and promote) a ``base`` checkpoint."""
    from mds.db.engine import make_sessionmaker
    from mds.learning import checkpoints as ck
    from mds.learning.arrays import train_base
    from mds.learning.data import load_labels, quality_inputs
    from mds.quality.features import FEATURE_NAMES, extractor_key

    if evaluator != CPU:
        raise TrainingError(f"train-base trains the CPU default only; {evaluator!r} brings its own weights")
    data_dir = _data_dir(db_url, data_dir)
    with make_sessionmaker(db_url)() as s:
        lab = load_labels(s, splits=("source",))
        if len(lab) < 8:
            raise TrainingError(f"only {len(lab)} labelled source videos: need at least 8 (split 'source', MOS labels)")
        X, ok, failures = quality_inputs(s, data_dir, lab.video_ids, on_progress=on_progress)
        pos = {v: i for i, v in enumerate(lab.video_ids)}
        keep = [pos[v] for v in ok]
        y, groups = lab.mos_norm[keep], np.array([lab.datasets[i] for i in keep])
        model = train_base(X, y, groups, epochs=epochs, seed=seed, feature_key=extractor_key(),
                           feature_names=FEATURE_NAMES, on_epoch=on_epoch)
        config = {"epochs": epochs, "seed": seed, "features": extractor_key(), "n_train": len(keep),
                  "datasets": sorted(set(groups.tolist())), "ranges": {k: list(v) for k, v in lab.ranges.items()},
                  "objective": "fidelity (ties 0.5) + MSE on MOS normalised to 1-5"}
        row = ck.create_checkpoint(s, data_dir, kind="base", name=name or CPU, evaluator=CPU, config=config)
        model.save(row.path)
        Xt, mt, dt = _test_set(s, data_dir)
        metrics: dict[str, Any] = {"n_train": len(keep), "skipped_undecodable": len(failures)}
        if len(Xt):
            metrics["test"] = evaluate_model(model, Xt, mt, dt)
        ck.finish_checkpoint(s, row, metrics=metrics, promote=promote)
        return {"checkpoint_id": row.id, "name": row.name, "version": row.version, "path": row.path,
                "promoted": row.promoted, "metrics": metrics}


def finetune(
    db_url: str,
    *,
    evaluator: str = CPU,
    round_ids: Sequence[int] | None = None,
    promote: bool = False,
    name: str | None = None,
    data_dir: str | Path | None = None,
    epochs: int = 40,
    lr: float = 3e-3,
    batch_size: int = 16,
    lora_r: int = 4,
    lora_alpha: int = 8,
    reg_weight: float = 1.0,
    seed: int = 0,
    force: bool = False,
    on_epoch: EpochFn | None = None,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Active fine-tuning of the current base model (see the module docstring). Returns a summary dict.

    ``round_ids=None`` uses the labels of every round (any non-test video with a
    round label); an empty list trains on the source set alone.
    """
    from mds.db.engine import make_sessionmaker
    from mds.db.models import Label, Round
    from mds.learning import checkpoints as ck
    from mds.learning.arrays import finetune_base
    from mds.learning.data import load_labels, quality_inputs
    from mds.quality.loading import load_quality_model, read_lineage, write_lineage

    if evaluator != CPU:
        raise TrainingError(
            f"fine-tuning {evaluator!r} from the database is not available here; the VLM path is "
            "mds.learning.vlm.finetune_vlm (LoRA on the language model)"
        )
    data_dir = _data_dir(db_url, data_dir)
    with make_sessionmaker(db_url)() as s:
        base_ck = ck.current_base_checkpoint(s, evaluator)
        if base_ck is None:
            raise TrainingError(f"no promoted base checkpoint of {evaluator!r}: run `mds train-base` first")
        if round_ids is None:
            round_ids = sorted(set(s.scalars(select(Label.round_id).where(Label.round_id.is_not(None)))))
        round_ids = [int(r) for r in round_ids]
        unknown = [r for r in round_ids if s.get(Round, r) is None]
        if unknown:
            raise TrainingError(f"unknown round id(s): {', '.join(map(str, unknown))}")
        lab = load_labels(s, splits=("source",), round_ids=round_ids)
        if len(lab) < 8:
            raise TrainingError(f"only {len(lab)} labels to fine-tune on")
        X, ok, _ = quality_inputs(s, data_dir, lab.video_ids)
        pos = {v: i for i, v in enumerate(lab.video_ids)}
        keep = [pos[v] for v in ok]
        y, groups = lab.mos_norm[keep], np.array([lab.datasets[i] for i in keep])
        hp = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "lora_r": lora_r, "lora_alpha": lora_alpha,
              "reg_weight": reg_weight, "seed": seed}
        digest = hashlib.sha256(json.dumps(
            {"hp": hp, "base": base_ck.id, "ids": ok, "y": np.round(y, 6).tolist()}, sort_keys=True
        ).encode()).hexdigest()[:16]
        name = name or f"{evaluator}-ft"
        row = None if force else ck.find_training(s, "finetuned", name, digest)
        if row is not None and row.status == "ready":
            if promote and not row.promoted:
                ck.promote_checkpoint(s, row)
            return _summary(row, reused=True)
        counts = {d: int((groups == d).sum()) for d in sorted(set(groups.tolist()))}
        config = {"digest": digest, "hyperparameters": hp, "n_train": len(keep), "per_dataset": counts,
                  "round_ids": round_ids, "label_rounds": lab.round_ids,
                  "objective": "fidelity (ties 0.5, single-dataset micro-batches) + MSE",
                  "ranges": {k: list(v) for k, v in lab.ranges.items()}}
        if row is None:
            row = ck.create_checkpoint(s, data_dir, kind="finetuned", name=name, evaluator=evaluator,
                                       parent_id=base_ck.id, config=config, round_ids=round_ids)
        base = load_quality_model(base_ck.path)
        model = finetune_base(base, X, y, groups, epochs=epochs, lr=lr, batch_size=batch_size, lora_r=lora_r,
                              lora_alpha=lora_alpha, reg_weight=reg_weight, seed=seed,
                              state_dir=Path(row.path) / "train_state", on_epoch=on_epoch, on_step=on_step)
        model.save_pretrained(row.path)
        root, parents = read_lineage(base_ck.path)
        write_lineage(row.path, root, [*parents, row.path])
        Xt, mt, dt = _test_set(s, data_dir)
        metrics: dict[str, Any] = {"n_train": len(keep), "per_dataset": counts,
                                   "resumed": bool(model.train_result.resumed)}
        if len(Xt):
            metrics["before"] = evaluate_model(base, Xt, mt, dt)
            metrics["after"] = evaluate_model(load_quality_model(row.path), Xt, mt, dt)
        ck.finish_checkpoint(s, row, metrics=metrics, promote=promote)
        return _summary(row, reused=False)


def _summary(row: Any, *, reused: bool) -> dict[str, Any]:
    m = dict(row.metrics or {})
    return {"checkpoint_id": row.id, "name": row.name, "version": row.version, "parent_id": row.parent_id,
            "round_ids": list(row.round_ids or []), "promoted": bool(row.promoted), "path": row.path,
            "reused": reused, "before": m.get("before"), "after": m.get("after"), "n_train": m.get("n_train")}


def promote(db_url: str, ref: str | int, *, evaluator: str | None = None) -> dict[str, Any]:
    """Promote a ready base/finetuned checkpoint (by id, name or name@version)."""
    from mds.db.engine import make_sessionmaker
    from mds.learning import checkpoints as ck

    with make_sessionmaker(db_url)() as s:
        row = ck.resolve_checkpoint(s, ref, evaluator=evaluator)
        ck.promote_checkpoint(s, row)
        return _summary(row, reused=True)


def run_finetune_job(db_url: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Worker entry point for a queued ``finetune`` job: ``{"round_id": int, "promote"?: bool}``.

    Fine-tunes on the source set plus the labels of every round up to and including
    ``round_id``. Promotion follows ``payload["promote"]``, else ``[finetune] promote``
    in mds.toml (default false).
    """
    from mds.config import load_settings
    from mds.db.engine import make_sessionmaker
    from mds.db.models import Round

    if "round_id" not in payload:
        raise TrainingError("finetune job payload needs a round_id")
    rid = int(payload["round_id"])
    with make_sessionmaker(db_url)() as s:
        rnd = s.get(Round, rid)
        if rnd is None:
            raise TrainingError(f"unknown round id {rid}")
        evaluator = payload.get("evaluator") or rnd.evaluator or CPU
        round_ids = sorted(r.id for r in s.scalars(select(Round).where(Round.number <= rnd.number)))
    settings = load_settings(db_url=db_url)
    promote_flag = payload.get("promote")
    if promote_flag is None:
        promote_flag = bool(settings.section("finetune").get("promote", False))
    res = finetune(db_url, evaluator=evaluator, round_ids=round_ids, promote=bool(promote_flag),
                   data_dir=settings.data_dir)
    return {"round_id": rid, **res}
