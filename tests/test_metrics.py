"""Metrics against the released MDS-VQA figures (shared/data/mdsvqa-sdr, README check values)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mds.errors import ParseError
from mds.metrics import correlations, evaluate_files, fit_logistic4, read_scores


@pytest.fixture
def sdr(shared_dir: Path) -> Path:
    return shared_dir / "data" / "mdsvqa-sdr"


@pytest.mark.parametrize(
    ("scores", "subset", "srcc", "plcc"),
    [
        ("sdr_active_finetuning.scores.json", "sdr_test_set.txt", 0.7314, 0.7942),
        ("baseline_sdr.scores.json", "sdr_test_set.txt", 0.6657, 0.7182),
        ("baseline_sdr.scores.json", None, 0.6651, 0.7097),
        ("baseline_sdr.scores.json", "sdr_train_set.txt", 0.6650, 0.7081),
        ("baseline_sdr.scores.json", "selected_sdr_64.txt", 0.2644, 0.3614),
    ],
)
def test_released_check_values(sdr: Path, scores: str, subset: str | None, srcc: float, plcc: float) -> None:
    res, counts = evaluate_files(sdr / scores, sdr / "sdr_mos.txt", subset=sdr / subset if subset else None)
    assert round(res.srcc, 4) == srcc
    assert round(res.plcc, 4) == plcc
    assert res.fitted
    assert counts["missing_predictions"] == 0


def test_error_ratio_of_the_released_selection(sdr: Path) -> None:
    """The released 64 picks carry 2.30x the pool's mean base-model error (1-5 scale, normalised MOS)."""
    from mds.metrics import error_ratio_files

    r = error_ratio_files(sdr / "baseline_sdr.scores.json", sdr / "sdr_train_set.txt", sdr / "selected_sdr_64.txt")
    assert (r.n_subset, r.n_all) == (64, 1624)
    assert round(r.subset_error, 4) == 0.9866 and round(r.all_error, 4) == 0.4296 and round(r.ratio, 3) == 2.296


def test_error_ratio_arithmetic() -> None:
    from mds.errors import ParseError
    from mds.metrics import error_ratio_files

    pred = {"a.mp4": 3.0, "b.mp4": 2.0, "c.mp4": 4.0, "d.mp4": 1.0}
    mos = {"a": 3.0, "b": 3.0, "c": 2.0, "d": 1.5}  # errors 0, 1, 2, 0.5 -> mean 0.875
    r = error_ratio_files(pred, mos, ["c", "b"])
    assert r.subset_error == pytest.approx(1.5) and r.all_error == pytest.approx(0.875)
    assert r.ratio == pytest.approx(1.5 / 0.875) and r.as_dict()["error_ratio"] == pytest.approx(r.ratio)
    with pytest.raises(ParseError, match="no subset name"):
        error_ratio_files(pred, mos, ["zz"])


def test_raw_plcc_and_normalised_mos(sdr: Path) -> None:
    res, _ = evaluate_files(sdr / "baseline_sdr.scores.json", sdr / "sdr_mos.txt", subset=sdr / "sdr_test_set.txt", fit=False)
    assert round(res.plcc, 4) == 0.7132 and not res.fitted
    # The affine map to [1, 5] changes nothing after the fit.
    a, _ = evaluate_files(sdr / "baseline_sdr.scores.json", sdr / "sdr_normalized_mos.txt", subset=sdr / "sdr_test_set.txt")
    assert round(a.srcc, 4) == 0.6657 and round(a.plcc, 4) == 0.7182


def test_difficulty_strategy_top64_reproduces_released_figure(sdr: Path) -> None:
    from selection import select

    g = read_scores(sdr / "sdr_130.json")  # file order = input order, ties keep it
    names = list(g)
    res = select("difficulty", 64, ids=np.arange(len(names)), difficulty=[g[n] for n in names])
    picked = [names[i] for i in res.ids]
    assert [p.difficulty for p in res.picks][:2] == [4.8, 4.8] and min(p.difficulty for p in res.picks) == 3.0
    m, _ = evaluate_files(sdr / "baseline_sdr.scores.json", sdr / "sdr_mos.txt", subset=picked)
    assert round(m.srcc, 4) == 0.3175
    assert round(m.plcc, 4) == 0.3846
    released = {ln.split()[0] for ln in (sdr / "selected_sdr_64.txt").read_text().splitlines()}
    assert len(released & set(picked)) == 50


def test_fallback_to_raw_predictions_when_fit_is_constant() -> None:
    pred = np.array([1.0, 1.0, 1.0, 1.0, 2.0])
    mos = np.array([3.0, 3.0, 3.0, 3.0, 3.0])
    y, fitted = fit_logistic4(pred, mos)
    assert not fitted and np.array_equal(y, pred)


def test_perfect_monotone_predictions() -> None:
    x = np.linspace(0, 1, 50)
    mos = 1 + 4 / (1 + np.exp(-(x - 0.5) / 0.1))
    r = correlations(x, mos)
    assert r.srcc == pytest.approx(1.0) and r.krcc == pytest.approx(1.0)
    assert r.plcc > 0.999 and r.rmse < 0.05 and r.fitted


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        correlations([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 3"):
        correlations([1, 2], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        correlations([1, 2, float("nan")], [1, 2, 3])


def test_score_file_formats(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("v1.mp4 1.5\nv2.mp4 2.5\n# comment\n\nv3.mp4 3\n")
    (tmp_path / "b.json").write_text(json.dumps({"v1.mp4": {"reasoning": "x", "score": 1.5}, "v2.mp4": {"score": 2.5}}))
    (tmp_path / "c.json").write_text(json.dumps({"v1": 1.5, "v2": 2.5}))
    (tmp_path / "d.csv").write_text("video,prediction\nv1.mp4,1.5\nv2.mp4,2.5\n")
    assert read_scores(tmp_path / "a.txt") == {"v1.mp4": 1.5, "v2.mp4": 2.5, "v3.mp4": 3.0}
    assert read_scores(tmp_path / "b.json") == {"v1.mp4": 1.5, "v2.mp4": 2.5}
    assert read_scores(tmp_path / "c.json") == {"v1": 1.5, "v2": 2.5}
    assert read_scores(tmp_path / "d.csv") == {"v1.mp4": 1.5, "v2.mp4": 2.5}
    (tmp_path / "bad.txt").write_text("v1.mp4 abc\n")
    with pytest.raises(ParseError, match="not a number"):
        read_scores(tmp_path / "bad.txt")
    (tmp_path / "bad.json").write_text(json.dumps({"v1": {"reasoning": "no score"}}))
    with pytest.raises(ParseError, match="no 'score'"):
        read_scores(tmp_path / "bad.json")


def test_fewer_points_than_fit_parameters_falls_back_to_raw_predictions() -> None:
    from mds.metrics import correlations

    c = correlations([1.0, 2.0, 4.0], [1.5, 2.5, 3.0])
    assert not c.fitted and c.n == 3 and c.srcc == pytest.approx(1.0)
