"""Rounds end to end: ``start_round`` (base → score → difficulty → embed → select → push) and
``finish_round`` (pull → aggregate → fine-tune → evaluate → report), each step recorded in
``Round.steps`` and skipped when re-run, so a crashed round resumes where it stopped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

import mds
from mds.config import Settings, load_settings
from mds.db.engine import session_scope
from mds.db.models import Round, Selection, Video
from mds.errors import ConfigError
from mds.rounds.config import RoundConfig
from mds.rounds.state import (
    FINISH_STEPS,
    START_STEPS,
    create_round,
    get_round,
    mark_done,
    mark_failed,
    unfinished_start,
    update_metrics,
)
from mds.rounds.steps import STEP_FUNCTIONS, RoundContext

StepHook = Callable[[str, str, dict[str, Any] | None], None]  # (step, "start"|"done"|"skip", info)


def _snapshot(cfg: RoundConfig) -> dict[str, Any]:
    return {
        "round": cfg.as_dict(),
        "seeds": {"selection": cfg.seed, "training": cfg.seed},
        "clip_random_init": not cfg.clip_pretrained,
        "mds_version": mds.__version__,
    }


def _run(ctx: RoundContext, steps: tuple[str, ...], hook: StepHook | None) -> list[str]:
    steps_mod = importlib.import_module("mds.rounds.steps")
    ran: list[str] = []
    for step in steps:
        if step in (ctx.round().steps or {}):
            if hook:
                hook(step, "skip", None)
            continue
        if hook:
            hook(step, "start", None)
        fn = getattr(steps_mod, STEP_FUNCTIONS[step])  # looked up at call time (tests patch steps)
        try:
            info = dict(fn(ctx) or {})
        except BaseException as e:
            mark_failed(ctx.db_url, ctx.round_id, step, e)
            raise
        columns = info.pop("_columns", {})
        metrics = info.pop("_metrics", None)
        if metrics:
            update_metrics(ctx.db_url, ctx.round_id, metrics)
        mark_done(ctx.db_url, ctx.round_id, step, info, **columns)
        ran.append(step)
        if hook:
            hook(step, "done", info)
    return ran


def _context(db_url: str, settings: Settings, r: Round) -> RoundContext:
    cfg = RoundConfig.from_dict((r.config or {}).get("round", {}))
    return RoundContext(db_url=db_url, settings=settings, round_id=r.id, number=r.number, cfg=cfg)


def start_round(db_url: str, cfg: RoundConfig | None = None, *, settings: Settings | None = None,
                hook: StepHook | None = None) -> dict[str, Any]:
    """Start a round (or resume the one whose start crashed); returns its status."""
    settings = settings or load_settings(db_url=db_url)
    cfg = cfg or RoundConfig()
    resumed = unfinished_start(db_url)
    if resumed is None:
        with session_scope(db_url) as s:
            last = s.scalars(select(Round).order_by(Round.number.desc()).limit(1)).first()
            if last is not None and last.status not in ("done", "failed"):
                raise ConfigError(f"round {last.number} is not finished ({last.status}): run `mds round finish` first")
        from mds.rounds.steps import encoder_spec

        enc_key = encoder_spec(cfg).key() if cfg.strategy in ("mds", "diversity") else None
        rid = create_round(db_url, snapshot=_snapshot(cfg), config_hash=cfg.hash(), strategy=cfg.strategy,
                           budget_spec=cfg.budget, seed=cfg.seed, lambda_=cfg.lambda_, evaluator=cfg.evaluator,
                           encoder=enc_key)
        r = get_round_by_id(db_url, rid)
    else:
        r = resumed
    ctx = _context(db_url, settings, r)
    ran = _run(ctx, START_STEPS, hook)
    return {**round_status(db_url, r.number), "resumed": resumed is not None, "ran": ran}


def finish_round(db_url: str, number: int | None = None, *, settings: Settings | None = None,
                 hook: StepHook | None = None) -> dict[str, Any]:
    """Finish round ``number`` (default: the latest): collect labels, fine-tune, evaluate, report."""
    settings = settings or load_settings(db_url=db_url)
    r = get_round(db_url, number)
    missing = [s for s in START_STEPS if s not in (r.steps or {})]
    if missing:
        raise ConfigError(f"round {r.number} has not been started completely (missing {', '.join(missing)}): "
                          "run `mds round start` to resume it")
    ctx = _context(db_url, settings, r)
    ran = _run(ctx, FINISH_STEPS, hook)
    return {**round_status(db_url, r.number), "ran": ran}


def get_round_by_id(db_url: str, round_id: int) -> Round:
    with session_scope(db_url) as s:
        r = s.get(Round, round_id)
        s.expunge(r)
        return r


def round_status(db_url: str, number: int | None = None) -> dict[str, Any]:
    """Status of a round: steps done and pending, models, selection, metrics, last error."""
    r = get_round(db_url, number)
    steps = r.steps or {}
    with session_scope(db_url) as s:
        picks = s.execute(select(Selection.pick_order, Video.name, Selection.difficulty, Selection.diversity,
                                 Selection.total).join(Video, Video.id == Selection.video_id)
                          .where(Selection.round_id == r.id).order_by(Selection.pick_order)).all()
    return {
        "number": r.number, "status": r.status, "strategy": r.strategy, "budget": r.budget,
        "budget_spec": r.budget_spec, "seed": r.seed, "lambda": r.lambda_, "encoder": r.encoder,
        "evaluator": r.evaluator, "base_checkpoint_id": r.base_checkpoint_id,
        "predictor_checkpoint_id": r.predictor_checkpoint_id, "finetuned_checkpoint_id": r.finetuned_checkpoint_id,
        "config_hash": r.config_hash,
        "steps_done": [s for s in (*START_STEPS, *FINISH_STEPS) if s in steps],
        "steps_pending": [s for s in (*START_STEPS, *FINISH_STEPS) if s not in steps],
        "steps": steps, "metrics": r.metrics or {}, "error": r.error,
        "selection": [{"rank": o + 1, "video": n, "difficulty": d, "diversity": v, "total": t}
                      for o, n, d, v, t in picks],
        "clip_random_init": (r.config or {}).get("clip_random_init"),
    }


def list_rounds(db_url: str) -> list[dict[str, Any]]:
    """One line per round: number, status, strategy, budget, picks, test SRCC before/after."""
    with session_scope(db_url) as s:
        rows = list(s.scalars(select(Round).order_by(Round.number)))
        out = []
        for r in rows:
            m = r.metrics or {}
            out.append({
                "number": r.number, "status": r.status, "strategy": r.strategy, "budget": r.budget,
                "seed": r.seed, "picks": len(r.selections),
                "base_srcc": (m.get("base") or {}).get("target_test", {}).get("srcc"),
                "finetuned_srcc": (m.get("finetuned") or {}).get("target_test", {}).get("srcc"),
                "created_at": r.created_at.isoformat() if r.created_at else None,
                "error": r.error,
            })
    return out
