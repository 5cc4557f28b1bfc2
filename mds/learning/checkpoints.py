"""Checkpoint registry: where artefacts live on disk and their ``checkpoints`` rows (lineage).

Layout: ``<data_dir>/checkpoints/<evaluator>/<kind>/<name>/<version>/``. Rows move
``training`` -> ``ready``; a resumed run reuses its ``training`` row, so an
interrupted run never leaves duplicates. The base model of the next round is the
newest *promoted* ``base``/``finetuned`` checkpoint of an evaluator
(:func:`current_base_checkpoint`). A promotion also writes
``<data_dir>/checkpoints/<evaluator>/CURRENT`` (the checkpoint's path), so an
evaluator created without a database finds the same model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mds.db.models import Checkpoint
from mds.errors import TrainingError

KINDS = ("base", "failure_predictor", "finetuned")
CURRENT_FILE = "CURRENT"


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "x"


def checkpoint_dir(data_dir: str | Path, evaluator: str, kind: str, name: str, version: str) -> Path:
    return Path(data_dir) / "checkpoints" / _slug(evaluator) / kind / _slug(name) / _slug(version)


def dir_hash(path: str | Path) -> str:
    """sha256 over the files of an artefact directory (names + bytes), training state excluded."""
    h = hashlib.sha256()
    root = Path(path)
    for p in sorted(root.rglob("*")):
        if p.is_file() and "train_state" not in p.parts and not p.name.endswith(".tmp"):
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def next_version(session: Session, kind: str, name: str) -> str:
    versions = session.scalars(select(Checkpoint.version).where(Checkpoint.kind == kind, Checkpoint.name == name))
    nums = [int(v[1:]) for v in versions if re.fullmatch(r"v\d+", v or "")]
    return f"v{max(nums, default=0) + 1}"


def find_training(session: Session, kind: str, name: str, digest: str) -> Checkpoint | None:
    """An unfinished run of the same configuration (to resume) or a finished one (to reuse)."""
    rows = session.scalars(
        select(Checkpoint).where(Checkpoint.kind == kind, Checkpoint.name == name).order_by(Checkpoint.id.desc())
    )
    for row in rows:
        if (row.config or {}).get("digest") == digest and row.status in ("training", "ready"):
            return row
    return None


def create_checkpoint(
    session: Session,
    data_dir: str | Path,
    *,
    kind: str,
    name: str,
    evaluator: str,
    parent_id: int | None = None,
    config: dict[str, Any] | None = None,
    round_ids: list[int] | None = None,
    status: str = "training",
) -> Checkpoint:
    """A new row (next ``vN`` of ``name``) with its directory; committed at once."""
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    version = next_version(session, kind, name)
    path = checkpoint_dir(data_dir, evaluator, kind, name, version)
    path.mkdir(parents=True, exist_ok=True)
    row = Checkpoint(kind=kind, name=name, version=version, evaluator=evaluator, parent_id=parent_id,
                     path=str(path), config=dict(config or {}), metrics={}, round_ids=list(round_ids or []),
                     status=status, promoted=False)
    session.add(row)
    session.commit()
    return row


def finish_checkpoint(session: Session, row: Checkpoint, *, metrics: dict[str, Any], promote: bool = False) -> None:
    row.metrics = dict(metrics)
    row.content_hash = dir_hash(row.path) if row.path else None
    row.status = "ready"
    session.commit()
    if promote:
        promote_checkpoint(session, row)


def promote_checkpoint(session: Session, row: Checkpoint, data_dir: str | Path | None = None) -> None:
    """Make ``row`` the base model of the next round (``base``/``finetuned`` only)."""
    if row.kind not in ("base", "finetuned"):
        raise TrainingError(f"checkpoint {row.id} is a {row.kind}; only base or finetuned models can be promoted")
    if row.status != "ready":
        raise TrainingError(f"checkpoint {row.id} is {row.status}, not ready")
    row.promoted = True
    session.commit()
    if row.path:
        root = Path(row.path).parents[2]  # .../checkpoints/<evaluator>
        write_current(root, row.path)


def write_current(evaluator_root: Path, path: str) -> None:
    evaluator_root.mkdir(parents=True, exist_ok=True)
    tmp = evaluator_root / (CURRENT_FILE + ".tmp")
    tmp.write_text(str(path) + "\n", encoding="utf-8")
    os.replace(tmp, evaluator_root / CURRENT_FILE)


def read_current(data_dir: str | Path, evaluator: str) -> str | None:
    p = Path(data_dir) / "checkpoints" / _slug(evaluator) / CURRENT_FILE
    if p.is_file():
        path = p.read_text(encoding="utf-8").strip()
        return path or None
    return None


def current_base_checkpoint(session: Session, evaluator: str) -> Checkpoint | None:
    """The newest promoted, ready ``base``/``finetuned`` checkpoint of ``evaluator`` (None: none yet)."""
    return session.scalars(
        select(Checkpoint)
        .where(Checkpoint.evaluator == evaluator, Checkpoint.kind.in_(("base", "finetuned")),
               Checkpoint.promoted.is_(True), Checkpoint.status == "ready")
        .order_by(Checkpoint.id.desc())
        .limit(1)
    ).first()


def resolve_checkpoint(session: Session, ref: str | int, kind: str | None = None,
                       evaluator: str | None = None) -> Checkpoint:
    """A checkpoint by id, ``name``, ``name@version`` or ``name:version`` (newest ready one for a bare name)."""
    q = select(Checkpoint)
    if kind is not None:
        q = q.where(Checkpoint.kind == kind)
    if evaluator is not None:
        q = q.where(Checkpoint.evaluator == evaluator)
    ref_s = str(ref)
    if ref_s.isdigit():
        row = session.get(Checkpoint, int(ref_s))
        if row is None or (kind is not None and row.kind != kind):
            raise TrainingError(f"no {kind or 'checkpoint'} with id {ref_s}")
        return row
    m = re.fullmatch(r"(.+)[@:]([^@:]+)", ref_s)
    name, version = (m.group(1), m.group(2)) if m else (ref_s, None)
    q = q.where(Checkpoint.name == name)
    if version is not None:
        q = q.where(Checkpoint.version == version)
    else:
        q = q.where(Checkpoint.status == "ready")
    row = session.scalars(q.order_by(Checkpoint.id.desc()).limit(1)).first()
    if row is None:
        raise TrainingError(f"no {kind or 'checkpoint'} named {ref_s!r}")
    return row


def predictor_key(row: Checkpoint) -> str:
    """The ``DifficultyScore.predictor`` string of a failure predictor."""
    return f"{row.name}@{row.version}"


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)
