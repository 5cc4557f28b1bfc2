"""Label kinds: configs, pre-annotations and result parsing (accepted and rejected results)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from labeling.kinds import KINDS, ResultRejected, get_kind
from mds.errors import LabelingError


def _rating(name: str, v, to: str = "video") -> dict:
    return {"from_name": name, "to_name": to, "type": "rating", "value": {"rating": v}}


def _choice(name: str, v: str, to: str = "video") -> dict:
    return {"from_name": name, "to_name": to, "type": "choices", "value": {"choices": [v]}}


@pytest.mark.parametrize("kind", KINDS)
def test_configs_show_metadata_and_original_video(kind: str) -> None:
    root = ET.fromstring(get_kind(kind).label_config())
    values = {e.get("value") for e in root.iter()}
    assert {"$title", "$prompt", "$video"} <= values
    controls = {e.get("name") for e in root.iter() if e.tag in ("Rating", "Number", "Choices")}
    expected = {
        "scalar": {"quality"},
        "ordinal": {"quality"},
        "binary": {"quality"},
        "pairwise": {"TA", "VQ", "MQ", "OA"},
        "multidim": {"visual_quality", "t2v_alignment", "physical_consistency"},
    }
    assert controls == expected[kind]
    if kind == "pairwise":
        assert "$video2" in values


def test_scalar_star_and_slider() -> None:
    stars, slider = get_kind("scalar"), get_kind("scalar", slider=True)
    assert stars.parse_result([_rating("quality", 4)]) == ({"quality": 4.0}, 4.0)
    num = [{"from_name": "quality", "to_name": "video", "type": "number", "value": {"number": 3.7}}]
    assert slider.parse_result(num) == ({"quality": 3.7}, 3.7)
    assert "<Number" in slider.label_config() and "<Rating" in stars.label_config()
    assert stars.prediction_result(3.6) == [_rating("quality", 4)]
    assert slider.prediction_result(3.66)[0]["value"] == {"number": 3.66}
    assert stars.prediction_result(None) == [] and stars.prediction_result(float("nan")) == []
    assert stars.prediction_result(9.0)[0]["value"]["rating"] == 5  # clipped into the scale


@pytest.mark.parametrize(
    ("kind", "result", "reason"),
    [
        ("scalar", [_rating("quality", 7)], "out_of_range"),
        ("scalar", [_rating("quality", 0)], "out_of_range"),
        ("scalar", [_rating("quality", "4")], "malformed"),
        ("scalar", [_rating("quality", True)], "malformed"),
        ("scalar", [], "malformed"),
        ("scalar", {"rating": 4}, "malformed"),
        ("ordinal", [{"from_name": "quality", "type": "number", "value": {"number": 2.5}}], "malformed"),
        ("binary", [_choice("quality", "Maybe")], "out_of_range"),
        (
            "binary",
            [{"from_name": "quality", "value": {"choices": ["High-Quality", "Low-Quality"]}}],
            "malformed",
        ),
        ("multidim", [_rating("visual_quality", 4), _rating("t2v_alignment", 3)], "malformed"),
        ("pairwise", [_choice(d, "Video 1", "video1") for d in ("TA", "VQ", "MQ")], "malformed"),
    ],
)
def test_bad_results_are_rejected_with_reason(kind: str, result, reason: str) -> None:
    with pytest.raises(ResultRejected, match=f"^{reason}"):
        get_kind(kind).parse_result(result)


def test_binary_pairwise_multidim_parse() -> None:
    assert get_kind("binary").parse_result([_choice("quality", "Low-Quality")]) == (
        {"quality": "Low-Quality"},
        0.0,
    )
    pw = [
        _choice("TA", "Tie", "video1"),
        _choice("VQ", "Video 1", "video1"),
        _choice("MQ", "Video 2", "video1"),
        _choice("OA", "Video 2", "video1"),
    ]
    value, score = get_kind("pairwise").parse_result(pw)
    assert value == {"TA": "Tie", "VQ": "Video 1", "MQ": "Video 2", "OA": "Video 2"} and score == -1.0
    md = [
        _rating("visual_quality", 2),
        _rating("t2v_alignment", 5),
        _rating("physical_consistency", 4),
        {"from_name": "rationale", "type": "textarea", "value": {"text": ["blurry"]}},
    ]
    value, score = get_kind("multidim").parse_result(md)
    assert score == 2.0 and value["t2v_alignment"] == 5.0 and value["rationale"] == "blurry"


def test_unknown_kind() -> None:
    with pytest.raises(LabelingError, match="unknown label kind"):
        get_kind("likert7")
