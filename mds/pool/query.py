"""Read and remove pool entries: list, show, stats, remove, ingest errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, delete, distinct, func, select

from mds.db.models import (
    Annotation,
    DifficultyScore,
    EmbeddingRecord,
    IngestError,
    Label,
    LabelingTask,
    Prediction,
    Selection,
    Video,
)
from mds.errors import PoolError
from mds.pool.ingest import check_split
from mds.pool.summary import RemoveSummary

VIDEO_FIELDS = ("id", "name", "uri", "dataset", "split", "content_hash", "size_bytes", "container", "codec",
                "width", "height", "fps", "frame_count", "duration_s", "probed", "meta", "created_at",
                "updated_at")  # fmt: skip


def video_dict(v: Video) -> dict[str, Any]:
    return {f: getattr(v, f) for f in VIDEO_FIELDS}


def _filtered(q: Select, *, split: str | None, dataset: str | None, probed: bool | None,
              labelled: bool | None, search: str | None) -> Select:  # fmt: skip
    check_split(split)
    if split is not None:
        q = q.where(Video.split == split)
    if dataset is not None:
        q = q.where(Video.dataset == dataset)
    if probed is not None:
        q = q.where(Video.probed.is_(probed))
    if labelled is not None:
        has = select(Label.id).where(Label.video_id == Video.id).exists()
        q = q.where(has if labelled else ~has)
    if search:
        q = q.where(Video.name.contains(search, autoescape=True) | Video.uri.contains(search, autoescape=True))
    return q


def list_videos(
    db_url: str,
    *,
    split: str | None = None,
    dataset: str | None = None,
    probed: bool | None = None,
    labelled: bool | None = None,
    search: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Videos of the pool as dicts (ordered by ``id``), optionally filtered.

    ``search`` matches a substring of the name or uri; ``labelled`` keeps videos
    with (True) or without (False) an aggregated label. ``pandas.DataFrame(result)``
    gives a table.
    """
    from mds.db.engine import session_scope

    q = _filtered(select(Video), split=split, dataset=dataset, probed=probed, labelled=labelled, search=search)
    q = q.order_by(Video.id).offset(offset)
    if limit is not None:
        q = q.limit(limit)
    with session_scope(db_url) as s:
        return [video_dict(v) for v in s.scalars(q)]


def count_videos(db_url: str, **filters: Any) -> int:
    """Number of videos matching the filters of :func:`list_videos`."""
    from mds.db.engine import session_scope

    keys = dict.fromkeys(("split", "dataset", "probed", "labelled", "search"))
    keys.update(filters)
    q = _filtered(select(func.count(Video.id)), **keys)
    with session_scope(db_url) as s:
        return int(s.scalar(q) or 0)


