"""The evaluator interface: what every base VQA model plug-in provides.

An evaluator turns videos into predictions of a declared *label kind* and knows
(1) how to prepare its inputs (frames through :mod:`mds.video.frames`, metadata,
prompt), (2) how to parse its raw output, (3) how to reduce a parsed output to one
scalar "predicted quality" for ranking, (4) the error of a prediction against a
human label of the same kind (the failure predictor's supervision), and (5) which
Label Studio task type collects such labels.

A parse failure is a result with ``parse_status="failed"`` and the raw text kept;
it is never replaced by a random or default score.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, ClassVar


class LabelKind(str, Enum):
    """The five kinds of label the seed evaluators produce (evaluators.md §6)."""

    SCALAR = "scalar"  # continuous score in a range, e.g. MOS 1–5
    BINARY = "binary"  # two classes, e.g. 支持 / 非明确支持
    ORDINAL = "ordinal"  # integer levels, e.g. 1..5
    PAIRWISE = "pairwise"  # per-dimension outcome of comparing two videos (1, 2 or 0 = tie)
    MULTIDIM = "multidim"  # several scores per video, e.g. visual quality / alignment / physics


PARSE_STATUSES = (
    "ok",
    "fallback",
    "out_of_range",
    "truncated",
    "recommend_only",
    "missing_dims",
    "failed",
    "error",
)


@dataclass(frozen=True)
class LabelSpec:
    """What an evaluator predicts and how its labels look."""

    kind: LabelKind
    score_range: tuple[float, float] | None = (1.0, 5.0)
    higher_is_better: bool = True
    dimensions: tuple[str, ...] = ()  # multidim / pairwise dimension names
    choices: tuple[str, ...] = ()  # binary / categorical values, positive class first

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind.value
        return d


@dataclass
class VideoInput:
    """Everything an evaluator may need about one video."""

    path: str  # local path or URL
    video_id: int | None = None
    name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # title, tags, asr, category, prompt, ...
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    duration_s: float | None = None
    frame_count: int | None = None

    @classmethod
    def from_video(cls, video: Any) -> VideoInput:
        """Build from a :class:`mds.db.models.Video` row."""
        return cls(
            path=video.uri,
            video_id=video.id,
            name=video.name,
            meta=dict(video.meta or {}),
            width=video.width,
            height=video.height,
            fps=video.fps,
            duration_s=video.duration_s,
            frame_count=video.frame_count,
        )


@dataclass
class EvalResult:
    """One prediction, in the common record shape stored in ``predictions``."""

    video_id: int | None
    parse_status: str
    pred_scalar: float | None = None
    pred_label: Any = None
    parsed: dict[str, Any] = field(default_factory=dict)
    raw_text: str | None = None
    reasoning: str | None = None
    uncertainty: float | None = None
    n_samples: int = 1
    gen_params: dict[str, Any] = field(default_factory=dict)
    preproc: dict[str, Any] = field(default_factory=dict)
    model_id: str | None = None
    pair_video_id: int | None = None
    error: str | None = None  # why it failed (decode error, parse failure, server error)

    @property
    def ok(self) -> bool:
        return self.parse_status in ("ok", "fallback", "out_of_range", "recommend_only")


class Evaluator(ABC):
    """Base class of all evaluators. Subclasses set ``name`` and ``label``.

    Constructor options are plain keyword arguments stored in ``self.options``;
    they are part of :attr:`version`, so a changed prompt, sampling or checkpoint
    gives a new version and ``mds score`` re-scores instead of reusing.
    """

    name: ClassVar[str]
    label: ClassVar[LabelSpec]
    modality: ClassVar[str] = "video"  # video, video+text, video-pair
    # Bump when a change of the adapter's code changes its outputs (prompt, parser, preprocessing).
    impl_version: ClassVar[str] = "1"
    # Options that change how a run goes but not what it predicts; left out of ``version``.
    runtime_options: ClassVar[frozenset[str]] = frozenset(
        {"batch_size", "concurrency", "timeout", "max_retries", "device", "api_key_env", "base_url", "progress"}
    )

    def __init__(self, **options: Any) -> None:
        self.options = options

    # -- identity ---------------------------------------------------------------
    def version_payload(self) -> dict[str, Any]:
        """What identifies this evaluator's outputs (hashed into :attr:`version`)."""
        opts = {k: v for k, v in self.options.items() if k not in self.runtime_options}
        return {"impl": self.impl_version, "options": opts}

    @property
    def version(self) -> str:
        """A stable identity of model + options: ``<name>:<model id>:<hash of options>``."""
        blob = json.dumps(self.version_payload(), sort_keys=True, default=str)
        return f"{self.name}:{self.model_id}:{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    @property
    def model_id(self) -> str:
        """Model identity (checkpoint path/id and revision or content hash)."""
        return str(self.options.get("model", self.name))

    # -- inference --------------------------------------------------------------
    @abstractmethod
    def predict(self, videos: Sequence[VideoInput]) -> list[EvalResult]:
        """Batched inference; one result per input, failures as results (never raise per video)."""

    def parse(self, raw: str) -> EvalResult:
        """Parse one raw model answer (text evaluators override this)."""
        raise NotImplementedError(f"{self.name} has no text parser")

    # -- reduction and supervision --------------------------------------------------
    def to_scalar(self, result: EvalResult) -> float | None:
        """One scalar predicted quality for ranking (higher = better unless ``label.higher_is_better`` is False)."""
        return result.pred_scalar

    @abstractmethod
    def error(self, result: EvalResult, label: Any) -> float | None:
        """Error of ``result`` against a human label of the same kind (None if not comparable)."""

    @property
    def label_studio_kind(self) -> LabelKind:
        """The Label Studio task type that collects this evaluator's labels."""
        return self.label.kind

    @property
    def is_pairwise(self) -> bool:
        return self.label.kind is LabelKind.PAIRWISE

    def predict_pairs(self, pairs: Sequence[tuple[VideoInput, VideoInput]]) -> list[EvalResult]:
        """Pairwise evaluators: one result per (video 1, video 2) pair."""
        raise NotImplementedError(f"{self.name} is not a pairwise evaluator")

    def options_for_checkpoint(self, path: str, kind: str, config: dict[str, Any]) -> dict[str, Any]:
        """Options that make this evaluator run a stored checkpoint (``checkpoints`` row).

        Default: a fine-tuned artefact is a LoRA adapter on the configured base model;
        a base artefact is a full model directory. Evaluators with other artefacts override.
        """
        return {"adapter": path} if kind == "finetuned" else {"model": path}
