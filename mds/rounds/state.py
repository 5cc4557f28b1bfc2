"""Round records: create, find, and mark steps done (each step commits its own record)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from mds.db.engine import session_scope
from mds.db.models import Round
from mds.errors import ConfigError

START_STEPS = ("base", "score", "difficulty", "embed", "select", "push")
FINISH_STEPS = ("pull", "aggregate", "finetune", "evaluate", "report")
# Round.status after each step (the foundation's status vocabulary)
STATUS_AFTER = {"base": "created", "score": "scored", "difficulty": "scored", "embed": "embedded",
                "select": "selected", "push": "pushed", "pull": "pushed", "aggregate": "labelled",
                "finetune": "finetuned", "evaluate": "evaluated", "report": "done"}
ORDER = {s: i for i, s in enumerate(("created", "scored", "embedded", "selected", "pushed", "labelled",
                                     "finetuned", "evaluated", "done"))}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def create_round(db_url: str, *, snapshot: dict[str, Any], config_hash: str, strategy: str, budget_spec: str,
                 seed: int, lambda_: float | None, evaluator: str, encoder: str | None) -> int:
    """Insert a new Round (status ``created``, next number); returns its id."""
    with session_scope(db_url) as s:
        number = (s.scalar(select(func.max(Round.number))) or 0) + 1
        r = Round(number=number, strategy=strategy, budget=0, budget_spec=budget_spec, seed=seed, lambda_=lambda_,
                  evaluator=evaluator, encoder=encoder, config=snapshot, config_hash=config_hash,
                  status="created", steps={})
        s.add(r)
        s.flush()
        return r.id


def unfinished_start(db_url: str) -> Round | None:
    """The latest round whose start steps are not all done (a crashed ``round start``)."""
    with session_scope(db_url) as s:
        r = s.scalars(select(Round).order_by(Round.number.desc()).limit(1)).first()
        if r is None or r.status == "failed":
            return None
        steps = r.steps or {}
        if all(st in steps for st in START_STEPS):
            return None
        s.expunge(r)
        return r


def get_round(db_url: str, number: int | None = None) -> Round:
    """Round ``number`` (default: the latest)."""
    with session_scope(db_url) as s:
        q = select(Round).order_by(Round.number.desc()).limit(1) if number is None else \
            select(Round).where(Round.number == number)
        r = s.scalars(q).first()
        if r is None:
            raise ConfigError("no rounds yet: run `mds round start`" if number is None else f"no round {number}")
        _ = list(r.selections)
        s.expunge_all()
        return r


def mark_done(db_url: str, round_id: int, step: str, info: dict[str, Any] | None = None, **columns: Any) -> None:
    """Record ``step`` as done (with ``info``) and advance the status; ``columns`` are set on the Round."""
    with session_scope(db_url) as s:
        r = s.get(Round, round_id)
        steps = dict(r.steps or {})
        steps[step] = {"done_at": now(), **(info or {})}
        r.steps = steps
        for k, v in columns.items():
            setattr(r, k, v)
        new = STATUS_AFTER[step]
        if r.status == "failed" or ORDER.get(new, 0) >= ORDER.get(r.status, 0):
            r.status = new
        r.error = None
        if step == "report":
            r.finished_at = datetime.now(UTC)


def mark_failed(db_url: str, round_id: int, step: str, error: BaseException) -> None:
    """Keep the error on the round (the status stays where the last finished step left it)."""
    with session_scope(db_url) as s:
        r = s.get(Round, round_id)
        r.error = f"{step}: {type(error).__name__}: {error}"[:4000]


def update_metrics(db_url: str, round_id: int, metrics: dict[str, Any]) -> None:
    with session_scope(db_url) as s:
        r = s.get(Round, round_id)
        r.metrics = {**(r.metrics or {}), **metrics}
