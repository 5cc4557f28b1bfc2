"""Database-level selection: candidates from the pool, scores and vectors from the DB/store, a Round out.

Candidate order (the tie-break order) is ascending ``video_id``. A selection is
written as a ``Round`` with status ``selected`` (config snapshot + hash, seed,
encoder, predictor) and one ``Selection`` row per pick with its audit terms.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

import mds
from mds.db.engine import session_scope
from mds.db.models import SPLITS, DifficultyScore, EmbeddingRecord, Label, Round, Selection, Video
from mds.errors import SelectionError
from selection.api import make_strategy, resolve_budget
from selection.distances import FrameBank, PooledBank
from selection.strategies.base import SelectionProblem, SelectionResult

# Rounds whose picks are still waiting for labels: their videos are "in flight".
IN_FLIGHT_STATUSES = ("created", "scored", "embedded", "selected", "pushed")


@dataclass
class CandidateFilter:
    """Which videos may be picked.

    ``meta`` holds equality predicates on ``Video.meta`` (``{"category": "Music"}``;
    a list value means "any of"). ``exclude_labelled`` drops videos with any
    ``Label``; ``exclude_in_flight`` drops videos picked in an unfinished round.
    """

    split: str | None = "pool"
    datasets: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    video_ids: list[int] | None = None
    exclude_labelled: bool = True
    exclude_in_flight: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _meta_ok(meta: dict[str, Any] | None, preds: dict[str, Any]) -> bool:
    meta = meta or {}
    for k, want in preds.items():
        have = meta.get(k)
        if isinstance(want, (list, tuple, set)):
            if have not in want:
                return False
        elif have != want and str(have) != str(want):
            return False
    return True


def candidate_ids(db_url: str, flt: CandidateFilter) -> tuple[list[int], dict[str, int]]:
    """Candidate ``video_id``s in ascending order and what each filter removed."""
    if flt.split is not None and flt.split not in SPLITS:
        raise SelectionError(f"unknown split {flt.split!r}; use one of {', '.join(SPLITS)}")
    counts: dict[str, int] = {}
    with session_scope(db_url) as s:
        q = select(Video.id, Video.meta).order_by(Video.id)
        if flt.split is not None:
            q = q.where(Video.split == flt.split)
        if flt.datasets:
            q = q.where(Video.dataset.in_(flt.datasets))
        if flt.video_ids is not None:
            q = q.where(Video.id.in_(flt.video_ids))
        rows = s.execute(q).all()
        counts["matched"] = len(rows)
        if flt.meta:
            rows = [r for r in rows if _meta_ok(r[1], flt.meta)]
            counts["meta_filtered"] = counts["matched"] - len(rows)
        ids = [r[0] for r in rows]
        if flt.exclude_labelled:
            labelled = set(s.scalars(select(Label.video_id).distinct()))
            counts["labelled"] = sum(1 for i in ids if i in labelled)
            ids = [i for i in ids if i not in labelled]
        if flt.exclude_in_flight:
            busy = set(s.scalars(select(Selection.video_id).join(Round).where(Round.status.in_(IN_FLIGHT_STATUSES))))
            counts["in_flight"] = sum(1 for i in ids if i in busy)
            ids = [i for i in ids if i not in busy]
    counts["candidates"] = len(ids)
    return ids, counts


def labelled_ids(db_url: str, flt: CandidateFilter) -> list[int]:
    """Labelled videos of the same split/datasets (the context of ``count_labelled``)."""
    with session_scope(db_url) as s:
        q = select(Video.id).join(Label, Label.video_id == Video.id).distinct().order_by(Video.id)
        if flt.split is not None:
            q = q.where(Video.split == flt.split)
        if flt.datasets:
            q = q.where(Video.dataset.in_(flt.datasets))
        return list(s.scalars(q))


def _resolve_one(db_url: str, column: Any, what: str, given: str | None, ids: list[int], flag: str) -> str:
    if given:
        return given
    with session_scope(db_url) as s:
        q = select(column).distinct()
        if what == "encoder":
            q = q.where(EmbeddingRecord.status == "ok")
        found = sorted(s.scalars(q))
    if len(found) == 1:
        return found[0]
    if not found:
        raise SelectionError(f"no {what} in the database; {flag}")
    raise SelectionError(f"several {what}s exist ({', '.join(found[:5])}); choose one with {flag}")


def load_difficulty(db_url: str, predictor: str, ids: list[int]) -> dict[int, float]:
    with session_scope(db_url) as s:
        rows = s.execute(select(DifficultyScore.video_id, DifficultyScore.score).where(
            DifficultyScore.predictor == predictor)).all()
    wanted = set(ids)
    return {v: float(x) for v, x in rows if v in wanted}


def load_features(db_url: str, encoder: str, ids: list[int], *, data_dir: str | Path, kind: str = "frames",
                  dtype: type = np.float32) -> tuple[list[int], FrameBank | PooledBank | None]:
    """Vectors of ``ids`` that have an ``ok`` record for ``encoder`` (ids kept in order) and their bank."""
    from selection.embeddings.store import EmbeddingStore

    with session_scope(db_url) as s:
        recs = {r[0]: r[1:] for r in s.execute(select(
            EmbeddingRecord.video_id, EmbeddingRecord.location, EmbeddingRecord.offset, EmbeddingRecord.n_frames)
            .where(EmbeddingRecord.encoder == encoder, EmbeddingRecord.status == "ok"))}
    have = [i for i in ids if i in recs]
    if not have:
        return [], None
    store = EmbeddingStore(data_dir, encoder)
    if kind == "pooled":
        return have, PooledBank(store.pooled(have))
    sets = [store.read(*recs[i]) for i in have]
    return have, FrameBank.from_list(sets, dtype=dtype)


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def load_problem(
    db_url: str,
    *,
    strategy: Any,
    filters: CandidateFilter | None = None,
    encoder: str | None = None,
    predictor: str | None = None,
    count_labelled: bool = False,
    data_dir: str | Path | None = None,
    dtype: type = np.float32,
) -> tuple[SelectionProblem, dict[str, Any]]:
    """Build the in-memory problem for ``strategy`` from the DB; returns it with a description for the config."""
    flt = filters or CandidateFilter()
    ids, counts = candidate_ids(db_url, flt)
    info: dict[str, Any] = {"filters": flt.as_dict(), "counts": counts}
    difficulty = None
    if strategy.needs_difficulty or predictor:
        predictor = _resolve_one(db_url, DifficultyScore.predictor, "predictor", predictor, ids, "--predictor")
        g = load_difficulty(db_url, predictor, ids)
        counts["missing_difficulty"] = len(ids) - len(g)
        ids = [i for i in ids if i in g]
        difficulty = np.array([g[i] for i in ids], dtype=np.float64)
    info["predictor"] = predictor
    bank = None
    context: list[int] = []
    if strategy.needs_features or encoder:
        encoder = _resolve_one(db_url, EmbeddingRecord.encoder, "encoder", encoder, ids, "--encoder")
        if data_dir is None:
            from mds.config import load_settings

            data_dir = load_settings(db_url=db_url).data_dir
        if count_labelled:
            context = labelled_ids(db_url, flt)
        kind = strategy.feature_kind
        all_ids = ids + [c for c in context if c not in set(ids)]
        have, bank = load_features(db_url, encoder, all_ids, data_dir=data_dir, kind=kind, dtype=dtype)
        hs = set(have)
        counts["missing_embeddings"] = sum(1 for i in ids if i not in hs)
        keep = [k for k, i in enumerate(ids) if i in hs]
        if difficulty is not None:
            difficulty = difficulty[keep]
        ids = [ids[k] for k in keep]
        context = [c for c in context if c in hs and c not in set(ids)]
        counts["context"] = len(context)
        if bank is not None and len(bank) != len(ids) + len(context):
            bank = bank.subset(np.array([have.index(i) for i in ids + context]))
    info["encoder"] = encoder
    counts["candidates"] = len(ids)
    if not ids:
        raise SelectionError(f"no candidates left after filtering ({counts})")
    return SelectionProblem(ids=np.array(ids), difficulty=difficulty, bank=bank, context_ids=np.array(context)), info


def select_round(
    db_url: str,
    *,
    strategy: str,
    budget: int | str,
    lambda_: float | None = None,
    encoder: str | None = None,
    predictor: str | None = None,
    seed: int = 0,
    filters: CandidateFilter | None = None,
    count_labelled: bool = False,
    round_number: int | None = None,
    round_id: int | None = None,
    name: str | None = None,
    options: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    data_dir: str | Path | None = None,
) -> Round:
    """Select a batch and record it as a new ``Round`` (status ``selected``) with its ``Selection`` rows.

    ``round_id`` fills an existing round instead (one without selections, e.g. created by the
    rounds orchestration); its config is updated with the selection snapshot.
    ``config`` is merged into the round's config snapshot (the caller's own settings).
    Returns the committed Round with its selections loaded.
    """
    strat = make_strategy(strategy, lambda_=lambda_, encoder=encoder, **(options or {}))
    problem, info = load_problem(db_url, strategy=strat, filters=filters, encoder=encoder, predictor=predictor,
                                 count_labelled=count_labelled, data_dir=data_dir)
    if lambda_ is None and getattr(strat, "lambda_", None) is not None and info["encoder"]:
        strat = make_strategy(strategy, encoder=info["encoder"], **(options or {}))
    # A percentage refers to the filtered pool (labelled and in-flight videos included), so every
    # round of a campaign has the same size; a count is taken as given.
    counts = info["counts"]
    k = resolve_budget(budget, counts["matched"] - counts.get("meta_filtered", 0))
    if resolve_budget(budget, 10**9) != resolve_budget(budget, 1):  # a fraction: never more than is left
        k = min(k, problem.n)
    result: SelectionResult = strat.select(problem, k, seed=seed)
    snapshot = {
        "strategy": strat.name,
        "strategy_params": result.params,
        "budget": k,
        "budget_spec": str(budget),
        "seed": seed,
        "encoder": info["encoder"],
        "predictor": info["predictor"],
        "filters": info["filters"],
        "count_labelled": count_labelled,
        "mds_version": mds.__version__,
        **(config or {}),
    }
    return _write_round(db_url, result, snapshot, info, round_number=round_number, round_id=round_id, name=name,
                        lambda_=getattr(strat, "lambda_", None))


def _write_round(db_url: str, result: SelectionResult, snapshot: dict[str, Any], info: dict[str, Any], *,
                 round_number: int | None, round_id: int | None, name: str | None, lambda_: float | None) -> Round:
    with session_scope(db_url) as s:
        if round_id is not None:
            rnd = s.get(Round, round_id)
            if rnd is None:
                raise SelectionError(f"no round with id {round_id}")
            if rnd.selections:
                raise SelectionError(f"round {rnd.number} already has a selection")
            config = {**(rnd.config or {}), **snapshot}
            rnd.strategy, rnd.budget, rnd.budget_spec, rnd.seed = (
                snapshot["strategy"], snapshot["budget"], snapshot["budget_spec"], snapshot["seed"])
            rnd.lambda_, rnd.encoder, rnd.config, rnd.config_hash = lambda_, snapshot["encoder"], config, config_hash(config)
            rnd.status = "selected"
            rnd.steps = {**(rnd.steps or {}), "select": {"candidates": info["counts"]}}
        else:
            number = round_number
            if number is None:
                number = (s.scalar(select(func.max(Round.number))) or 0) + 1
            elif s.scalar(select(Round.id).where(Round.number == number)) is not None:
                raise SelectionError(f"round {number} already exists")
            rnd = Round(
                number=number, name=name, strategy=snapshot["strategy"], budget=snapshot["budget"],
                budget_spec=snapshot["budget_spec"], seed=snapshot["seed"], lambda_=lambda_,
                encoder=snapshot["encoder"], config=snapshot, config_hash=config_hash(snapshot), status="selected",
                steps={"select": {"candidates": info["counts"]}},
            )
        for order, p in enumerate(result.picks):
            rnd.selections.append(Selection(video_id=p.video_id, pick_order=order, difficulty=p.difficulty,
                                            diversity=p.diversity, total=p.total, extra=p.extra))
        s.add(rnd)
        try:
            s.flush()
        except IntegrityError:
            raise SelectionError(f"round {rnd.number} already exists (concurrent selection?)") from None
        rid = rnd.id
    with session_scope(db_url) as s:
        rnd = s.get(Round, rid)
        _ = list(rnd.selections)
        s.expunge_all()
    return rnd
