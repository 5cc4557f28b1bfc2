"""MEDEA parser and prompt builder against the model-card fixtures (evaluators.md §2.3, §2.6)."""

from __future__ import annotations

import json
import unicodedata

import pytest

from mds.evaluators.medea import (
    MEDEA_INSTRUCTIONS,
    MedeaEvaluator,
    build_prompt,
    interleave,
    parse_medea,
)

EXAMPLE_FIELDS = {
    "title": "给三角洲一点震撼",
    "tag": "游戏,射击游戏,三角洲行动",
    "asr": "",
    "new_tid_name": "游戏",
    "new_sub_tid_name": "射击游戏",
    "duration": "28秒",
    "resolution": "2160x3840",
    "vertical": "是",
}


def _fullwidth(text: str) -> str:
    """The medea_rl README form of the card text (full-width punctuation)."""
    return text.replace(",", "，").replace("(", "（").replace(")", "）").replace(":", "：").replace("!", "！")


def test_fixture_output_parses(shared_dir) -> None:  # noqa: ANN001
    raw = (shared_dir / "fixtures" / "medea_example_output.txt").read_text()
    r = parse_medea(raw)
    assert r.parse_status == "ok"
    assert r.pred_label == "支持" and r.parsed["positive"] is True
    assert r.pred_scalar == pytest.approx(2.236)
    assert (r.parsed["n_support"], r.parsed["n_oppose"]) == (15, 5)
    assert r.parsed["summary_counts"] == [15, 5]
    assert r.parsed["z_recomputed"] == pytest.approx(10 / 20**0.5, abs=1e-3)
    assert r.parsed["flags"] == []
    assert r.raw_text == raw


def test_fullwidth_output_parses_the_same(shared_dir) -> None:  # noqa: ANN001
    raw = (shared_dir / "fixtures" / "medea_example_output.txt").read_text()
    a, b = parse_medea(raw), parse_medea(_fullwidth(raw))
    assert b.parse_status == "ok" and b.parsed == a.parsed


def test_prompt_matches_card_sample(shared_dir) -> None:  # noqa: ANN001
    """Filled with the card's example values the prompt equals the card sample after NFKC."""
    sample = json.loads((shared_dir / "fixtures" / "medea_example_input.json").read_text())
    prompt = build_prompt(EXAMPLE_FIELDS)
    nf = lambda s: unicodedata.normalize("NFKC", s)  # noqa: E731
    assert nf(prompt) == nf(sample["input_text"])
    assert "，" in prompt and "（至少15条）" in prompt  # full-width upstream form is what is sent
    assert prompt.count("<image>") == len(sample["images"]) == 8
    assert "{title}" in MEDEA_INSTRUCTIONS  # the 输入数据 block keeps its literal placeholders


def test_prompt_matches_evaluators_doc(shared_dir) -> None:  # noqa: ANN001
    doc = (shared_dir / "docs" / "evaluators.md").read_text()
    assert build_prompt(EXAMPLE_FIELDS) in doc


def test_interleave_images_in_order() -> None:
    prompt = build_prompt(EXAMPLE_FIELDS)
    parts = interleave(prompt, list(range(8)))
    kinds = [p["type"] for p in parts]
    assert kinds.count("image") == 8
    assert [p["image"] for p in parts if p["type"] == "image"] == list(range(8))
    assert kinds[:3] == ["text", "image", "text"]  # "...封面:" <cover> "关键帧:" <7 keyframes>
    assert all(p["text"] == p["text"].strip() and p["text"] for p in parts if p["type"] == "text")
    with pytest.raises(ValueError):
        interleave(prompt, [1, 2])


BASE = "<think>\n【好看】(支持评论1)\n【一般】(反对评论1)\n支持类评论共1条，反对类评论共1条。z = boxed{0}\n</think>\n\n"

MALFORMED = [
    # (raw, status, label, flags that must be present)
    (BASE + "非明确支持", "ok", "非明确支持", {"few_comments"}),
    (BASE + "**支持**", "ok", "支持", {"few_comments", "z_label_inconsistent"}),
    (BASE + "「反对」", "ok", "反对", {"few_comments"}),
    (
        BASE.replace("<think>\n", "") + "支持",
        "ok",
        "支持",
        set(),
    ),  # opening <think> eaten by the chat template
    (
        BASE.replace("z = boxed{0}", "") + "非明确支持",
        "fallback",
        "非明确支持",
        {"no_z"},
    ),  # z from the recount
    (
        BASE.replace("共1条，反对", "共3条，反对") + "非明确支持",
        "ok",
        "非明确支持",
        {"summary_count_mismatch"},
    ),
    (
        "<think>\n【好看】(支持评论1)\n【好看】(支持评论2)\nz = \\boxed{1.41}\n</think>\n支持",
        "ok",
        "支持",
        {"duplicate_comments", "z_label_inconsistent"},
    ),
    (
        "<think>\n【好看】(支持评论1)\n 支持类评论共1条",
        "truncated",
        None,
        {"missing_think_end"},
    ),  # cut at max tokens
    (BASE + "我觉得很好", "failed", None, set()),
    (BASE, "failed", None, set()),
]


@pytest.mark.parametrize(("raw", "status", "label", "flags"), MALFORMED)
def test_malformed_outputs(raw: str, status: str, label: str | None, flags: set[str]) -> None:
    r = parse_medea(raw)
    assert r.parse_status == status
    assert r.pred_label == label
    assert flags <= set(r.parsed["flags"])
    assert r.raw_text == raw
    if status in ("failed", "truncated"):
        assert r.pred_scalar is None


def test_reasoning_content_split_by_server() -> None:
    r = parse_medea("支持", reasoning="【很好】(支持评论1)\nz = boxed{1.0}")
    assert r.pred_label == "支持" and r.pred_scalar == 1.0


@pytest.mark.parametrize(
    ("label", "err"),
    [
        ("支持", 0.0),
        ("High-Quality", 0.0),
        (1, 0.0),
        (True, 0.0),
        ("非明确支持", 1.0),
        ("Low-Quality", 1.0),
        (0, 1.0),
    ],
)
def test_error_against_human_label(shared_dir, label, err) -> None:  # noqa: ANN001
    ev = MedeaEvaluator(base_url="http://127.0.0.1:1/v1", backend="openai", model="m")
    r = ev.parse((shared_dir / "fixtures" / "medea_example_output.txt").read_text())
    assert ev.error(r, label) == err
    assert ev.error(r, "unknown") is None