def _resolve(s, ref: int | str) -> Video:
    """A video by id, uri or name (a name must be unique)."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
        v = s.get(Video, int(ref))
        if v is not None:
            return v
        if isinstance(ref, int):
            raise PoolError(f"no video with id {ref}")
    ref = str(ref)
    v = s.scalar(select(Video).where(Video.uri == ref))
    if v is not None:
        return v
    matches = list(s.scalars(select(Video).where(Video.name == ref).limit(5)))
    if len(matches) == 1:
        return matches[0]
    if matches:
        ids = ", ".join(str(m.id) for m in matches)
        raise PoolError(f"name {ref!r} is ambiguous (videos {ids}...); use the id or the uri")
    raise PoolError(f"no video with id, uri or name {ref!r}")


def get_video(db_url: str, ref: int | str) -> dict[str, Any]:
    """One video by id, uri or name, with its labels and a summary of derived records."""
    from mds.db.engine import session_scope

    with session_scope(db_url) as s:
        v = _resolve(s, ref)
        d = video_dict(v)
        d["labels"] = [
            {"source": lab.source, "kind": lab.kind, "mos": lab.mos, "std": lab.std, "n_ratings": lab.n_ratings,
             "ci95": lab.ci95, "scale_min": lab.scale_min, "scale_max": lab.scale_max, "value": lab.value,
             "round_id": lab.round_id}
            for lab in s.scalars(select(Label).where(Label.video_id == v.id).order_by(Label.id))
        ]
        d["predictions"] = [
            {"evaluator": p.evaluator, "version": p.evaluator_version, "variant": p.variant, "score": p.score,
             "parse_status": p.parse_status}
            for p in s.scalars(select(Prediction).where(Prediction.video_id == v.id).order_by(Prediction.id))
        ]
        d["difficulty_scores"] = {
            r.predictor: r.score for r in s.scalars(select(DifficultyScore).where(DifficultyScore.video_id == v.id))
        }
        d["embeddings"] = [
            {"encoder": r.encoder, "status": r.status, "n_frames": r.n_frames, "dim": r.dim}
            for r in s.scalars(select(EmbeddingRecord).where(EmbeddingRecord.video_id == v.id))
        ]
        d["selected_in_rounds"] = list(s.scalars(select(Selection.round_id).where(Selection.video_id == v.id)))
        return d


def pool_stats(db_url: str) -> dict[str, Any]:
    """Counts by split and dataset, probed/labelled counts, size, duration, codecs, ingest errors."""
    from mds.db.engine import session_scope

    with session_scope(db_url) as s:
        total = s.scalar(select(func.count(Video.id))) or 0
        by_ds_split = [
            {"dataset": d, "split": sp, "videos": n}
            for d, sp, n in s.execute(
                select(Video.dataset, Video.split, func.count(Video.id))
                .group_by(Video.dataset, Video.split)
                .order_by(Video.dataset, Video.split)
            )
        ]
        by_split: dict[str, int] = {}
        by_dataset: dict[str, int] = {}
        for r in by_ds_split:
            by_split[r["split"]] = by_split.get(r["split"], 0) + r["videos"]
            by_dataset[r["dataset"]] = by_dataset.get(r["dataset"], 0) + r["videos"]
        probed = s.scalar(select(func.count(Video.id)).where(Video.probed.is_(True))) or 0
        labelled = s.scalar(select(func.count(distinct(Label.video_id)))) or 0
        size, dur = s.execute(select(func.sum(Video.size_bytes), func.sum(Video.duration_s))).one()
        codecs = dict(
            s.execute(select(Video.codec, func.count(Video.id)).where(Video.codec.is_not(None)).group_by(Video.codec))
            .tuples()
            .all()
        )
        errors = dict(
            s.execute(select(IngestError.error_type, func.count(IngestError.id)).group_by(IngestError.error_type))
            .tuples()
            .all()
        )
        preds = dict(
            s.execute(select(Prediction.evaluator, func.count(Prediction.id)).group_by(Prediction.evaluator))
            .tuples()
            .all()
        )
    return {
        "videos": int(total),
        "by_split": by_split,
        "by_dataset": by_dataset,
        "by_dataset_split": by_ds_split,
        "probed": int(probed),
        "labelled": int(labelled),
        "total_bytes": int(size or 0),
        "total_duration_s": float(dur or 0.0),
        "codecs": codecs,
        "predictions": preds,
        "ingest_errors": errors,
    }


def list_ingest_errors(
    db_url: str, *, run_id: str | None = None, error_type: str | None = None, limit: int | None = 100
) -> list[dict[str, Any]]:
    """Recorded ingest errors, newest first."""
    from mds.db.engine import session_scope

    q = select(IngestError).order_by(IngestError.id.desc())
    if run_id:
        q = q.where(IngestError.run_id == run_id)
    if error_type:
        q = q.where(IngestError.error_type == error_type)
    if limit is not None:
        q = q.limit(limit)
    with session_scope(db_url) as s:
        return [
            {"id": e.id, "source": e.source, "error_type": e.error_type, "reason": e.reason, "run_id": e.run_id,
             "created_at": e.created_at}
            for e in s.scalars(q)
        ]


_BLOCKERS = (
    (Selection.video_id, "selected in a round"),
    (LabelingTask.video_id, "has labelling tasks"),
    (Prediction.pair_video_id, "is the pair of another video's prediction"),
    (Annotation.pair_video_id, "is the pair of another video's annotation"),
)


def remove_videos(
    db_url: str,
    refs: Sequence[int | str] = (),
    *,
    split: str | None = None,
    dataset: str | None = None,
    dry_run: bool = False,
) -> RemoveSummary:
    """Remove videos by id/uri/name and/or every video of a split/dataset.

    Labels, predictions, difficulty scores, embedding records and annotations of
    a removed video go with it (vectors in embedding stores stay on disk). Videos
    that rounds refer to (selections, labelling tasks, pairs) are kept and
    reported in ``skipped``: rounds stay auditable. Unknown refs raise
    :class:`PoolError` before anything is removed.
    """
    from mds.db.engine import session_scope

    if not refs and split is None and dataset is None:
        raise PoolError("nothing to remove: give video ids/names/uris or a split/dataset filter")
    out = RemoveSummary(dry_run=dry_run)
    with session_scope(db_url) as s:
        chosen: dict[int, str] = {}
        for ref in refs:
            v = _resolve(s, ref)
            chosen[v.id] = v.name
        if split is not None or dataset is not None:
            q = _filtered(select(Video.id, Video.name), split=split, dataset=dataset, probed=None, labelled=None,
                          search=None)  # fmt: skip
            for vid, name in s.execute(q):
                chosen[vid] = name
        ids = sorted(chosen)
        blocked: dict[int, str] = {}
        for i in range(0, len(ids), 2000):
            chunk = ids[i : i + 2000]
            for col, why in _BLOCKERS:
                for vid in s.scalars(select(col).where(col.in_(chunk)).distinct()):
                    blocked.setdefault(vid, why)
        out.skipped = [{"id": vid, "name": chosen[vid], "reason": why} for vid, why in sorted(blocked.items())]
        out.removed = [vid for vid in ids if vid not in blocked]
        if not dry_run:
            for i in range(0, len(out.removed), 2000):
                chunk = out.removed[i : i + 2000]
                # ORM-free bulk delete; child rows go through ON DELETE CASCADE.
                for model in (Label, Prediction, DifficultyScore, EmbeddingRecord, Annotation):
                    s.execute(delete(model).where(model.video_id.in_(chunk)))
                s.execute(delete(Video).where(Video.id.in_(chunk)))
    return out
