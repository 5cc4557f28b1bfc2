"""Load a CPU quality model from a checkpoint directory, following its LoRA lineage.

A base checkpoint holds ``config.json`` + ``model.safetensors``. A fine-tuned
checkpoint holds its peft adapter plus ``lineage.json``: the base directory and
the ordered adapter directories (ancestors first, itself last), relative to
itself. Loading merges each adapter into the weights in turn.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mds.errors import EvaluatorError
from mds.quality.model import CONFIG_FILE, QualityNet

LINEAGE_FILE = "lineage.json"


def write_lineage(directory: str | Path, base_dir: str | Path, adapters: list[str | Path]) -> None:
    d = Path(directory)
    rel = lambda p: os.path.relpath(Path(p).resolve(), d.resolve())
    (d / LINEAGE_FILE).write_text(
        json.dumps({"base": rel(base_dir), "adapters": [rel(a) for a in adapters]}, indent=2), encoding="utf-8"
    )


def read_lineage(directory: str | Path) -> tuple[Path, list[Path]]:
    """``(base_dir, adapter_dirs)`` of a checkpoint directory (a base model: itself and no adapters)."""
    d = Path(directory)
    f = d / LINEAGE_FILE
    if not f.is_file():
        return d, []
    data = json.loads(f.read_text(encoding="utf-8"))
    return (d / data["base"]).resolve(), [(d / a).resolve() for a in data["adapters"]]


def load_quality_model(directory: str | Path) -> QualityNet:
    """A plain :class:`QualityNet` with every adapter of the lineage merged (eval mode)."""
    d = Path(directory)
    base_dir, adapters = read_lineage(d)
    if not (base_dir / CONFIG_FILE).is_file():
        raise EvaluatorError(f"{base_dir}: not a cpu-default model directory (no {CONFIG_FILE})")
    model = QualityNet.load(base_dir)
    if adapters:
        from mds._compat import ensure_torchvision

        ensure_torchvision()
        from peft import PeftModel

        for a in adapters:
            model = PeftModel.from_pretrained(model, str(a)).merge_and_unload()
    model.eval()
    return model
