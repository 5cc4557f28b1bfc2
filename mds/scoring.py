"""Score the pool with a base evaluator and store the predictions (``mds score``).

:func:`score_pool` runs an evaluator over the videos of a split (or a dataset /
id filter) in batches and writes one :class:`~mds.db.models.Prediction` row per
video, keyed by ``(video, evaluator, evaluator_version, variant)``:

* what this evaluator version already scored is skipped (rows with
  ``parse_status="error"`` — infrastructure failures — are retried on the next run);
* each batch is committed on its own, so a crash loses at most one batch and a
  re-run resumes;
* a video that fails (decode error, server error) is stored with
  ``parse_status="error"`` and the message in ``parsed["error"]``; a parse failure
  is stored as ``failed`` with the raw text and no score. Neither stops the run.

Pairwise evaluators (VR-Thinker) compare each video with ``m`` anchor videos
(:func:`choose_anchors`; reused from earlier runs of the same version so resumed
runs stay comparable). Each comparison is a row with ``variant="vs:<anchor id>"``,
``pair_video_id`` = the anchor and score +1 / 0 / −1 (OA: video wins / tie /
anchor wins). Once all of a video's pairs are stored, its per-video row
(``variant=""``) holds the **win rate** against the anchors,
``(wins + 0.5·ties) / n_pairs`` over the usable comparisons, in [0, 1] (in general the
mean of ``(pair score + 1) / 2``, which also covers both-order averages), with per
dimension win rates in ``parsed["per_dimension"]``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mds.errors import EvaluatorError, MdsError

ProgressFn = Callable[[int, int], None]  # (done, total)
PAIR_PREFIX = "vs:"


@dataclass
class ScoreReport:
    """What one scoring run did."""

    evaluator: str
    evaluator_version: str
    candidates: int = 0
    skipped: int = 0
    scored: int = 0
    ok: int = 0
    parse_failed: int = 0
    errors: int = 0
    pairs: int = 0
    anchors: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_json_default, ensure_ascii=False))


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def _make_evaluator(
    evaluator: Any, options: dict[str, Any] | None, db_url: str, checkpoint_id: int | None
) -> Any:
    from mds.evaluators import create_evaluator
    from mds.evaluators.base import Evaluator

    if isinstance(evaluator, Evaluator):
        if options or checkpoint_id is not None:
            raise EvaluatorError(
                "pass options / checkpoint with an evaluator name, not with a built evaluator"
            )
        return evaluator
    opts = dict(options or {})
    if checkpoint_id is not None:
        from mds.db.engine import session_scope
        from mds.db.models import Checkpoint

        with session_scope(db_url) as s:
            ck = s.get(Checkpoint, checkpoint_id)
            if ck is None:
                raise EvaluatorError(f"no checkpoint with id {checkpoint_id}")
            path, kind, config = ck.path, ck.kind, dict(ck.config or {})
        probe = create_evaluator(evaluator, **opts)
        opts = {**opts, **probe.options_for_checkpoint(str(path), kind, config)}
    return create_evaluator(evaluator, **opts)


def _video_filter(q: Any, split: str | None, dataset: str | None, video_ids: Sequence[int] | None) -> Any:
    from mds.db.models import Video

    if split is not None:
        q = q.where(Video.split == split)
    if dataset is not None:
        q = q.where(Video.dataset == dataset)
    if video_ids is not None:
        q = q.where(Video.id.in_(list(video_ids)))
    return q.order_by(Video.id)


def select_video_ids(
    session: Any,
    *,
    split: str | None = "pool",
    dataset: str | None = None,
    video_ids: Sequence[int] | None = None,
) -> list[int]:
    """Ids of the videos of ``split`` (None: all splits), optionally one ``dataset`` and/or given ids, ascending."""
    from sqlalchemy import select

    from mds.db.models import Video

    return list(session.scalars(_video_filter(select(Video.id), split, dataset, video_ids)))


def _load_videos(session: Any, ids: Sequence[int]) -> dict[int, Any]:
    from sqlalchemy import select

    from mds.db.models import Video

    return {v.id: v for v in session.scalars(select(Video).where(Video.id.in_(list(ids))))}


def _existing(session: Any, name: str, version: str) -> dict[tuple[int, str], tuple[int, str]]:
    """(video_id, variant) → (prediction id, parse_status) for this evaluator version."""
    from sqlalchemy import select

    from mds.db.models import Prediction

    rows = session.execute(
        select(Prediction.video_id, Prediction.variant, Prediction.id, Prediction.parse_status).where(
            Prediction.evaluator == name, Prediction.evaluator_version == version
        )
    )
    return {(v, var): (pid, st) for v, var, pid, st in rows}


def _store(
    session: Any,
    ev: Any,
    result: Any,
    *,
    video_id: int,
    variant: str,
    existing: dict[tuple[int, str], tuple[int, str]],
    checkpoint_id: int | None,
    round_id: int | None,
) -> None:
    from mds.db.models import Prediction

    score = None
    if result.ok:
        score = ev.to_scalar(result) if result.pred_scalar is None else result.pred_scalar
    parsed = dict(result.parsed or {})
    parsed.setdefault("label", result.pred_label)
    if result.uncertainty is not None:
        parsed["uncertainty"] = result.uncertainty
    if result.error:
        parsed["error"] = result.error
    if result.model_id:
        parsed.setdefault("model_id", result.model_id)
    values = {
        "video_id": video_id,
        "evaluator": ev.name,
        "evaluator_version": ev.version,
        "variant": variant,
        "pair_video_id": result.pair_video_id,
        "checkpoint_id": checkpoint_id,
        "round_id": round_id,
        "score": None if score is None else float(score),
        "parsed": _jsonable(parsed),
        "raw_output": result.raw_text,
        "parse_status": result.parse_status,
        "n_samples": int(result.n_samples),
        "gen_params": _jsonable(result.gen_params or {}),
        "preproc": _jsonable(result.preproc or {}),
    }
    key = (video_id, variant)
    if key in existing:
        row = session.get(Prediction, existing[key][0])
        for k, v in values.items():
            setattr(row, k, v)
    else:
        row = Prediction(**values)
        session.add(row)
    session.flush()
    existing[key] = (row.id, result.parse_status)


def _predict_isolated(
    fn: Callable[[list[Any]], list[Any]], items: list[Any], on_error: Callable[[Any, str], Any]
) -> list[Any]:
    """Run ``fn`` on the batch; if it raises (not a configuration error), retry item by item."""
    try:
        out = fn(items)
        if len(out) != len(items):
            raise EvaluatorError(f"evaluator returned {len(out)} results for {len(items)} inputs")
        return out
    except MdsError:
        raise
    except Exception:
        if len(items) == 1:
            import traceback

            return [on_error(items[0], traceback.format_exc(limit=1).strip().splitlines()[-1])]
    results = []
    for it in items:
        try:
            results.extend(fn([it]))
        except MdsError:
            raise
        except Exception as e:  # one bad video must not stop the pool
            results.append(on_error(it, f"{type(e).__name__}: {e}"))
    return results


def choose_anchors(video_ids: Sequence[int], m: int, seed: int = 0) -> list[int]:
    """``m`` anchor videos drawn reproducibly (seeded) from ``video_ids``."""
    ids = sorted(set(video_ids))
    if m <= 0 or not ids:
        return []
    return sorted(random.Random(seed).sample(ids, min(m, len(ids))))


def anchor_pairs(video_ids: Sequence[int], anchors: Sequence[int]) -> list[tuple[int, int]]:
    """Each video against each anchor (never against itself)."""
    return [(v, a) for v in video_ids for a in anchors if a != v]


def win_rate(outcomes: Sequence[int | None]) -> float | None:
    """``(wins + 0.5·ties) / n`` for pairwise outcomes 1 (video wins), 0 (tie), 2 (anchor wins); None ignored."""
    vals = [o for o in outcomes if o in (0, 1, 2)]
    if not vals:
        return None
    return sum(1.0 if o == 1 else 0.5 if o == 0 else 0.0 for o in vals) / len(vals)


def score_pool(
    db_url: str,
    evaluator: Any,
    *,
    options: dict[str, Any] | None = None,
    split: str | None = "pool",
    dataset: str | None = None,
    video_ids: Sequence[int] | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    checkpoint_id: int | None = None,
    round_id: int | None = None,
    anchors: int = 3,
    anchor_ids: Sequence[int] | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> ScoreReport:
    """Score the selected videos with ``evaluator`` (a name plus ``options``, or a built evaluator).

    ``limit`` caps how many not-yet-scored videos this run handles. Pairwise
    evaluators use ``anchors`` anchor videos (or the given ``anchor_ids``).
    """
    from mds.db.engine import make_sessionmaker

    t0 = time.perf_counter()
    ev = _make_evaluator(evaluator, options, db_url, checkpoint_id)
    report = ScoreReport(ev.name, ev.version)
    Session = make_sessionmaker(db_url)
    with Session() as s:
        videos = select_video_ids(s, split=split, dataset=dataset, video_ids=video_ids)
        report.candidates = len(videos)
        existing = _existing(s, ev.name, ev.version)
        todo = [v for v in videos if existing.get((v, ""), (0, "error"))[1] == "error"]
        report.skipped = len(videos) - len(todo)
        if limit is not None:
            todo = todo[: max(0, limit)]
        if ev.is_pairwise:
            _score_pairs(
                s,
                ev,
                videos,
                todo,
                existing,
                report,
                batch_size,
                checkpoint_id,
                round_id,
                anchors,
                anchor_ids,
                seed,
                progress,
            )
        else:
            _score_single(s, ev, todo, existing, report, batch_size, checkpoint_id, round_id, progress)
    report.elapsed_s = round(time.perf_counter() - t0, 3)
    return report


def _count(report: ScoreReport, result: Any) -> None:
    report.scored += 1
    if result.parse_status == "error":
        report.errors += 1
    elif result.ok:
        report.ok += 1
    else:
        report.parse_failed += 1


def _error_result(video_id: int | None, message: str, pair_video_id: int | None = None) -> Any:
    from mds.evaluators.base import EvalResult

    return EvalResult(
        video_id=video_id,
        parse_status="error",
        error=message,
        parsed={"error": message},
        n_samples=0,
        pair_video_id=pair_video_id,
    )


def _score_single(s, ev, todo, existing, report, batch_size, checkpoint_id, round_id, progress) -> None:  # noqa: ANN001
    from mds.evaluators.base import VideoInput

    total = len(todo)
    done = 0
    if progress:
        progress(0, total)
    for start in range(0, total, max(1, batch_size)):
        batch = todo[start : start + batch_size]
        rows = _load_videos(s, batch)
        inputs = [VideoInput.from_video(rows[v]) for v in batch]
        results = _predict_isolated(ev.predict, inputs, lambda vi, msg: _error_result(vi.video_id, msg))
        for v, r in zip(batch, results):
            _store(
                s,
                ev,
                r,
                video_id=v,
                variant="",
                existing=existing,
                checkpoint_id=checkpoint_id,
                round_id=round_id,
            )
            _count(report, r)
        s.commit()
        done += len(batch)
        if progress:
            progress(done, total)


def _stored_anchors(s: Any, ev: Any) -> list[int]:
    from sqlalchemy import select

    from mds.db.models import Prediction

    rows = s.scalars(
        select(Prediction.pair_video_id)
        .where(
            Prediction.evaluator == ev.name,
            Prediction.evaluator_version == ev.version,
            Prediction.variant.like(f"{PAIR_PREFIX}%"),
        )
        .distinct()
    )
    return sorted(int(r) for r in rows if r is not None)


def _score_pairs(
    s,
    ev,
    videos,
    todo,
    existing,
    report,
    batch_size,
    checkpoint_id,
    round_id,  # noqa: ANN001
    m,
    anchor_ids,
    seed,
    progress,
) -> None:
    from mds.db.models import Prediction, Video
    from mds.evaluators.base import EvalResult, VideoInput

    anchors = list(anchor_ids) if anchor_ids else (_stored_anchors(s, ev) or choose_anchors(videos, m, seed))
    if not anchors:
        raise EvaluatorError(f"{ev.name} is pairwise and needs anchor videos; the selection is empty")
    report.anchors = anchors
    missing = [a for a in anchors if s.get(Video, a) is None]
    if missing:
        raise EvaluatorError(f"anchor video(s) not found: {missing}")
    pairs = [
        (v, a)
        for v in todo
        for a in anchors
        if a != v and existing.get((v, f"{PAIR_PREFIX}{a}"), (0, "error"))[1] == "error"
    ]
    total = len(todo)
    if progress:
        progress(0, total)
    finished: set[int] = set()
    pending = set(todo)

    def finish_ready(candidates: set[int]) -> None:
        for vid in sorted(candidates - finished):
            keys = [(vid, f"{PAIR_PREFIX}{a}") for a in anchors if a != vid]
            if any(existing.get(k, (0, "error"))[1] == "error" for k in keys):
                continue
            rows = [s.get(Prediction, existing[k][0]) for k in keys]
            scored = [r for r in rows if r.score is not None]
            outcomes = [(r.parsed or {}).get("label", {}) or {} for r in scored]
            pair_scores = [float(r.score) for r in scored]
            dims = {d: win_rate([o.get(d) for o in outcomes]) for d in ev.label.dimensions}
            # (score + 1) / 2 per pair: 1 win, ½ tie, 0 loss; both-order averages fall in between
            wr = sum((x + 1) / 2 for x in pair_scores) / len(pair_scores) if pair_scores else None
            res = EvalResult(
                video_id=vid,
                parse_status="ok" if wr is not None else "failed",
                pred_scalar=wr,
                parsed={
                    "method": "anchor_win_rate",
                    "anchors": [a for a in anchors if a != vid],
                    "wins": sum(x > 0 for x in pair_scores),
                    "ties": sum(x == 0 for x in pair_scores),
                    "losses": sum(x < 0 for x in pair_scores),
                    "n_pairs": len(keys),
                    "n_usable": len(pair_scores),
                    "per_dimension": dims,
                },
                n_samples=len(pair_scores),
                model_id=ev.model_id,
                error=None if wr is not None else "no usable comparison",
            )
            _store(
                s,
                ev,
                res,
                video_id=vid,
                variant="",
                existing=existing,
                checkpoint_id=checkpoint_id,
                round_id=round_id,
            )
            _count(report, res)
            finished.add(vid)
            if progress:
                progress(len(finished), total)

    finish_ready(pending)  # videos whose pairs were all stored by an earlier (crashed) run
    s.commit()
    for start in range(0, len(pairs), max(1, batch_size)):
        batch = pairs[start : start + batch_size]
        rows = _load_videos(s, {i for pair in batch for i in pair})
        inputs = [(VideoInput.from_video(rows[v]), VideoInput.from_video(rows[a])) for v, a in batch]
        results = _predict_isolated(
            ev.predict_pairs, inputs, lambda p, msg: _error_result(p[0].video_id, msg, p[1].video_id)
        )
        for (v, a), r in zip(batch, results):
            r.pair_video_id = a
            _store(
                s,
                ev,
                r,
                video_id=v,
                variant=f"{PAIR_PREFIX}{a}",
                existing=existing,
                checkpoint_id=checkpoint_id,
                round_id=round_id,
            )
            report.pairs += 1
        finish_ready({v for v, _ in batch})
        s.commit()
    # videos with a pair that failed on infrastructure stay without a per-video row: retried next run
    report.errors += len(pending - finished)


def latest_predictions(
    db_url: str, evaluator: str, version: str | None = None, variant: str = ""
) -> dict[int, Any]:
    """``video_id → Prediction`` for one evaluator (the given version, or the newest row per video)."""
    from sqlalchemy import select

    from mds.db.engine import make_sessionmaker
    from mds.db.models import Prediction

    with make_sessionmaker(db_url)() as s:
        q = select(Prediction).where(Prediction.evaluator == evaluator, Prediction.variant == variant)
        if version is not None:
            q = q.where(Prediction.evaluator_version == version)
        out: dict[int, Any] = {}
        for row in s.scalars(q.order_by(Prediction.created_at, Prediction.id)):
            out[row.video_id] = row
        s.expunge_all()
        return out
