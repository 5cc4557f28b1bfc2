"""Embed the pool: sampled frames -> CLIP vectors -> store + FAISS index + EmbeddingRecord rows.

Incremental (only videos without an ``ok`` record for the encoder key) and
resumable: vectors are fsync'ed before their records are committed, and the
pooled index is brought up to date from the records at the start of every run.
Frames of several videos are encoded in one batch; decoding runs in a thread
pool ahead of the model. A video that cannot be decoded gets a ``failed`` record
with the error and the run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select

from mds.db.engine import session_scope
from mds.db.models import EmbeddingRecord, Video
from mds.errors import MdsError
from selection.embeddings.encoder import ClipEncoder, EncoderSpec
from selection.embeddings.store import EmbeddingStore, pool_vectors


@dataclass
class EmbedReport:
    encoder: str
    embedded: int = 0
    failed: int = 0
    skipped: int = 0
    frames: int = 0
    seconds: float = 0.0
    errors: dict[int, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def pending_videos(db_url: str, encoder_key: str, *, split: str | None = None, video_ids: Iterable[int] | None = None,
                   retry_failed: bool = False) -> tuple[list[tuple[int, str]], int]:
    """``[(video_id, uri)]`` still to embed (ascending id), and how many are already done."""
    with session_scope(db_url) as s:
        q = select(Video.id, Video.uri).order_by(Video.id)
        if split:
            q = q.where(Video.split == split)
        if video_ids is not None:
            q = q.where(Video.id.in_(list(video_ids)))
        rows = s.execute(q).all()
        recs = dict(s.execute(select(EmbeddingRecord.video_id, EmbeddingRecord.status)
                              .where(EmbeddingRecord.encoder == encoder_key)).all())
    todo = [(vid, uri) for vid, uri in rows if recs.get(vid) != "ok" and (retry_failed or recs.get(vid) != "failed")]
    return todo, len(rows) - len(todo)


def sync_index(db_url: str, store: EmbeddingStore) -> int:
    """Add pooled vectors of ``ok`` records that the FAISS index lacks (after a crash); returns how many."""
    with session_scope(db_url) as s:
        recs = s.execute(select(EmbeddingRecord.video_id, EmbeddingRecord.location, EmbeddingRecord.offset,
                                EmbeddingRecord.n_frames)
                         .where(EmbeddingRecord.encoder == store.encoder_key, EmbeddingRecord.status == "ok")).all()
    have = set(store.indexed_ids().tolist()) if store.index_path.is_file() else set()
    missing = [r for r in recs if r[0] not in have]
    if missing:
        vecs = np.stack([pool_vectors(store.read(loc, off, n)) for _, loc, off, n in missing])
        store.add_pooled([r[0] for r in missing], vecs)
    return len(missing)


def _write_records(db_url: str, key: str, dim: int, done: list[tuple[int, tuple[str, int, int], dict]],
                   failed: list[tuple[int, str]]) -> None:
    with session_scope(db_url) as s:
        ids = [v for v, _, _ in done] + [v for v, _ in failed]
        existing = {r.video_id: r for r in s.scalars(select(EmbeddingRecord).where(
            EmbeddingRecord.encoder == key, EmbeddingRecord.video_id.in_(ids)))}
        for vid, (loc, off, n), extra in done:
            r = existing.get(vid) or EmbeddingRecord(video_id=vid, encoder=key)
            r.status, r.n_frames, r.dim, r.dtype, r.location, r.offset, r.error, r.extra = (
                "ok", n, dim, "float16", loc, off, None, extra)
            s.add(r)
        for vid, err in failed:
            r = existing.get(vid) or EmbeddingRecord(video_id=vid, encoder=key)
            r.status, r.error, r.location, r.offset, r.n_frames = "failed", err[:2000], None, None, None
            s.add(r)


def embed_pool(
    db_url: str,
    *,
    data_dir: str | Path,
    spec: EncoderSpec | None = None,
    encoder: ClipEncoder | None = None,
    split: str | None = None,
    video_ids: Iterable[int] | None = None,
    batch_size: int = 64,
    chunk_videos: int = 32,
    decode_workers: int = 2,
    device: str = "auto",
    retry_failed: bool = False,
    progress: bool = True,
) -> EmbedReport:
    """Embed every video (of ``split`` / ``video_ids``) that has no ``ok`` vectors for the encoder key."""
    from mds.video.frames import sample_frames

    t0 = time.perf_counter()
    enc = encoder or ClipEncoder(spec or EncoderSpec(), device=device)
    key = enc.key
    store = EmbeddingStore(data_dir, key, dim=enc.dim)
    sync_index(db_url, store)
    todo, done_before = pending_videos(db_url, key, split=split, video_ids=video_ids, retry_failed=retry_failed)
    report = EmbedReport(encoder=key, skipped=done_before)
    cfg = enc.spec.sampling

    def decode(item: tuple[int, str]) -> tuple[int, object]:
        vid, uri = item
        try:
            return vid, sample_frames(uri, cfg)
        except MdsError as e:
            return vid, f"{type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 - any decoder failure is recorded per video
            return vid, f"{type(e).__name__}: {e}"

    bar = None
    if progress and todo:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("embed"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
        bar.start()
        task = bar.add_task("embed", total=len(todo))
    try:
        with ThreadPoolExecutor(max_workers=max(1, decode_workers)) as pool:
            for c in range(0, len(todo), chunk_videos):
                chunk = list(pool.map(decode, todo[c : c + chunk_videos]))
                ok = [(vid, sf) for vid, sf in chunk if not isinstance(sf, str)]
                failed = [(vid, sf) for vid, sf in chunk if isinstance(sf, str)]
                vecs_per_video: list[np.ndarray] = []
                if ok:
                    frames = np.concatenate([sf.frames for _, sf in ok])  # type: ignore[union-attr]
                    vecs = enc.encode(frames, batch_size=batch_size)  # batches span videos
                    i = 0
                    for _, sf in ok:
                        n = len(sf.frames)  # type: ignore[union-attr]
                        vecs_per_video.append(vecs[i : i + n])
                        i += n
                    report.frames += len(frames)
                locs = store.append(vecs_per_video) if ok else []  # durable before any record
                done = [(vid, loc, {"frame_indices": list(sf.indices)}) for (vid, sf), loc in zip(ok, locs)]  # type: ignore[union-attr]
                _write_records(db_url, key, enc.dim, done, failed)
                if ok:
                    store.add_pooled([vid for vid, _ in ok], np.stack([pool_vectors(v) for v in vecs_per_video]))
                report.embedded += len(ok)
                report.failed += len(failed)
                report.errors.update(dict(failed))
                if bar is not None:
                    bar.update(task, advance=len(chunk))
    finally:
        if bar is not None:
            bar.stop()
    report.seconds = time.perf_counter() - t0
    return report
