"""VQR1 answer parser (evaluators.md §1.6): real-looking answers and a table of malformed outputs."""

from __future__ import annotations

import pytest

from mds.evaluators.vqr1 import parse_score_answer

CASES = [
    # (raw text, status, scalar for ranking, raw score)
    ("<think>good lighting, some motion blur</think><answer>4.30</answer>", "ok", 4.3, 4.3),
    ("<think>x</think>\n<answer> 3.8/5 </answer>", "ok", 3.8, 3.8),
    ("<answer>4.25 out of 5</answer>", "ok", 4.25, 4.25),
    ("<answer>2.00</answer>", "ok", 2.0, 2.0),  # failure-predictor style, no reasoning
    ("<ANSWER>3</ANSWER>", "ok", 3.0, 3.0),
    ("<answer>1.5</answer> then again <answer>2.8</answer>", "ok", 2.8, 2.8),  # several blocks: the last
    (
        "<think>1080p clip, 2024</think><answer>0.25</answer>",
        "out_of_range",
        1.0,
        0.25,
    ),  # below 1 (seen upstream)
    ("<answer>7.5</answer>", "out_of_range", 5.0, 7.5),
    ("<think>1080p video from 2019, 300 frames. The final score is 3.5", "fallback", 3.5, 3.5),
]

FAILS = [
    "<think>The video looks sharp and the colours",  # truncated: no </think>, no answer, no score keyword
    "The 1080p video from 2019 has 300 frames.",  # numbers that must never be read as a score
    "<answer>excellent</answer>",
    "<answer></answer>",
    "",
]


@pytest.mark.parametrize(("raw", "status", "scalar", "score"), CASES)
def test_vqr1_parses(raw: str, status: str, scalar: float, score: float) -> None:
    r = parse_score_answer(raw)
    assert r.parse_status == status
    assert r.pred_scalar == pytest.approx(scalar)
    assert r.parsed["score"] == pytest.approx(score)
    assert r.raw_text == raw


@pytest.mark.parametrize("raw", FAILS)
def test_vqr1_failures_keep_raw_text_and_no_score(raw: str) -> None:
    r = parse_score_answer(raw)
    assert r.parse_status == "failed"
    assert r.pred_scalar is None and r.raw_text == raw and r.error


def test_vqr1_reasoning_is_kept() -> None:
    r = parse_score_answer("<think> slightly blurry </think><answer>2.8</answer>")
    assert r.reasoning == "slightly blurry"


def test_vqr1_handles_released_score_distribution(shared_dir) -> None:  # noqa: ANN001
    """Every released base-model score (stored parsed upstream) round-trips; the ones below 1 are flagged."""
    import json

    data = json.loads((shared_dir / "data" / "mdsvqa-sdr" / "baseline_sdr.scores.json").read_text())
    statuses = []
    for score in data.values():
        r = parse_score_answer(f"<think>...</think><answer>{score}</answer>")
        assert r.parsed["score"] == pytest.approx(float(score))
        assert 1.0 <= r.pred_scalar <= 5.0
        statuses.append(r.parse_status)
    assert statuses.count("out_of_range") == sum(not 1 <= float(v) <= 5 for v in data.values()) > 0
