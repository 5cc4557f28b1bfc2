"""open_clip image encoder for frame embeddings, loaded fully offline.

Pretrained sources (``pretrained=``):

* a local checkpoint file (``.pt``, ``.bin``, ``.safetensors``) for a built-in model name;
* a local directory with ``open_clip_config.json`` and a checkpoint (HF layout);
* ``hf-hub:org/repo``: from the local Hugging Face cache (``HF_HUB_OFFLINE``);
* an open_clip tag (``openai``, ``laion2b_s34b_b79k``, ...): from the local cache;
* ``"none"``: random initialisation, seeded (weights id ``random-s0``), only when asked for explicitly
  (tests, throughput runs, the demo).

Anything missing is a one-line :class:`mds.errors.ConfigError`; there is no silent
fallback to random weights. The encoder key stored with every vector names the
model, the weights (file hash, repo or tag) and the frame sampling.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mds.errors import ConfigError
from mds.video.frames import SamplingConfig

CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
RANDOM_INIT_SEED = 0  # seed of the random initialisation used with pretrained="none"


def sampling_tag(cfg: SamplingConfig) -> str:
    """Compact, stable description of a sampling config for encoder keys (e.g. ``F8``, ``fps2,max32``)."""
    parts = [f"F{cfg.num_frames}" if cfg.num_frames is not None else f"fps{cfg.fps:g}"]
    if cfg.fps is not None and cfg.min_frames != 1:
        parts.append(f"min{cfg.min_frames}")
    if cfg.max_frames is not None:
        parts.append(f"max{cfg.max_frames}")
    if cfg.short_side is not None:
        parts.append(f"ss{cfg.short_side}")
    if cfg.resize is not None:
        parts.append(f"rs{cfg.resize[0]}x{cfg.resize[1]}")
    return ",".join(parts)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def _checkpoint_in_dir(d: Path) -> Path | None:
    files = sorted(p for p in d.iterdir() if p.suffix in CHECKPOINT_SUFFIXES and p.is_file())
    files.sort(key=lambda p: p.suffix != ".safetensors")
    return files[0] if files else None


@dataclass(frozen=True)
class EncoderSpec:
    """Which open_clip model, which weights, which frames.

    ``pretrained`` must be given: a path, ``hf-hub:...``, a tag, or ``"none"`` for random init.
    """

    model: str = "ViT-B-32"
    pretrained: str | None = None
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(num_frames=8))

    def resolve(self) -> tuple[str, str | None, str]:
        """``(model_name, pretrained_arg, weights_id)`` for open_clip, checking the source exists."""
        p = self.pretrained
        if p is None or p == "":
            raise ConfigError(
                "no CLIP weights given: pass --pretrained PATH|DIR|hf-hub:REPO|TAG, or --pretrained none for random init"
            )
        if p.lower() == "none":
            return self.model, None, f"random-s{RANDOM_INIT_SEED}"
        if p.startswith("hf-hub:"):
            _require_hf_cache(p[len("hf-hub:") :])
            return p, None, "hf-" + p[len("hf-hub:") :].replace("/", "_")
        path = Path(p).expanduser()
        if path.is_dir():
            if not (path / "open_clip_config.json").is_file():
                raise ConfigError(f"{path}: no open_clip_config.json in the weights directory")
            ckpt = _checkpoint_in_dir(path)
            if ckpt is None:
                raise ConfigError(f"{path}: no checkpoint file (*.safetensors, *.bin, *.pt) in the weights directory")
            return f"local-dir:{path.resolve()}", None, "dir-" + _file_digest(ckpt)
        if path.suffix in CHECKPOINT_SUFFIXES or "/" in p or p.startswith("."):
            if not path.is_file():
                raise ConfigError(f"CLIP weights file not found: {path}")
            return self.model, str(path.resolve()), "file-" + _file_digest(path)
        return self.model, p, "tag-" + p  # an open_clip tag, resolved from the local cache

    def key(self, weights_id: str | None = None) -> str:
        """The encoder key recorded with every vector (model, weights id, sampling)."""
        wid = weights_id if weights_id is not None else self.resolve()[2]
        model = self.model if not (self.pretrained or "").startswith("hf-hub:") else "hf"
        return f"open_clip:{model}:{wid}:{sampling_tag(self.sampling)}"


def _require_hf_cache(repo: str) -> None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        raise ConfigError("hf-hub weights need huggingface_hub") from None
    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "open_clip_pytorch_model.safetensors"):
        hit = try_to_load_from_cache(repo, name)
        if isinstance(hit, str):
            return
    raise ConfigError(f"weights of hf-hub:{repo} are not in the local Hugging Face cache (offline)")


class ClipEncoder:
    """Loads an open_clip model once and encodes uint8 RGB frames to L2-normalised vectors."""

    def __init__(self, spec: EncoderSpec, *, device: str = "auto", threads: int | None = None) -> None:
        from mds._compat import ensure_torchvision

        ensure_torchvision()
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.spec = spec
        model_name, pretrained, self.weights_id = spec.resolve()
        self.key = spec.key(self.weights_id)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        import open_clip

        try:
            # a random init is seeded, so "none" names one fixed weight set and runs are reproducible
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_INIT_SEED)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    model_name, pretrained=pretrained, device=device,
                    precision="fp16" if device.startswith("cuda") else "fp32",
                )
        except (RuntimeError, FileNotFoundError, ValueError) as e:
            raise ConfigError(f"cannot load CLIP {spec.model!r} with weights {spec.pretrained!r}: {str(e).splitlines()[0]}") from None
        model.eval()
        self.model = model
        self.preprocess = preprocess
        self.dtype = next(model.parameters()).dtype
        self.dim = int(getattr(model.visual, "output_dim", 0) or self._probe_dim())

    def _probe_dim(self) -> int:
        return int(self.encode(np.zeros((1, 8, 8, 3), dtype=np.uint8)).shape[1])

    def info(self) -> dict[str, Any]:
        return {"model": self.spec.model, "pretrained": self.spec.pretrained, "weights_id": self.weights_id,
                "sampling": self.spec.sampling.as_dict(), "dim": self.dim, "device": self.device}

    def encode(self, frames: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """``(T, H, W, 3)`` uint8 frames -> ``(T, D)`` float32 unit vectors."""
        import torch
        from PIL import Image

        out = []
        with torch.inference_mode():
            for s in range(0, len(frames), batch_size):
                x = torch.stack([self.preprocess(Image.fromarray(f)) for f in frames[s : s + batch_size]])
                y = self.model.encode_image(x.to(self.device, dtype=self.dtype)).float()
                out.append(torch.nn.functional.normalize(y, dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)
