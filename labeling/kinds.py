"""Label kinds: the labelling interface, the pre-annotation and the result parser of each.

Every evaluator declares one label kind (``scalar``, ``binary``, ``ordinal``,
``pairwise``, ``multidim``). A kind knows

* its Label Studio config (an XML file in ``labeling/configs/``),
* how to turn the base model's score into a pre-annotation (``prediction_result``),
* how to turn an annotator's result into a typed value plus a scalar score
  (``parse_result``), rejecting out-of-range or malformed results with a reason.

Scalar scores per kind: scalar/ordinal the rating, binary 1 (high) / 0 (low),
pairwise +1 / -1 / 0 for the overall preference of video 1, multidim the visual
quality dimension (the per-dimension values stay in ``value``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from mds.errors import LabelingError

KINDS = ("scalar", "binary", "ordinal", "pairwise", "multidim")
PAIR_CHOICES = {"Video 1": 1, "Video 2": -1, "Tie": 0}
PAIR_DIMS = ("TA", "VQ", "MQ", "OA")
MULTI_DIMS = ("visual_quality", "t2v_alignment", "physical_consistency")
BINARY_CHOICES = {"High-Quality": 1, "Low-Quality": 0}


class ResultRejected(ValueError):
    """An annotation result that cannot be used; ``str(e)`` is the recorded reason."""


@dataclass(frozen=True)
class LabelKind:
    """One label kind and its labelling interface."""

    name: str
    config_file: str
    scale_min: float | None = None
    scale_max: float | None = None
    slider: bool = False
    data_keys: tuple[str, ...] = field(default=("video", "title", "prompt"))

    def label_config(self) -> str:
        """The Label Studio XML config."""
        return resources.files("labeling").joinpath("configs", self.config_file).read_text(encoding="utf-8")

    # -- pre-annotations -------------------------------------------------------------
    def prediction_result(
        self, score: float | None, parsed: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The base model's answer as a Label Studio result list (empty when it has none)."""
        parsed = parsed or {}
        if self.name in ("scalar", "ordinal"):
            if score is None or not math.isfinite(score):
                return []
            if self.slider:
                v = min(max(float(score), self.scale_min), self.scale_max)
                return [_item("quality", "video", "number", {"number": round(v, 2)})]
            v = int(min(max(round(score), self.scale_min), self.scale_max))
            return [_item("quality", "video", "rating", {"rating": v})]
        if self.name == "binary":
            if score is None:
                return []
            label = "High-Quality" if score >= 0.5 else "Low-Quality"
            return [_item("quality", "video", "choices", {"choices": [label]})]
        if self.name == "multidim":
            dims = parsed.get("dims") or parsed
            out = []
            for d in MULTI_DIMS:
                v = dims.get(d) if isinstance(dims, dict) else None
                if v is None and d == "visual_quality":
                    v = score
                if isinstance(v, (int, float)) and math.isfinite(v):
                    out.append(_item(d, "video", "rating", {"rating": int(min(max(round(v), 1), 5))}))
            return out
        if self.name == "pairwise":
            out = []
            for d in PAIR_DIMS:
                v = parsed.get(d) if isinstance(parsed, dict) else None
                if v in (1, 2, "1", "2", "tie", "Tie"):
                    choice = {"1": "Video 1", "2": "Video 2"}.get(str(v), "Tie")
                    out.append(_item(d, "video1", "choices", {"choices": [choice]}))
            return out
        return []

    # -- parsing ---------------------------------------------------------------------
    def parse_result(self, result: Any) -> tuple[dict[str, Any], float | None]:
        """``(value, score)`` of one annotation result; raises :class:`ResultRejected`."""
        if not isinstance(result, list):
            raise ResultRejected(f"malformed: result is {type(result).__name__}, not a list")
        by_name: dict[str, dict[str, Any]] = {}
        for item in result:
            if isinstance(item, dict) and isinstance(item.get("from_name"), str):
                by_name[item["from_name"]] = item
        if self.name in ("scalar", "ordinal"):
            v = _number(by_name, "quality")
            _in_range(v, self.scale_min, self.scale_max, "quality")
            if self.name == "ordinal" and v != int(v):
                raise ResultRejected(f"malformed: ordinal grade {v} is not an integer")
            return {"quality": v}, v
        if self.name == "binary":
            c = _choice(by_name, "quality", BINARY_CHOICES)
            return {"quality": c}, float(BINARY_CHOICES[c])
        if self.name == "multidim":
            vals = {}
            for d in MULTI_DIMS:
                v = _number(by_name, d)
                _in_range(v, 1, 5, d)
                vals[d] = v
            text = by_name.get("rationale", {}).get("value", {}).get("text")
            if text:
                vals["rationale"] = " ".join(text) if isinstance(text, list) else str(text)
            return vals, vals["visual_quality"]
        if self.name == "pairwise":
            vals = {d: _choice(by_name, d, PAIR_CHOICES) for d in PAIR_DIMS}
            return vals, float(PAIR_CHOICES[vals["OA"]])
        raise ResultRejected(f"malformed: unknown label kind {self.name!r}")  # pragma: no cover


def _item(from_name: str, to_name: str, type_: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"from_name": from_name, "to_name": to_name, "type": type_, "value": value}


def _number(by_name: dict[str, dict[str, Any]], name: str) -> float:
    item = by_name.get(name)
    if item is None:
        raise ResultRejected(f"malformed: no {name!r} in the result")
    value = item.get("value") or {}
    raw = value.get("rating", value.get("number"))
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise ResultRejected(f"malformed: {name!r} is {raw!r}, not a number")
    return float(raw)


def _in_range(v: float, lo: float | None, hi: float | None, name: str) -> None:
    if lo is not None and hi is not None and not lo <= v <= hi:
        raise ResultRejected(f"out_of_range: {name!r} = {v:g} not in [{lo:g}, {hi:g}]")


def _choice(by_name: dict[str, dict[str, Any]], name: str, allowed: dict[str, int]) -> str:
    item = by_name.get(name)
    if item is None:
        raise ResultRejected(f"malformed: no {name!r} in the result")
    choices = (item.get("value") or {}).get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        raise ResultRejected(f"malformed: {name!r} needs exactly one choice, got {choices!r}")
    if choices[0] not in allowed:
        raise ResultRejected(f"out_of_range: {name!r} = {choices[0]!r} not one of {sorted(allowed)}")
    return choices[0]


def get_kind(name: str = "scalar", *, slider: bool = False) -> LabelKind:
    """The label kind called ``name`` (``slider`` picks the continuous scalar interface)."""
    if name == "scalar":
        return LabelKind("scalar", "scalar_slider.xml" if slider else "scalar.xml", 1.0, 5.0, slider=slider)
    if name == "ordinal":
        return LabelKind("ordinal", "ordinal.xml", 1.0, 5.0)
    if name == "binary":
        return LabelKind("binary", "binary.xml", 0.0, 1.0)
    if name == "multidim":
        return LabelKind("multidim", "multidim.xml", 1.0, 5.0)
    if name == "pairwise":
        return LabelKind(
            "pairwise", "pairwise.xml", -1.0, 1.0, data_keys=("video", "video2", "title", "prompt")
        )
    raise LabelingError(f"unknown label kind {name!r}; choose one of {', '.join(KINDS)}")
