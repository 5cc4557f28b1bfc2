"""Aggregation of raw ratings into MOS labels: statistics, rater screening, normalisation, rejections."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from scipy import stats
from sqlalchemy import select


def _videos(session, n: int) -> list[int]:
    from mds.db.models import Video

    vs = [Video(name=f"v{i}.mp4", uri=f"/pool/v{i}.mp4") for i in range(n)]
    session.add_all(vs)
    session.flush()
    return [v.id for v in vs]


def _round(session, number: int = 1) -> int:
    from mds.db.models import Round

    r = Round(number=number, strategy="mds", budget=10)
    session.add(r)
    session.flush()
    return r.id


def test_mean_std_ci_match_scipy(session) -> None:
    from labeling.aggregate import record_ratings

    [a, b] = _videos(session, 2)
    labels = record_ratings(session, None, [(a, "r1", 2), (a, "r2", 3), (a, "r3", 5), (b, "r1", 4)])
    by = {lab.video_id: lab for lab in labels}
    vals = [2, 3, 5]
    assert by[a].mos == pytest.approx(statistics.mean(vals))
    assert by[a].std == pytest.approx(statistics.stdev(vals))
    half = stats.t.ppf(0.975, 2) * statistics.stdev(vals) / np.sqrt(3)
    assert by[a].ci95 == pytest.approx(half)
    assert by[a].n_ratings == 3 and by[a].value["method"] == "mean"
    assert (by[b].mos, by[b].n_ratings, by[b].std, by[b].ci95) == (4.0, 1, None, None)
    assert (by[a].scale_min, by[a].scale_max, by[a].kind, by[a].source) == (1.0, 5.0, "scalar", "simulated")


def test_out_of_range_and_malformed_rejected_with_reason(session) -> None:
    from labeling.aggregate import record_ratings
    from mds.db.models import Annotation, Label

    [a] = _videos(session, 1)
    rid = _round(session)
    record_ratings(session, rid, [(a, "r1", 4), (a, "r2", 6.5), (a, "r3", float("nan")), (a, "r4", "good")])
    rows = {x.annotator: x for x in session.scalars(select(Annotation))}
    assert rows["r1"].status == "ok"
    assert rows["r2"].status == "rejected" and rows["r2"].reject_reason.startswith("out_of_range")
    assert rows["r3"].status == "rejected" and "not finite" in rows["r3"].reject_reason
    assert rows["r4"].status == "rejected" and rows["r4"].reject_reason.startswith("malformed")
    lab = session.scalars(select(Label)).one()
    assert (lab.mos, lab.n_ratings, lab.round_id) == (4.0, 1, rid)


def test_rerating_updates_and_deletion_recomputes(session) -> None:
    from labeling.aggregate import recompute_labels, record_ratings
    from mds.db.models import Annotation, Label

    [a] = _videos(session, 1)
    rid = _round(session)
    record_ratings(session, rid, [(a, "r1", 2), (a, "r2", 4)])
    record_ratings(session, rid, [(a, "r1", 5)])  # same annotator again: an update, not a second vote
    lab = session.scalars(select(Label)).one()
    assert (lab.mos, lab.n_ratings) == (4.5, 2)
    r2 = session.scalars(select(Annotation).where(Annotation.annotator == "r2")).one()
    r2.status = "deleted"
    recompute_labels(session, [a], source="simulated")
    assert (lab.mos, lab.n_ratings) == (5.0, 1)
    for x in session.scalars(select(Annotation)):
        x.status = "deleted"
    assert recompute_labels(session, [a], source="simulated") == []
    assert session.scalars(select(Label)).first() is None  # no usable rating left: no label


def _panel(n_videos: int, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, str, float]]]:
    rng = np.random.default_rng(seed)
    truth = np.linspace(1.5, 4.5, n_videos)
    out = []
    for j, q in enumerate(truth):
        for i in range(5):  # consistent raters: truth + small noise, rounded to the 1-5 grid
            out.append((j, f"good{i}", float(np.clip(np.round(q + rng.normal(0, 0.3)), 1, 5))))
        out.append((j, "biased", float(np.clip(np.round(q) + 1, 1, 5))))  # consistent offset: kept
        out.append((j, "noisy", float(5 if j % 2 == 0 else 1)))  # far off in both directions: excluded
        out.append((j, "constant", 3.0))
    return truth, out


def test_bt500_screening_excludes_noisy_and_constant_raters_only() -> None:
    from labeling.aggregate import AggregationConfig, screen_raters

    _, ratings = _panel(10)
    excluded = screen_raters(ratings, scale=(1, 5), config=AggregationConfig())
    assert set(excluded) == {"noisy", "constant"}
    assert excluded["noisy"].startswith("bt500") and excluded["constant"].startswith("constant")
    # too few raters in scope: no screening at all
    few = [t for t in ratings if t[1] in ("good0", "good1", "noisy")]
    assert screen_raters(few, scale=(1, 5), config=AggregationConfig()) == {}


def test_zscore_normalisation_removes_rater_offset(session) -> None:
    from labeling.aggregate import recompute_labels, record_ratings

    vids = _videos(session, 10)
    truth, ratings = _panel(10)
    record_ratings(session, _round(session), [(vids[j], who, s) for j, who, s in ratings], recompute=False)
    labels = {lab.video_id: lab for lab in recompute_labels(session, vids, source="simulated")}
    lab0 = labels[vids[0]]
    assert lab0.value["method"] == "zscore"
    assert set(lab0.value["excluded"]) == {"noisy", "constant"} and lab0.n_ratings == 6
    mos = np.array([labels[v].mos for v in vids])
    raw = np.array([labels[v].value["mos_raw"] for v in vids])
    assert stats.spearmanr(mos, truth).statistic > 0.95
    # the biased rater's +1 offset is removed: raters agree more after normalisation than before
    kept = {
        j: [x for jj, who, x in ratings if jj == j and who not in ("noisy", "constant")] for j in range(10)
    }
    raw_sd = np.mean([np.std(kept[j], ddof=1) for j in range(10)])
    assert np.mean([labels[v].std for v in vids]) < 0.8 * raw_sd
    assert np.allclose(raw, [np.mean(kept[j]) for j in range(10)])
    assert all(1.0 <= m <= 5.0 for m in mos)


def test_binary_and_multidim_kinds(session) -> None:
    from labeling.aggregate import recompute_labels
    from mds.db.models import Annotation

    [a, b] = _videos(session, 2)
    for i, hi in enumerate([1, 1, 0]):
        session.add(
            Annotation(
                video_id=a,
                source="labelstudio:x",
                external_id=f"b{i}",
                annotator=f"r{i}",
                value={"quality": "High-Quality" if hi else "Low-Quality"},
                score=float(hi),
            )
        )
    for i, (vq, al) in enumerate([(4, 2), (2, 4)]):
        session.add(
            Annotation(
                video_id=b,
                source="labelstudio:x",
                external_id=f"m{i}",
                annotator=f"r{i}",
                value={"visual_quality": vq, "t2v_alignment": al, "physical_consistency": 3},
                score=float(vq),
            )
        )
    session.flush()
    [lab_a] = recompute_labels(session, [a], source="labelstudio", kind="binary")
    assert lab_a.mos == pytest.approx(2 / 3) and (lab_a.scale_min, lab_a.scale_max) == (0.0, 1.0)
    [lab_b] = recompute_labels(session, [b], source="labelstudio", kind="multidim")
    assert (
        lab_b.mos == 3.0
        and lab_b.value["t2v_alignment"] == 3.0
        and lab_b.value["physical_consistency"] == 3.0
    )


def test_screening_keeps_honest_raters_on_a_large_panel() -> None:
    from labeling.aggregate import AggregationConfig, screen_raters

    rng = np.random.default_rng(5)
    q = rng.uniform(1, 5, 300)
    ratings = [
        (j, f"honest{k}", float(np.clip(np.round(q[j] + rng.normal(0, 0.6)), 1, 5)))
        for j in range(300)
        for k in range(5)
    ]
    ratings += [(j, "random", float(rng.integers(1, 6))) for j in range(300)]
    assert set(screen_raters(ratings, scale=(1, 5), config=AggregationConfig())) == {"random"}


def test_constant_raters_kept_when_videos_do_not_differ() -> None:
    from labeling.aggregate import AggregationConfig, screen_raters

    ratings = [
        (j, f"r{k}", 3.0 + k % 2) for j in range(6) for k in range(5)
    ]  # each rater constant, videos alike
    assert screen_raters(ratings, scale=(1, 5), config=AggregationConfig()) == {}
