"""Compatibility guards that must run before heavy imports."""

from __future__ import annotations

import importlib.util
import os

_done = False


def ensure_offline_defaults() -> None:
    """Default the HF libraries to offline mode unless the user chose otherwise.

    Must run before ``huggingface_hub`` is imported: set later, a lookup still
    retries for tens of seconds.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def ensure_torchvision() -> None:
    """Make ``import torchvision`` work with a CPU-only torch.

    The PyPI torchvision wheel links CUDA libraries; with a CPU torch its C++
    extension fails to load and its meta registrations then raise
    ``operator torchvision::nms does not exist``. Defining the two operator
    schemas first lets the pure-Python parts (transforms, and through them
    open_clip, timm and the transformers video processors) import. No-op on CUDA
    builds or when torchvision is absent. Call before importing open_clip,
    timm, torchvision or transformers processors.
    """
    global _done
    if _done:
        return
    _done = True
    ensure_offline_defaults()
    if importlib.util.find_spec("torchvision") is None:
        return
    import torch

    if torch.version.cuda is not None:
        return
    for op in ("nms", "qnms"):
        try:
            torch.library.define(
                f"torchvision::{op}", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
            )
        except RuntimeError:
            pass
