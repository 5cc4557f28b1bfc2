"""Aggregate raw per-annotator ratings into one label (MOS) per video.

Pipeline for the rating kinds (``scalar``, ``ordinal``, ``multidim`` on its
visual-quality score), over a *scope* — the videos passed in, usually one
round's batch:

1. **Latest rating per annotator and video**: :class:`~mds.db.models.Annotation`
   rows with status ``ok`` of the source; if an annotator rated a video twice,
   the newest counts.
2. **Rater screening** in the spirit of ITU-R BT.500 (Annex 1, §2.3.1), applied
   only when the scope has at least ``min_raters`` raters. Each rating is
   compared with the *other* raters of that video (leave-one-out, at least
   ``min_others`` = k of them, mean m, standard deviation s floored at
   ``s_floor`` of the scale range): it counts high (P) or low (Q) when it lies
   outside the prediction interval ``m ± t·s·√(1+1/k)`` whose coverage equals
   ±2σ of a normal distribution (±√20σ when the video has ``kurtosis_min_n``
   ratings or more and their kurtosis β₂ is outside [2, 4]), t from Student's
   distribution with k−1 degrees of freedom. (BT.500 compares with the mean and
   spread of *all* observers, which needs about 15 of them; leave-one-out with
   the prediction interval keeps honest raters in small panels.) A rater with
   at least ``min_rater_videos`` checked ratings is excluded when
   ``(P+Q)/N > 0.05`` and ``|P−Q|/(P+Q) < 0.3`` (BT.500's constants: often and
   in both directions, i.e. noise rather than a consistent offset). A rater who
   gives one value to ``min_rater_videos``+ videos that the other raters tell
   apart is excluded too (``constant``).
3. **Per-annotator z-score normalisation** when every remaining rater has at
   least ``min_rater_videos`` ratings in the scope: ``u' = (u − μᵢ)/σᵢ·σ + μ``,
   with μᵢ, σᵢ the rater's own mean and spread and μ, σ the pooled ones. This
   removes offsets and scale-use differences between raters while staying on
   the rating scale. Otherwise the raw ratings are used.
4. **MOS** = mean, ``std`` = sample standard deviation (ddof 1), ``ci95`` =
   half-width ``t₀.₉₇₅,ₙ₋₁ · std/√n`` (scipy), clipped to the scale.

``binary`` (mean = share of "high") and ``pairwise`` (mean of +1/0/−1 for the
overall preference, per-dimension counts in ``value``) skip steps 2–3.
Everything the aggregation decided (method, excluded raters with reasons, raw
mean) is stored in ``Label.value`` so a label can be audited.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mds.db.models import Annotation, Label, LabelingTask, LabelProject, Round, Video
from mds.errors import LabelingError

RATING_KINDS = ("scalar", "ordinal", "multidim")
_CHUNK = 5000


@dataclass(frozen=True)
class AggregationConfig:
    """Thresholds of the aggregation (see the module docstring)."""

    min_raters: int = 4
    min_others: int = 3
    min_rater_videos: int = 5
    kurtosis_min_n: int = 10
    s_floor: float = 0.1
    reject_share: float = 0.05
    symmetry: float = 0.3
    normalise: bool = True
    screen: bool = True


@dataclass
class _Rating:
    video_id: int
    annotator: str
    score: float
    value: dict[str, Any]


def _source_filter(source: str):
    return (Annotation.source == source) | Annotation.source.like(f"{source}:%")


def _latest_ok(session: Session, video_ids: Sequence[int], source: str) -> list[_Rating]:
    rows = session.scalars(
        select(Annotation)
        .where(Annotation.video_id.in_(video_ids), Annotation.status == "ok", _source_filter(source))
        .order_by(Annotation.updated_at, Annotation.id)
    ).all()
    latest: dict[tuple[int, str], Annotation] = {}
    for a in rows:
        if a.score is not None:
            latest[(a.video_id, a.annotator)] = a
    return [_Rating(a.video_id, a.annotator, float(a.score), dict(a.value or {})) for a in latest.values()]


def screen_raters(
    ratings: Sequence[tuple[int, str, float]], *, scale: tuple[float, float], config: AggregationConfig
) -> dict[str, str]:
    """Raters to exclude from ``(video_id, annotator, score)`` triples → ``{annotator: reason}``."""
    import numpy as np
    from scipy.stats import kurtosis, norm, t

    by_video: dict[int, dict[str, float]] = defaultdict(dict)
    for vid, who, s in ratings:
        by_video[vid][who] = s
    raters = {who for _, who, _ in ratings}
    if not config.screen or len(raters) < config.min_raters:
        return {}
    floor = config.s_floor * (scale[1] - scale[0])
    p: dict[str, int] = defaultdict(int)
    q: dict[str, int] = defaultdict(int)
    n: dict[str, int] = defaultdict(int)
    factor: dict[tuple[float, int], float] = {}
    for per_rater in by_video.values():
        values = np.array(list(per_rater.values()), dtype=float)
        z = 2.0
        if len(values) >= config.kurtosis_min_n and values.std() > 0:
            b2 = float(kurtosis(values, fisher=False))
            z = 2.0 if 2.0 <= b2 <= 4.0 else math.sqrt(20.0)
        for who, u in per_rater.items():
            others = np.array([v for w, v in per_rater.items() if w != who], dtype=float)
            k = len(others)
            if k < config.min_others:
                continue
            s = max(float(others.std(ddof=1)), floor)
            # prediction interval for one new rating from k others, as wide as z standard deviations
            if (z, k) not in factor:
                factor[(z, k)] = float(t.ppf(norm.cdf(z), k - 1)) * math.sqrt(1 + 1 / k)
            thr = factor[(z, k)] * s
            m = float(others.mean())
            n[who] += 1
            if u >= m + thr:
                p[who] += 1
            elif u <= m - thr:
                q[who] += 1
    excluded: dict[str, str] = {}
    for who in raters:
        if n[who] < config.min_rater_videos:
            continue
        pq = p[who] + q[who]
        if pq / n[who] > config.reject_share and pq and abs(p[who] - q[who]) / pq < config.symmetry:
            excluded[who] = f"bt500: {pq}/{n[who]} ratings outside the peers' range (P={p[who]}, Q={q[who]})"
    per: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for vid, who, s in ratings:
        per[who].append((vid, s))
    for who, items in per.items():
        vals = {s for _, s in items}
        if who in excluded or len(items) < config.min_rater_videos or len(vals) != 1:
            continue
        # constant only counts against a rater when the others see real differences between those videos
        peer_means = [
            np.mean([v for w, v in by_video[vid].items() if w != who])
            for vid, _ in items
            if len(by_video[vid]) > 1
        ]
        if len(peer_means) >= config.min_rater_videos and np.std(peer_means) > floor:
            excluded[who] = f"constant: the same rating {next(iter(vals)):g} for all {len(items)} videos"
    return excluded


def normalise_ratings(
    ratings: Sequence[tuple[int, str, float]], *, config: AggregationConfig
) -> dict[tuple[int, str], float] | None:
    """Per-annotator z-scored ratings mapped back onto the pooled mean/spread; ``None`` if not applicable."""
    import numpy as np

    if not config.normalise or not ratings:
        return None
    per: dict[str, list[float]] = defaultdict(list)
    for _, who, s in ratings:
        per[who].append(s)
    if len(per) < 2 or any(len(v) < config.min_rater_videos or np.std(v) == 0 for v in per.values()):
        return None
    pooled = np.array([s for _, _, s in ratings], dtype=float)
    mu, sd = float(pooled.mean()), float(pooled.std())
    stats = {w: (float(np.mean(v)), float(np.std(v))) for w, v in per.items()}
    return {(vid, who): (s - stats[who][0]) / stats[who][1] * sd + mu for vid, who, s in ratings}


def summarise(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """``(mean, std, ci95 half-width)``; std and CI are ``None`` for a single value."""
    import numpy as np

    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    if len(arr) < 2:
        return mean, None, None
    sd = float(arr.std(ddof=1))
    return mean, sd, _t975(len(arr) - 1) * sd / math.sqrt(len(arr))


@functools.lru_cache(maxsize=256)
def _t975(dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, dof))


def _kind_of(session: Session, video_ids: Sequence[int], source: str) -> str:
    pk = session.scalars(
        select(LabelProject.label_kind)
        .join(LabelingTask, LabelingTask.project_id == LabelProject.id)
        .join(Annotation, Annotation.task_id == LabelingTask.id)
        .where(Annotation.video_id.in_(video_ids), _source_filter(source))
        .limit(1)
    ).first()
    return pk or "scalar"


def recompute_labels(
    session: Session,
    video_ids: Iterable[int],
    *,
    source: str,
    kind: str | None = None,
    scale: tuple[float, float] | None = None,
    config: AggregationConfig | None = None,
    round_id: int | None = None,
) -> list[Label]:
    """Recompute the :class:`Label` of each video from its ``ok`` annotations of ``source``.

    Annotation sources ``source`` and ``source:<anything>`` (e.g.
    ``labelstudio:http://host:8080``) count. A video left with no usable rating
    loses its label of that source. Returns the labels written (flushed, not
    committed).
    """
    from labeling.kinds import get_kind

    vids = sorted({int(v) for v in video_ids})
    if not vids:
        return []
    config = config or AggregationConfig()
    kind = kind or _kind_of(session, vids, source)
    lk = get_kind(kind)
    lo, hi = scale or (lk.scale_min, lk.scale_max)
    ratings = _latest_ok(session, vids, source)
    triples = [(r.video_id, r.annotator, r.score) for r in ratings]
    excluded: dict[str, str] = {}
    normalised = None
    if kind in RATING_KINDS:
        excluded = screen_raters(triples, scale=(lo, hi), config=config)
        kept = [t for t in triples if t[1] not in excluded]
        normalised = normalise_ratings(kept, config=config)
    by_video: dict[int, list[_Rating]] = defaultdict(list)
    for r in ratings:
        by_video[r.video_id].append(r)

    existing = {
        lab.video_id: lab
        for lab in session.scalars(select(Label).where(Label.video_id.in_(vids), Label.source == source))
    }
    out: list[Label] = []
    for vid in vids:
        rs = by_video.get(vid, [])
        kept_rs = [r for r in rs if r.annotator not in excluded]
        lab = existing.get(vid)
        if not kept_rs:
            if lab is not None:
                session.delete(lab)
            continue
        raw = [r.score for r in kept_rs]
        vals = [normalised[(vid, r.annotator)] for r in kept_rs] if normalised else raw
        mean, sd, ci = summarise(vals)
        value: dict[str, Any] = {
            "method": "zscore" if normalised else "mean",
            "mos_raw": summarise(raw)[0],
            "annotators": sorted(r.annotator for r in kept_rs),
            "excluded": {r.annotator: excluded[r.annotator] for r in rs if r.annotator in excluded},
            "screening": asdict(config),
        }
        if kind == "multidim":
            for d in ("visual_quality", "t2v_alignment", "physical_consistency"):
                dv = [float(r.value[d]) for r in kept_rs if isinstance(r.value.get(d), (int, float))]
                if dv:
                    value[d] = summarise(dv)[0]
        if kind == "pairwise":
            counts: dict[str, dict[str, int]] = {}
            for r in kept_rs:
                for d, choice in r.value.items():
                    if isinstance(choice, str):
                        counts.setdefault(d, {}).setdefault(choice, 0)
                        counts[d][choice] += 1
            value["votes"] = counts
            pair = next((r.value.get("pair_video_id") for r in kept_rs if r.value.get("pair_video_id")), None)
            if pair:
                value["pair_video_id"] = pair
        if lab is None:
            lab = Label(video_id=vid, source=source)
            session.add(lab)
        lab.kind = kind
        lab.mos = min(max(mean, lo), hi)
        lab.n_ratings = len(kept_rs)
        lab.std = sd
        lab.ci95 = ci
        lab.scale_min, lab.scale_max = lo, hi
        lab.value = value
        if round_id is not None:
            lab.round_id = round_id
        out.append(lab)
    session.flush()
    return out


def record_ratings(
    session: Session,
    round_id: int | None,
    ratings: Iterable[tuple[int, str, float]],
    *,
    source: str = "simulated",
    kind: str = "scalar",
    recompute: bool = True,
) -> list[Label]:
    """Store ``(video_id, annotator, score)`` ratings as :class:`Annotation` rows and re-aggregate.

    For scripted or simulated annotators. Scores are checked against the
    kind's scale: an out-of-range or non-finite score is stored with status
    ``rejected`` and the reason. Re-recording the same (round, video,
    annotator) updates the rating instead of adding a second one.
    """
    from labeling.kinds import ResultRejected, get_kind

    lk = get_kind(kind)
    if round_id is not None and session.get(Round, round_id) is None:
        raise LabelingError(f"unknown round id {round_id}")
    rows = [(int(v), str(who), score) for v, who, score in ratings]
    ids = sorted({v for v, _, _ in rows})
    exts = [f"r{round_id}:v{v}:{who}" for v, who, _ in rows]
    known: set[int] = set()
    existing: dict[str, Annotation] = {}
    for i in range(0, max(len(ids), len(exts)), _CHUNK):  # bulk look-ups, in chunks for SQLite's limits
        known |= set(session.scalars(select(Video.id).where(Video.id.in_(ids[i : i + _CHUNK]))))
        existing.update(
            (a.external_id, a)
            for a in session.scalars(
                select(Annotation).where(
                    Annotation.source == source, Annotation.external_id.in_(exts[i : i + _CHUNK])
                )
            )
        )
    missing = sorted(set(ids) - known)
    if missing:
        raise LabelingError(f"unknown video id(s): {', '.join(map(str, missing[:10]))}")
    touched: set[int] = set()
    for (video_id, annotator, score), ext in zip(rows, exts):
        a = existing.get(ext)
        if a is None:
            a = Annotation(
                video_id=video_id, round_id=round_id, source=source, external_id=ext, annotator=annotator
            )
            session.add(a)
            existing[ext] = a
        try:
            s = float(score)
            if not math.isfinite(s):
                raise ResultRejected(f"malformed: score {score!r} is not finite")
            if lk.scale_min is not None and not lk.scale_min <= s <= lk.scale_max:
                raise ResultRejected(f"out_of_range: {s:g} not in [{lk.scale_min:g}, {lk.scale_max:g}]")
            a.score, a.value, a.status, a.reject_reason = s, {"quality": s}, "ok", None
        except (TypeError, ValueError) as e:
            reason = str(e) if isinstance(e, ResultRejected) else f"malformed: {score!r} is not a number"
            a.score, a.value, a.status, a.reject_reason = None, {"raw": repr(score)}, "rejected", reason
        touched.add(int(video_id))
    session.flush()
    if not recompute:
        return []
    if round_id is not None:  # screen over the whole round, not just this call's videos
        touched |= set(
            session.scalars(
                select(Annotation.video_id).where(Annotation.round_id == round_id, _source_filter(source))
            )
        )
    return recompute_labels(session, touched, source=source, kind=kind, round_id=round_id)
