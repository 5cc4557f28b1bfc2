"""The experiment file of ``mds simulate`` (JSON or TOML): one file makes one experiment reproducible.

Example (TOML)::

    pool = "demo-pool"                  # a demo pool directory (mds demo-pool)
    out = "sim-out"                     # results folder (default: next to the config file)
    strategies = ["random", "difficulty", "diversity", "mds"]
    budgets = ["5%"]                    # per round: counts or percentages of the pool
    seeds = [0, 1, 2, 3, 4]
    rounds = 3
    labels = "annotators"               # or "oracle": exact pseudo-MOS instead of simulated raters
    ratings_per_video = 5
    lambda = 0.25                       # MDS trade-off (default: the selection engine's default)
    source_errors = "in_sample"         # g's supervision on the source set: the current model's errors
                                        # (as `mds round start` uses), or out-of-fold errors of the base
                                        # architecture ("crossfit", `crossfit_folds` folds; with
                                        # `crossfit_by = "content"` each fold holds out whole contents)
    target_errors = "selection"         # picks: error of the model in use when they were selected
                                        # ("selection"), or of the current model ("current", in-sample
                                        # once fine-tuned on them; kept for comparison only)
    g_ensemble = 1                      # average the difficulty of this many g's (seeds)

    [encoder]                           # CLIP frame embeddings for the diversity term
    model = "ViT-S-32"
    pretrained = "none"                 # random init; or a local weights path / hf-hub: / tag
    frames = 4

    [base]        # keyword options of mds.learning.train_base
    [failure]     # ... fit_failure_predictor
    [finetune]    # ... finetune_base
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mds.errors import ConfigError

STRATEGIES = ("random", "difficulty", "diversity", "mds")
LABEL_MODES = ("annotators", "oracle")
SOURCE_ERRORS = ("crossfit", "in_sample")
TARGET_ERRORS = ("selection", "current")


@dataclass
class EncoderConfig:
    model: str = "ViT-S-32"
    pretrained: str = "none"
    frames: int = 4

    def spec(self):  # -> selection.embeddings.encoder.EncoderSpec (imported lazily)
        from mds.video.frames import SamplingConfig
        from selection.embeddings.encoder import EncoderSpec

        return EncoderSpec(model=self.model, pretrained=self.pretrained, sampling=SamplingConfig(num_frames=self.frames))

    def key(self) -> str:
        """The selection engine's encoder key (model, weights id, sampling): caches follow the weights."""
        return self.spec().key()


@dataclass
class SimConfig:
    """A validated experiment. ``pool`` and ``out`` are absolute after :func:`load_config`."""

    pool: str
    out: str = "sim-out"
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))
    budgets: list[str] = field(default_factory=lambda: ["5%"])
    seeds: list[int] = field(default_factory=lambda: [0])
    rounds: int = 3
    labels: str = "annotators"
    ratings_per_video: int = 5
    lambda_: float | None = None
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    base: dict[str, Any] = field(default_factory=dict)
    failure: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] = field(default_factory=dict)
    embedding_map: str = "pca"  # pca | tsne
    source_errors: str = "in_sample"
    crossfit_folds: int = 5
    crossfit_by: str | None = None  # a metadata key (e.g. "content"): folds keep its values whole
    target_errors: str = "selection"
    g_ensemble: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig(**self.encoder)
        self.budgets = [str(b) for b in self.budgets]
        self.seeds = [int(s) for s in self.seeds]
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad:
            raise ConfigError(f"unknown strategies {bad}; choose from {', '.join(STRATEGIES)}")
        if not self.strategies or not self.budgets or not self.seeds:
            raise ConfigError("strategies, budgets and seeds must each list at least one value")
        if self.rounds < 1:
            raise ConfigError("rounds must be at least 1")
        if self.labels not in LABEL_MODES:
            raise ConfigError(f"labels must be one of {', '.join(LABEL_MODES)}, not {self.labels!r}")
        if self.source_errors not in SOURCE_ERRORS:
            raise ConfigError(f"source_errors must be one of {', '.join(SOURCE_ERRORS)}, not {self.source_errors!r}")
        if self.target_errors not in TARGET_ERRORS:
            raise ConfigError(f"target_errors must be one of {', '.join(TARGET_ERRORS)}, not {self.target_errors!r}")
        if self.crossfit_folds < 2 or self.g_ensemble < 1:
            raise ConfigError("crossfit_folds must be at least 2 and g_ensemble at least 1")
        if self.crossfit_by is not None and (not isinstance(self.crossfit_by, str) or not self.crossfit_by):
            raise ConfigError("crossfit_by must be a metadata key such as \"content\"")
        if self.embedding_map not in ("pca", "tsne"):
            raise ConfigError("embedding_map must be 'pca' or 'tsne'")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lambda"] = d.pop("lambda_")
        return d

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]


def parse_config(raw: dict[str, Any], base_dir: Path | None = None) -> SimConfig:
    """A :class:`SimConfig` from a mapping (relative paths resolved against ``base_dir``)."""
    raw = dict(raw)
    if "lambda" in raw:
        raw["lambda_"] = raw.pop("lambda")
    known = set(SimConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown keys in the experiment file: {', '.join(unknown)}")
    if "pool" not in raw:
        raise ConfigError("the experiment file needs `pool` (a demo pool directory)")
    try:
        cfg = SimConfig(**raw)
    except TypeError as e:
        raise ConfigError(f"bad experiment file: {e}") from None
    base = base_dir or Path.cwd()
    cfg.pool = str((base / cfg.pool).resolve()) if not Path(cfg.pool).is_absolute() else cfg.pool
    cfg.out = str((base / cfg.out).resolve()) if not Path(cfg.out).is_absolute() else cfg.out
    return cfg


def load_config(path: str | Path) -> SimConfig:
    """Read an experiment file (``.json`` or ``.toml``)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such experiment file")
    try:
        if p.suffix.lower() == ".json":
            raw = json.loads(p.read_text(encoding="utf-8"))
        elif p.suffix.lower() == ".toml":
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        else:
            raise ConfigError(f"{p}: use a .json or .toml experiment file")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{p}: cannot parse: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a table/object at the top level")
    return parse_config(raw, p.parent.resolve())
