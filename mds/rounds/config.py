"""What a round is asked to do; stored verbatim (with a hash) in the Round's config snapshot."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mds.errors import ConfigError

LABEL_BACKENDS = ("auto", "simulated", "labelstudio")


@dataclass
class RoundConfig:
    """Settings of one labelling round.

    ``labels``: ``simulated`` (the demo's simulated annotators rate the picks; needs
    ``oracle``, a demo pool folder or an oracle CSV), ``labelstudio`` (push the batch to
    the Label Studio of mds.toml), or ``auto`` (Label Studio when one is configured,
    else simulated). ``simulate_raters``: with Label Studio, let the simulated panel
    answer through its API (demo / tests).
    """

    strategy: str = "mds"
    budget: str = "5%"
    seed: int = 0
    lambda_: float | None = None
    evaluator: str = "cpu-default"
    clip_model: str = "ViT-S-32"
    clip_pretrained: str | None = None  # None: random init, stated in the round's config
    clip_frames: int = 4
    labels: str = "auto"
    oracle: str | None = None
    ratings_per_video: int = 5
    simulate_raters: bool = False
    count_labelled: bool = True  # earlier rounds' picks count as selected in the diversity term
    promote: bool = True  # the fine-tuned model becomes the next round's base
    finetune: dict[str, Any] = field(default_factory=dict)
    failure: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.labels not in LABEL_BACKENDS:
            raise ConfigError(f"labels must be one of {', '.join(LABEL_BACKENDS)}, not {self.labels!r}")
        if self.ratings_per_video < 1:
            raise ConfigError("ratings per video must be at least 1")
        self.budget = str(self.budget)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lambda"] = d.pop("lambda_")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoundConfig:
        d = dict(d)
        if "lambda" in d:
            d["lambda_"] = d.pop("lambda")
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True, default=str).encode()).hexdigest()
