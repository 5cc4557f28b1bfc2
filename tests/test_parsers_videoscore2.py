"""VideoScore2 parser (evaluators.md §5.6) and prompt (§5.3)."""

from __future__ import annotations

import pytest

from mds.evaluators.videoscore2 import VideoScore2Evaluator, build_prompt, parse_videoscore2

REAL = (
    "<think>\nmulti-dimensional analysis: … Visual Quality Assessment: … (score 4) … Text-to-Video Alignment … "
    "(score 4) … Final Scoring: Visual Quality: 4 …\n</think>\n\n(1) visual quality: 4\n(2) text-to-video alignment: 4\n"
    "(3) physical/common-sense consistency: 4"
)

CASES = [
    (REAL, "ok", (4, 4, 4)),
    (
        "<think>Physical Consistency: 3</think>visual quality: 5;\ntext-to-video alignment: 2,\nphysical/common-sense consistency: 3",
        "ok",
        (5, 2, 3),
    ),
    (
        "<think>x</think>VISUAL QUALITY: 3.5; Text-to-Video Alignment: 4; Physical/Common-Sense Consistency: 2",
        "ok",
        (3.5, 4, 2),
    ),
    (
        "<think>x</think>(1) visual: 3\n(2) alignment: 4\n(3) physics: 5",
        "fallback",
        (3, 4, 5),
    ),  # per-line fallback
    (
        "<think>x</think>visual quality: 7; text-to-video alignment: 4; physical/common-sense consistency: 2",
        "out_of_range",
        (7, 4, 2),
    ),
    (
        "（1）visual quality：4\n（2）text-to-video alignment：3\n（3）physical/common-sense consistency：5",
        "ok",
        (4, 3, 5),
    ),  # full-width
]


@pytest.mark.parametrize(("raw", "status", "dims"), CASES)
def test_videoscore2_parses(raw: str, status: str, dims: tuple) -> None:
    r = parse_videoscore2(raw)
    assert r.parse_status == status
    assert tuple(r.pred_label.values()) == pytest.approx(dims)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (
            "<think>Visual Quality: 3, Text-to-Video Alignment: 4, Physical: 2</think>\n",
            "failed",
        ),  # only inside think
        ("<think>x</think>visual quality: 4\ntext-to-video alignment: 3", "missing_dims"),
        ("<think>the video shows", "failed"),  # truncated
        ("", "failed"),
    ],
)
def test_videoscore2_failures(raw: str, status: str) -> None:
    r = parse_videoscore2(raw)
    assert r.parse_status == status and r.raw_text == raw and r.pred_scalar is None


def test_scalar_and_error() -> None:
    ev = VideoScore2Evaluator(model="m")
    r = ev.parse(
        "<think>x</think>visual quality: 2; text-to-video alignment: 4; physical/common-sense consistency: 3"
    )
    assert r.pred_scalar == 2.0
    assert VideoScore2Evaluator(model="m", scalar="mean").parse(r.raw_text).pred_scalar == pytest.approx(3.0)
    assert ev.error(r, {"v": 1, "t": 4, "p": 5}) == pytest.approx((1 + 0 + 2) / 3)
    assert ev.error(r, 4) == 2.0  # a single MOS compares with visual quality
    assert ev.error(ev.parse("nothing"), 3) is None


def test_prompt_word_for_word(shared_dir) -> None:  # noqa: ANN001
    doc = (shared_dir / "docs" / "evaluators.md").read_text()
    assert build_prompt("$t2v_prompt") in doc
    assert "Video prompt: a cat surfing\n" in build_prompt("a cat surfing")
