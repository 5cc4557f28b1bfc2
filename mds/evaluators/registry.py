"""The evaluator registry: one declarative table, resolved lazily, plus entry-point plug-ins.

``BUILTIN`` maps a name to an :class:`EvaluatorSpec`: the adapter class as a
``"module:Class"`` string (imported only when the evaluator is created), its
default options, and the metadata the selector, failure predictor and labelling
need (label kind, score range, direction, modality). ``create_evaluator`` merges
the defaults first, then the caller's overrides.

Third-party evaluators register under the ``mds.evaluators`` entry-point group::

    [project.entry-points."mds.evaluators"]
    my-model = "my_pkg.my_model:MyEvaluator"

The target is an :class:`~mds.evaluators.base.Evaluator` subclass (its ``label``,
``modality``, ``default_options`` and ``description`` class attributes fill the
spec) or an :class:`EvaluatorSpec` instance. Built-in names win over plug-ins.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any

from mds.errors import EvaluatorError
from mds.evaluators.base import Evaluator, LabelKind, LabelSpec

ENTRY_POINT_GROUP = "mds.evaluators"
# Option groups of which a caller sets one: overriding one drops the defaults of the others.
EXCLUSIVE_OPTIONS: tuple[tuple[str, ...], ...] = (("num_frames", "fps"),)

# qwen-vl-utils defaults (evaluators.md §1.2): per-frame pixel budget of the published Qwen2.5-VL checkpoints.
QWEN_VIDEO_MIN_PIXELS = 128 * 28 * 28
QWEN_VIDEO_MAX_PIXELS = 768 * 28 * 28


@dataclass(frozen=True)
class EvaluatorSpec:
    """One registry entry."""

    name: str
    target: str  # "module:Class"
    label: LabelSpec
    modality: str = "video"
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    source: str = "builtin"  # or "entry-point:<distribution>"

    def load_class(self) -> type[Evaluator]:
        mod_name, _, cls_name = self.target.partition(":")
        try:
            cls = getattr(importlib.import_module(mod_name), cls_name)
        except (ImportError, AttributeError) as e:
            raise EvaluatorError(f"evaluator {self.name!r}: cannot import {self.target} ({e})") from None
        if not (isinstance(cls, type) and issubclass(cls, Evaluator)):
            raise EvaluatorError(f"evaluator {self.name!r}: {self.target} is not an Evaluator subclass")
        return cls

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "label": self.label.as_dict(),
            "modality": self.modality,
            "description": self.description,
            "defaults": dict(self.defaults),
            "aliases": list(self.aliases),
            "source": self.source,
        }


_SCALAR_1_5 = LabelSpec(LabelKind.SCALAR, (1.0, 5.0), True)

BUILTIN: dict[str, EvaluatorSpec] = {
    spec.name: spec
    for spec in (
        EvaluatorSpec(
            name="cpu-default",
            target="mds.evaluators.cpu_default:CpuDefaultEvaluator",
            label=_SCALAR_1_5,
            description="CPU default base model: a small torch model over per-frame quality features (MOS 1-5).",
            aliases=("cpu", "default"),
        ),
        EvaluatorSpec(
            name="vqr1",
            target="mds.evaluators.vqr1:VQR1Evaluator",
            label=_SCALAR_1_5,
            description="VisualQuality-R1 (Qwen2.5-VL-7B), the MDS-VQA base model: score 1-5 in <answer>.",
            aliases=("visualquality-r1", "visual-quality-r1", "mds-vqa"),
            defaults={
                "backend": "transformers",
                "model": "hollow404/VQR1-7B-YouTubeUGC",
                "fps": 2.0,
                "min_frames": 4,
                "max_frames": 768,
                "min_pixels": QWEN_VIDEO_MIN_PIXELS,
                "max_pixels": QWEN_VIDEO_MAX_PIXELS,
                "add_vision_id": True,
                "do_sample": True,
                "top_k": 50,
                "top_p": 1.0,
                "max_new_tokens": 2048,
                "seed": 42,
                "thinking": True,
            },
        ),
        EvaluatorSpec(
            name="medea",
            target="mds.evaluators.medea:MedeaEvaluator",
            label=LabelSpec(LabelKind.BINARY, None, True, choices=("支持", "非明确支持")),
            modality="video+text",
            description="MEDEA (Qwen3-VL-8B-Thinking): community resonance 支持 / 非明确支持 with Skellam z.",
            aliases=("caster",),
            defaults={
                "backend": "openai",
                "model": "IndexTeam/MEDEA",
                "served_model": "MEDEA",
                "short_side": 448,
                "do_sample": True,
                "temperature": 0.6,
                "top_p": 0.95,
                "max_new_tokens": 4096,
                "seed": 0,
            },
        ),
        EvaluatorSpec(
            name="short-drama",
            target="mds.evaluators.short_drama:ShortDramaEvaluator",
            label=LabelSpec(LabelKind.ORDINAL, (1.0, 5.0), True),
            description="Short-drama quality MLLM (Qwen2.5-VL-7B, WWW 2026): integer 1-5. Prompt is a placeholder.",
            aliases=("shortdrama", "short_drama"),
            defaults={
                "backend": "transformers",
                "model": None,
                "num_frames": 32,
                "max_pixels": 448 * 448,
                "answer_format": "tagged",
                "do_sample": False,
                "max_new_tokens": 1024,
                "seed": 0,
            },
        ),
        EvaluatorSpec(
            name="vrthinker",
            target="mds.evaluators.vrthinker:VRThinkerEvaluator",
            label=LabelSpec(
                LabelKind.PAIRWISE,
                (0.0, 1.0),
                True,
                dimensions=("TA", "VQ", "MQ", "OA"),
                choices=("1", "2", "0"),
            ),
            modality="video-pair",
            description="VR-Thinker (Qwen2.5-VL-7B): pairwise TA/VQ/MQ/OA with a select_frames tool loop.",
            aliases=("vr-thinker",),
            defaults={
                "backend": "transformers",
                "model": "qunwang13/vrthinker",
                "do_sample": False,
                "max_new_tokens": 2048,
                "max_turns": 6,
                "image_side": 448,
                "seed": 0,
            },
        ),
        EvaluatorSpec(
            name="videoscore2",
            target="mds.evaluators.videoscore2:VideoScore2Evaluator",
            label=LabelSpec(
                LabelKind.MULTIDIM,
                (1.0, 5.0),
                True,
                dimensions=("visual_quality", "t2v_alignment", "physical_consistency"),
            ),
            modality="video+text",
            description="VideoScore2 (Qwen2.5-VL-7B): visual quality, text alignment, physical consistency 1-5.",
            aliases=("videoscore", "vs2"),
            defaults={
                "backend": "transformers",
                "model": "TIGER-Lab/VideoScore2",
                "fps": 2.0,
                "min_frames": 2,
                "max_frames": 16,
                "min_pixels": QWEN_VIDEO_MIN_PIXELS,
                "max_pixels": QWEN_VIDEO_MAX_PIXELS,
                "do_sample": True,
                "temperature": 0.7,
                "max_new_tokens": 1024,
                "seed": 0,
                "scalar": "visual_quality",
            },
        ),
    )
}


def _spec_from_entry_point(ep: Any) -> EvaluatorSpec:
    obj = ep.load()
    dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
    if isinstance(obj, EvaluatorSpec):
        return EvaluatorSpec(**{**obj.__dict__, "name": obj.name or ep.name, "source": f"entry-point:{dist}"})
    if isinstance(obj, type) and issubclass(obj, Evaluator):
        label = getattr(obj, "label", None)
        if not isinstance(label, LabelSpec):
            raise EvaluatorError(f"plug-in evaluator {ep.name!r} ({ep.value}) declares no LabelSpec 'label'")
        return EvaluatorSpec(
            name=ep.name,
            target=ep.value,
            label=label,
            modality=getattr(obj, "modality", "video"),
            description=getattr(obj, "description", "") or _first_line(obj.__doc__),
            defaults=dict(getattr(obj, "default_options", {}) or {}),
            aliases=tuple(getattr(obj, "aliases", ()) or ()),
            source=f"entry-point:{dist}",
        )
    raise EvaluatorError(
        f"plug-in evaluator {ep.name!r} ({ep.value}) is neither an Evaluator subclass nor an EvaluatorSpec"
    )


def _first_line(doc: str | None) -> str:
    lines = (doc or "").strip().splitlines()
    return lines[0] if lines else ""


def _plugin_specs() -> dict[str, EvaluatorSpec]:
    from importlib.metadata import entry_points

    out: dict[str, EvaluatorSpec] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN or ep.name in out:
            continue
        out[ep.name] = _spec_from_entry_point(ep)
    return out


def all_specs() -> dict[str, EvaluatorSpec]:
    """Built-in and plug-in specs by name (plug-ins are looked up on every call)."""
    return {**BUILTIN, **_plugin_specs()}


def get_spec(name: str) -> EvaluatorSpec:
    """The spec for ``name`` or an alias; unknown names raise :class:`EvaluatorError` with a hint."""
    key = name.strip().lower()
    specs = all_specs()
    if key in specs:
        return specs[key]
    for spec in specs.values():
        if key in spec.aliases:
            return spec
    known = sorted(set(specs) | {a for s in specs.values() for a in s.aliases})
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise EvaluatorError(f"unknown evaluator {name!r}{hint} (known: {', '.join(sorted(specs))})")


def create_evaluator(name: str, **options: Any) -> Evaluator:
    """Build the evaluator ``name`` with its default options overridden by ``options``."""
    spec = get_spec(name)
    cls = spec.load_class()
    defaults = dict(spec.defaults)
    for group in EXCLUSIVE_OPTIONS:  # an override of one member replaces the default of the others
        if any(k in options for k in group):
            for k in group:
                if k not in options:
                    defaults.pop(k, None)
    merged = {**defaults, **options}
    try:
        return cls(**merged)
    except TypeError as e:
        raise EvaluatorError(f"evaluator {spec.name!r}: bad options ({e})") from None


def list_evaluators() -> list[EvaluatorSpec]:
    """All registered evaluators (built-in first, then plug-ins), without importing their modules."""
    return list(all_specs().values())
