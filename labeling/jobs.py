"""Background jobs: a queue in the ``jobs`` table and a registry of handlers.

A job kind maps to a handler ``"module:function"`` called as
``handler(db_url, payload) -> dict``; it is imported only when a job of that kind
runs, so a missing optional component fails that job (status ``failed`` with
the reason) instead of the worker. Handlers come from, in increasing priority:
the built-in table, the ``mds.jobs`` entry-point group, ``[jobs.handlers]`` in
mds.toml, and :func:`register_job_handler`.

``mds label worker`` runs :func:`run_worker` in its own process. A job is
claimed with a conditional UPDATE (``queued`` → ``running``), so two workers
never run the same job.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mds.db.models import Job
from mds.errors import LabelingError

BUILTIN_HANDLERS: dict[str, str] = {
    "finetune": "mds.learning.finetune:run_finetune_job",
}
_registered: dict[str, str | Callable[[str, dict[str, Any]], dict[str, Any]]] = {}


def register_job_handler(kind: str, target: str | Callable[[str, dict[str, Any]], dict[str, Any]]) -> None:
    """Run jobs of ``kind`` with ``target`` (a callable or ``"module:function"``)."""
    _registered[kind] = target


def handlers(settings: Any = None) -> dict[str, Any]:
    """The effective kind → handler table."""
    table: dict[str, Any] = dict(BUILTIN_HANDLERS)
    from importlib.metadata import entry_points

    for ep in entry_points(group="mds.jobs"):
        table[ep.name] = ep.value
    if settings is not None:
        table.update(settings.section("jobs").get("handlers") or {})
    table.update(_registered)
    return table


def resolve_handler(target: Any) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    if callable(target):
        return target
    mod, _, func = str(target).partition(":")
    if not mod or not func:
        raise LabelingError(f"bad job handler {target!r}: expected 'module:function'")
    return getattr(importlib.import_module(mod), func)


def enqueue(session: Session, kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None) -> Job:
    """Queue a job; with ``dedupe_key`` an existing job with that key is returned instead."""
    if dedupe_key:
        found = session.scalars(select(Job).where(Job.dedupe_key == dedupe_key)).first()
        if found is not None:
            return found
    job = Job(kind=kind, payload=payload, dedupe_key=dedupe_key, status="queued")
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:  # queued concurrently by another process
        return session.scalars(select(Job).where(Job.dedupe_key == dedupe_key)).one()
    return job


def requeue_failed(session: Session, kinds: list[str] | None = None) -> int:
    """Put failed jobs back in the queue (after fixing the cause); returns how many."""
    q = update(Job).where(Job.status == "failed")
    if kinds:
        q = q.where(Job.kind.in_(kinds))
    n = session.execute(q.values(status="queued", error=None)).rowcount
    session.commit()
    return int(n or 0)


def _claim(session: Session, job_id: int) -> bool:
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(status="running", started_at=datetime.now(UTC), attempts=Job.attempts + 1)
    )
    session.commit()
    return res.rowcount == 1


def run_job(db_url: str, job_id: int, *, settings: Any = None) -> str | None:
    """Claim and run one queued job; returns its final status (``None`` if someone else took it)."""
    from mds.db.engine import make_sessionmaker

    Session_ = make_sessionmaker(db_url)
    with Session_() as s:
        if not _claim(s, job_id):
            return None
        job = s.get(Job, job_id)
        assert job is not None
        kind, payload = job.kind, dict(job.payload or {})
    status, result, error = "done", {}, None
    target = handlers(settings).get(kind)
    try:
        if target is None:
            raise LabelingError(f"no handler for job kind {kind!r}")
        try:
            fn = resolve_handler(target)
        except (ImportError, AttributeError) as e:
            raise LabelingError(
                f"handler {target!r} for {kind!r} cannot be loaded: {type(e).__name__}: {e}"
            ) from e
        out = fn(db_url, payload)
        result = out if isinstance(out, dict) else {"result": out}
    except Exception as e:  # noqa: BLE001 - a job's failure is recorded, never crashes the worker
        status = "failed"
        error = f"{type(e).__name__}: {e}"
        result = {"traceback": traceback.format_exc(limit=5)[-4000:]}
    with Session_() as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.status, job.result, job.error = status, result, error
        job.finished_at = datetime.now(UTC)
        s.commit()
    return status


def run_worker(
    db_url: str,
    *,
    once: bool = False,
    poll_s: float = 2.0,
    settings: Any = None,
    kinds: list[str] | None = None,
    process_events: bool = True,
    client_factory: Callable[[], Any] | None = None,
    max_idle_s: float | None = None,
) -> dict[str, int]:
    """Process received webhook events and queued jobs until stopped (or until idle with ``once``)."""
    from mds.db.engine import make_sessionmaker

    counts = {"events": 0, "done": 0, "failed": 0}
    Session_ = make_sessionmaker(db_url)
    idle_since = time.monotonic()
    while True:
        worked = False
        if process_events:
            from labeling.webhook import process_pending_events

            n = process_pending_events(db_url, client_factory=client_factory)
            counts["events"] += n
            worked |= n > 0
        with Session_() as s:
            q = select(Job.id).where(Job.status == "queued").order_by(Job.id)
            if kinds:
                q = q.where(Job.kind.in_(kinds))
            ids = list(s.scalars(q))
        for jid in ids:
            st = run_job(db_url, jid, settings=settings)
            if st:
                counts[st] = counts.get(st, 0) + 1
                worked = True
        if once and not worked:
            return counts
        if worked:
            idle_since = time.monotonic()
        elif max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
            return counts
        if not worked:
            time.sleep(poll_s)
