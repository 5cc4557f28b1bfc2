"""VR-Thinker parsers (evaluators.md §4.7) against the card fixture and malformed turns."""

from __future__ import annotations

import json

import pytest

from mds.evaluators.vrthinker import (
    SYSTEM_PROMPT,
    TOOL_RESPONSE_TEMPLATE,
    USER_TEMPLATE,
    VRThinkerEvaluator,
    initial_indices,
    parse_tool_call,
    parse_vrthinker_answer,
    virtual_to_real,
)


def test_fixture_answer_round_trip(shared_dir) -> None:  # noqa: ANN001
    """The card's printed result (TA, MQ, VQ, OA order) is what the parser yields from an answer with those values."""
    expected = json.loads((shared_dir / "fixtures" / "vrthinker_example_answer.json").read_text())
    raw = "<Answer>" + ", ".join(f"{k}={v}" for k, v in expected.items()) + "</Answer>"
    r = parse_vrthinker_answer(raw)
    assert r.parse_status == "ok" and r.pred_label == expected
    assert r.pred_scalar == 1.0  # OA = 1: video 1 better


ANSWERS = [
    (
        "<Snapshot>…</Snapshot><think>… Video 1 is superior …</think><final answer>TA = 1, MQ = 1, VQ = 1, OA = 1</final answer>",
        "ok",
        {"TA": 1, "VQ": 1, "MQ": 1, "OA": 1},
    ),
    ("<answer>TA=2, VQ=2, MQ=0, OA=2</ answer>", "ok", {"TA": 2, "VQ": 2, "MQ": 0, "OA": 2}),
    ("<Answer>TA：0，VQ：1，MQ：2，OA：0</Answer>", "ok", {"TA": 0, "VQ": 1, "MQ": 2, "OA": 0}),  # full-width
    (
        "<Answer>TA=1, VQ=1, MQ=1, OA=1</Answer> hmm <Answer>TA=2, VQ=2, MQ=2, OA=2</Answer>",
        "ok",
        {"TA": 2, "VQ": 2, "MQ": 2, "OA": 2},
    ),  # the last answer wins
    (
        "<recommend answer>TA = 1, MQ = 0, VQ = 0, OA = 1, CF = 2</recommend answer>",
        "recommend_only",
        {"TA": 1, "VQ": 0, "MQ": 0, "OA": 1},
    ),
]


@pytest.mark.parametrize(("raw", "status", "dims"), ANSWERS)
def test_answers(raw: str, status: str, dims: dict) -> None:
    r = parse_vrthinker_answer(raw)
    assert r.parse_status == status and r.pred_label == dims


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("<Answer>TA=1, VQ=1, OA=1</Answer>", "missing_dims"),
        ("<Answer>TA=1, VQ=3, MQ=0, OA=1</Answer>", "missing_dims"),  # 3 is not an outcome
        ("<Think>both look similar", "failed"),
        ("", "failed"),
    ],
)
def test_bad_answers(raw: str, status: str) -> None:
    r = parse_vrthinker_answer(raw)
    assert r.parse_status == status and r.pred_scalar is None


@pytest.mark.parametrize(
    ("turn", "kept", "flags"),
    [
        (
            '<tool_call>{"name": "select_frames", "arguments": {"frame_indices": [10, 30, 60, 90]}}</tool_call>',
            [10, 30, 60, 90],
            [],
        ),
        (
            '<tool_call>{"name": "select_frames", "arguments": {"target_frames": [12, 24, 24, 200]}}</tool_call>',
            [12, 24, 127],
            ["index_out_of_range"],
        ),
        ('<tool_call>{"target_frames": [1, 2]}</tool_call>', [1, 2], []),  # the paper's bare form
        (
            '<tool_call>{"name": "select_frames", "arguments": {"frame_indices": '
            + str(list(range(20)))
            + "}}</tool_call>",
            list(range(12)),
            [],
        ),  # capped at 12
        (
            '<tool_call>{"name": "select_frames", "arguments": {"frame_indices": [1, 2}</tool_call>',
            None,
            ["bad_tool_json"],
        ),
        (
            '<tool_call>{"name": "zoom", "arguments": {"frame_indices": [1]}}</tool_call>',
            None,
            ["bad_tool_json"],
        ),
        ("no tool call here", None, []),
    ],
)
def test_tool_calls(turn: str, kept, flags) -> None:  # noqa: ANN001
    got, got_flags, _ = parse_tool_call(turn)
    assert got == kept and got_flags == flags


def test_frame_addressing() -> None:
    assert initial_indices() == [16, 48, 80, 112]
    assert virtual_to_real(0, 300) == 0 and virtual_to_real(127, 300) == 297 and virtual_to_real(127, 10) == 9
    assert virtual_to_real(64, 16) == 8


def test_error_against_human_labels() -> None:
    ev = VRThinkerEvaluator(model="m")
    r = parse_vrthinker_answer("<Answer>TA=1, VQ=2, MQ=0, OA=1</Answer>")
    assert ev.error(r, 1) == 0.0 and ev.error(r, "Video 2") == 1.0 and ev.error(r, "tie") == 1.0
    assert ev.error(r, {"TA": 1, "VQ": 2, "MQ": 0, "OA": 1}) == 0.0
    assert ev.error(r, {"TA": 2, "VQ": 2, "MQ": 0, "OA": 2}) == pytest.approx(1 - (0 + 0.5 * 2 / 3))
    assert ev.error(parse_vrthinker_answer(""), 1) is None


def test_prompts_word_for_word(shared_dir) -> None:  # noqa: ANN001
    doc = (shared_dir / "docs" / "evaluators.md").read_text()
    for text in (SYSTEM_PROMPT, USER_TEMPLATE, TOOL_RESPONSE_TEMPLATE):
        assert "```\n" + text + "\n```" in doc
