"""The CPU default base model: feature normalisation -> MLP -> bounded scalar MOS.

``QualityNet`` maps a pooled quality-feature vector to a score on the model's 1-5
scale (``lo + (hi - lo) * sigmoid(z)``). Its layers are plain ``nn.Linear`` modules
(``fc1``, ``fc2``, ``out``), so peft LoRA adapters attach to them exactly as to a
VLM's linear layers. :meth:`QualityNet.hidden` exposes the penultimate features
that the failure predictor's head reads.

A saved model is a directory with ``config.json`` and ``model.safetensors``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
LORA_TARGETS = ("fc1", "fc2", "out")


@dataclass
class QualityNetConfig:
    in_dim: int
    hidden: tuple[int, int] = (64, 32)
    score_range: tuple[float, float] = (1.0, 5.0)
    dropout: float = 0.1
    feature_key: str = ""
    feature_names: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["score_range"] = list(self.score_range)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QualityNetConfig:
        d = dict(d)
        d["hidden"] = tuple(d.get("hidden", (64, 32)))
        d["score_range"] = tuple(d.get("score_range", (1.0, 5.0)))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class QualityNet(nn.Module):
    """Normalised features -> two hidden layers -> bounded scalar."""

    def __init__(self, config: QualityNetConfig) -> None:
        super().__init__()
        self.cfg = config
        h1, h2 = config.hidden
        self.register_buffer("feat_mean", torch.zeros(config.in_dim))
        self.register_buffer("feat_std", torch.ones(config.in_dim))
        self.fc1 = nn.Linear(config.in_dim, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.out = nn.Linear(h2, 1)
        self.drop = nn.Dropout(config.dropout)
        self.act = nn.GELU()

    @property
    def hidden_dim(self) -> int:
        return self.cfg.hidden[1]

    def set_normalisation(self, X: np.ndarray) -> None:
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        std[std < 1e-6] = 1.0
        self.feat_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feat_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.feat_mean) / self.feat_std
        z = torch.clamp(z, -8.0, 8.0)  # keep far out-of-domain inputs from exploding
        z = self.drop(self.act(self.fc1(z)))
        return self.act(self.fc2(z))

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x)).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.cfg.score_range
        return lo + (hi - lo) * torch.sigmoid(self.logit(x))

    # -- persistence --------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(d / MODEL_FILE))
        (d / CONFIG_FILE).write_text(
            json.dumps({"model_type": "mds-quality-net", **self.cfg.as_dict()}, indent=2), encoding="utf-8"
        )
        return d

    @classmethod
    def load(cls, directory: str | Path) -> QualityNet:
        from safetensors.torch import load_file

        d = Path(directory)
        cfg = json.loads((d / CONFIG_FILE).read_text(encoding="utf-8"))
        model = cls(QualityNetConfig.from_dict(cfg))
        model.load_state_dict(load_file(str(d / MODEL_FILE)))
        model.eval()
        return model


def predict_scores(model: nn.Module, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Scores of a (possibly LoRA-wrapped) quality model for a feature matrix, eval mode."""
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(X), batch_size):
            out.append(model(torch.as_tensor(X[i : i + batch_size], dtype=torch.float32)).numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, np.float32)
