"""Short-drama parser (evaluators.md §3.6): both claimed formats and malformed outputs (no public fixtures)."""

from __future__ import annotations

import pytest

from mds.evaluators.short_drama import ShortDramaEvaluator, build_prompt, parse_short_drama

OK = [
    ('{"think": "tight plot, good acting", "answer": 4}', 4, "json"),
    ('```json\n{"think": "…", "answer": "4分"}\n```', 4, "json"),
    ('{"think": "…", "answer": "\\\\boxed{2}"}', 2, "json"),
    ('{"think": "…", "answer": 5,}', 5, "json"),  # trailing comma repaired (flagged)
    (
        "<caption>a palace drama</caption><comments>好看</comments><think>…</think><answer>\\boxed{3}</answer>",
        3,
        "tagged",
    ),
    (
        "<answer>\\boxed{2}</answer> wait <answer>\\boxed{5}</answer>",
        5,
        "tagged",
    ),  # several answers: the last
    ("<answer>3.6</answer>", 4, "tagged"),  # float rounded (flagged)
    ("<answer>4/5</answer>", 4, "tagged"),
    ("<answer>＼boxed｛4｝</answer>", 4, "tagged"),  # full-width characters
]


@pytest.mark.parametrize(("raw", "score", "fmt"), OK)
def test_short_drama_parses(raw: str, score: int, fmt: str) -> None:
    r = parse_short_drama(raw)
    assert r.parse_status == "ok"
    assert r.pred_label == score and r.pred_scalar == float(score)
    assert r.parsed["format"] == fmt


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("<answer>\\boxed{6}</answer>", "out_of_range"),
        ("<answer>0</answer>", "out_of_range"),
        ('{"think": "x", "answer": 8}', "out_of_range"),  # 10-point scale
        ("<think>the first episode", "failed"),
        ("<answer>\\boxed{4}", "truncated"),
        ('{"think": "x" "answer": 4}', "failed"),  # invalid JSON, no tags
        ("<answer>good</answer>", "failed"),
        ("", "failed"),
    ],
)
def test_short_drama_failures(raw: str, status: str) -> None:
    r = parse_short_drama(raw)
    assert r.parse_status == status and r.pred_scalar is None and r.raw_text == raw


def test_flags_and_error() -> None:
    assert "float_rounded" in parse_short_drama("<answer>3.6</answer>").parsed["flags"]
    assert "multiple_answers" in parse_short_drama("<answer>1</answer><answer>2</answer>").parsed["flags"]
    ev = ShortDramaEvaluator(model="m")
    assert ev.error(ev.parse("<answer>\\boxed{2}</answer>"), 5) == 3.0
    assert ev.error(ev.parse("nothing"), 5) is None


def test_prompt_is_the_documented_placeholder(shared_dir) -> None:  # noqa: ANN001
    doc = " ".join((shared_dir / "docs" / "evaluators.md").read_text().split())
    for fmt in ("json", "tagged"):
        prompt = build_prompt(fmt)
        base, _, instr = prompt.partition("1–5. ")
        assert base + "1–5." in doc and instr in doc
