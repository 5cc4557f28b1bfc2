"""Ingest local video files: discover, hash and probe in a thread pool, write in batches."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mds.db.models import SPLITS, Video
from mds.errors import PoolError
from mds.pool.summary import IngestSummary
from mds.pool.writer import BatchWriter, Candidate, _fetch

DEFAULT_BATCH = 256


def default_workers() -> int:
    """Threads for hashing/probing: PyAV and hashlib release the GIL, so a few per core pay off."""
    return max(2, min(8, 2 * (os.cpu_count() or 1)))


def check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise PoolError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")


def probe_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    """``(sha256, probe facts)`` of one file; raises :class:`BrokenVideoError` for bad files."""
    from mds.video.probe import file_sha256, probe

    result = probe(path)  # first: cheap rejection of broken files before hashing
    return file_sha256(path), result.as_dict()


def _probe_safely(c: Candidate) -> tuple[Candidate, tuple[str, str] | None]:
    from mds.video.probe import BrokenVideoError

    try:
        c.content_hash, c.probe = probe_file(c.uri)
        return c, None
    except BrokenVideoError as e:
        return c, (e.kind, e.detail)
    except PermissionError:
        return c, ("unreadable", "permission denied")
    except Exception as e:  # noqa: BLE001 (any other failure of one file must not end the run)
        return c, ("error", f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")


@contextmanager
def _progress(enabled: bool, total: int, label: str) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    ) as prog:  # fmt: skip
        task = prog.add_task(label, total=total)
        yield lambda n: prog.advance(task, n)


def run_ingest(
    db_url: str,
    candidates: Iterable[Candidate | tuple[str, str, str]],
    *,
    total: int,
    summary: IngestSummary,
    writer: BatchWriter,
    probe_local: Callable[[Candidate], bool],
    batch_size: int,
    workers: int | None,
    progress: bool,
    label: str,
    quick_skip: bool = False,
) -> IngestSummary:
    """Shared loop of ``add_paths`` and ``import_manifest``.

    ``candidates`` yields :class:`Candidate` objects or ``(source, error_type, reason)``
    tuples for entries already known to be bad. Each batch is probed in a thread
    pool and written in its own transaction: a crash loses at most that batch.
    """
    from mds.db.engine import get_engine

    engine = get_engine(db_url)
    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=workers or default_workers())
    try:
        with _progress(progress, total, label) as advance:
            batch: list[Candidate | tuple[str, str, str]] = []
            for item in candidates:
                batch.append(item)
                if len(batch) >= batch_size:
                    _one_batch(engine, batch, writer, pool, probe_local, quick_skip)
                    advance(len(batch))
                    batch = []
            if batch:
                _one_batch(engine, batch, writer, pool, probe_local, quick_skip)
                advance(len(batch))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        summary.elapsed_s = time.perf_counter() - t0
    return summary


def _one_batch(engine, items, writer: BatchWriter, pool, probe_local, quick_skip: bool) -> None:
    errors = [it for it in items if isinstance(it, tuple)]
    cands = [it for it in items if isinstance(it, Candidate)]
    to_probe = [c for c in cands if probe_local(c)]
    if quick_skip and to_probe:
        with engine.connect() as conn:
            known = _fetch(conn, Video.uri, [c.uri for c in to_probe])
        to_probe = [c for c in to_probe if not _reuse_known(c, known.get(c.uri))]
    failed: set[int] = set()
    for c, err in pool.map(_probe_safely, to_probe):
        if err is not None:
            errors.append((c.source, err[0], err[1]))
            failed.add(id(c))
    cands = [c for c in cands if id(c) not in failed]
    for c in cands:
        problem = _too_long(c)
        if problem:
            errors.append((c.source, "bad_value", problem))
            failed.add(id(c))
    cands = [c for c in cands if id(c) not in failed]
    _write_isolated(engine, writer, cands, errors)


def _too_long(c: Candidate) -> str | None:
    limits = {"uri": (c.uri, 2048), "dataset": (c.dataset, 128)}
    for what, (value, limit) in limits.items():
        if value is not None and len(value) > limit:
            return f"{what} longer than {limit} characters"
    return None


def _write_isolated(engine, writer: BatchWriter, cands: list[Candidate], errors: list) -> None:
    """Write a batch in one transaction; if the database rejects a value, redo it entry by entry.

    A value the database refuses (e.g. a NUL character on PostgreSQL) then fails only its
    own entry, recorded as ``db_error``, instead of the whole run.
    """
    from sqlalchemy.exc import DataError, IntegrityError

    dbapi = engine.dialect.dbapi
    # bulk paths talk to the driver directly, so its own exception classes can surface too
    rejected = (DataError, IntegrityError, dbapi.DataError, dbapi.IntegrityError)
    state = writer.snapshot()
    try:
        with engine.begin() as conn:
            writer.write(conn, cands, list(errors))
        return
    except rejected:
        writer.restore(state)
    errors = list(errors)
    for c in cands:
        state = writer.snapshot()
        try:
            with engine.begin() as conn:
                writer.write(conn, [c], [])
        except rejected as e:
            writer.restore(state)
            msg = str(getattr(e, "orig", e) or e).strip().splitlines()
            errors.append((c.source, "db_error", (msg[0] if msg else type(e).__name__)[:300]))
    if errors:
        with engine.begin() as conn:
            writer.write(conn, [], errors)


def _reuse_known(c: Candidate, row: dict[str, Any] | None) -> bool:
    """Skip re-hashing a file already probed at this path and not modified since (a resumed run)."""
    if row is None or not row["probed"] or not row["content_hash"]:
        return False
    try:
        st = os.stat(c.uri)
    except OSError:
        return False
    if st.st_size != row["size_bytes"] or not _mtime_ok(st.st_mtime, row):
        return False
    c.content_hash = row["content_hash"]
    return True


def _mtime_ok(mtime: float, row: dict[str, Any]) -> bool:
    stamp = row.get("updated_at")
    if stamp is None:
        return False
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return datetime.fromtimestamp(mtime, tz=UTC) <= stamp


def add_paths(
    db_url: str,
    paths: Sequence[str | Path] | str | Path,
    *,
    dataset: str | None = None,
    split: str | None = None,
    meta: dict[str, Any] | None = None,
    strict: bool = False,
    batch_size: int = DEFAULT_BATCH,
    workers: int | None = None,
    recursive: bool = True,
    rehash: bool = False,
    progress: bool = False,
) -> IngestSummary:
    """Add video files to the pool: files, folders (recursively, by video extension) and globs.

    Each file is probed with PyAV (decode check of the first and last frames) and
    hashed (sha256) in a thread pool; results are committed every ``batch_size``
    files. Re-adding the same content changes nothing; a file whose content is
    already in the pool under another path is recognised by its hash and the
    video's ``uri`` is updated (``moved``). Files that cannot be read are recorded
    as ingest errors and the run goes on.

    Args:
        db_url: database URL (at the latest schema).
        paths: files, folders or glob patterns.
        dataset: dataset/domain of new videos (default ``"default"``); when given, also
            applied to videos already in the pool.
        split: ``source``, ``pool`` or ``test`` (default ``"pool"`` for new videos);
            when given, also applied to known videos.
        meta: metadata merged into each video's ``meta``.
        strict: raise :class:`PoolError` (with ``.summary``) if any entry failed; what
            was ingested stays committed.
        batch_size: files per transaction.
        workers: hashing/probing threads (default: :func:`default_workers`).
        recursive: walk folders recursively.
        rehash: hash and probe files again even when path, size and mtime say they
            are already in the pool unchanged.
        progress: show a Rich progress bar on stderr.

    Returns:
        :class:`IngestSummary` with counts and the recorded errors.
    """
    from mds.pool.discover import discover

    check_split(split)
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files, missing = discover(paths, recursive=recursive)
    summary = IngestSummary()
    writer = BatchWriter(summary)

    def items() -> Iterator[Candidate | tuple[str, str, str]]:
        for arg, reason in missing:
            yield (arg, "missing_path", reason)
        for f in files:
            yield Candidate(source=str(f), uri=str(f), name=f.name, dataset=dataset, split=split,
                            meta=dict(meta) if meta else None)  # fmt: skip

    run_ingest(
        db_url, items(), total=len(files) + len(missing), summary=summary, writer=writer,
        probe_local=lambda c: True, batch_size=batch_size, workers=workers, progress=progress,
        label="probing", quick_skip=not rehash,
    )  # fmt: skip
    return _finish(summary, strict)


def _finish(summary: IngestSummary, strict: bool) -> IngestSummary:
    if strict and summary.failed:
        err = PoolError(f"{summary.failed} entries failed (strict mode); {summary.line()}")
        err.summary = summary  # type: ignore[attr-defined]
        raise err
    return summary
