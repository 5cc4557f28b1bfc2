"""Simulated annotators: deterministic, biased and noisy raters, a few outliers."""

from __future__ import annotations

import numpy as np


def test_panel_is_deterministic_and_round_trips() -> None:
    from mds.demo.annotators import RaterPanel

    p = RaterPanel.create(12, seed=3, n_outliers=2)
    q = RaterPanel.from_dict(p.as_dict())
    assert p.rate("video-a.mp4", 3.4, 5) == q.rate("video-a.mp4", 3.4, 5)
    assert sum(r.outlier for r in p.raters) == 2
    assert RaterPanel.create(12, seed=4).raters != p.raters


def test_ratings_are_integers_on_the_scale_and_track_the_mos() -> None:
    from mds.demo.annotators import RaterPanel

    p = RaterPanel.create(12, seed=0, n_outliers=0)
    lo_means, hi_means = [], []
    for i in range(200):
        lo = [s for _, s in p.rate(f"v{i}", 1.6, 5)]
        hi = [s for _, s in p.rate(f"w{i}", 4.4, 5)]
        assert all(isinstance(s, int) and 1 <= s <= 5 for s in lo + hi)
        lo_means.append(np.mean(lo))
        hi_means.append(np.mean(hi))
    assert np.mean(hi_means) - np.mean(lo_means) > 2.0
    assert abs(np.mean(lo_means) - 1.6) < 0.6


def test_rater_bias_shows_in_their_ratings() -> None:
    from mds.demo.annotators import RaterPanel

    p = RaterPanel.create(12, seed=1, n_outliers=0, bias_sd=0.6)
    per: dict[str, list[int]] = {}
    for i in range(400):
        for r, s in p.rate(f"v{i}", 3.0, 12):
            per.setdefault(r, []).append(s)
    bias = {r.id: r.bias for r in p.raters}
    means = {r: np.mean(v) - 3.0 for r, v in per.items()}
    ids = sorted(means)
    assert np.corrcoef([bias[i] for i in ids], [means[i] for i in ids])[0, 1] > 0.8


def test_outliers_disagree_with_the_mos() -> None:
    from mds.demo.annotators import RaterPanel

    p = RaterPanel.create(6, seed=2, n_outliers=2)
    out_ids = {r.id for r in p.raters if r.outlier}
    err_out, err_ok = [], []
    for i in range(300):
        for r, s in p.rate(f"v{i}", 4.5, 6):
            (err_out if r in out_ids else err_ok).append(abs(s - 4.5))
    assert np.mean(err_out) > np.mean(err_ok) + 1.0
