"""Hidden labels for simulated annotators: a demo pool folder or an oracle CSV (name, mos)."""

from __future__ import annotations

import csv
import json
from functools import lru_cache
from pathlib import Path

from mds.demo.annotators import RaterPanel
from mds.errors import ConfigError


@lru_cache(maxsize=4)
def load_oracle(path: str) -> tuple[dict[str, float], RaterPanel]:
    """``({video name: true MOS}, panel)`` from a demo pool folder or an ``oracle.csv``
    (a ``raters.json`` beside it sets the panel; default: the standard simulated panel)."""
    p = Path(path)
    csv_path = p / "oracle.csv" if p.is_dir() else p
    if not csv_path.is_file():
        raise ConfigError(f"no oracle at {path} (a demo pool folder or an oracle CSV with name,mos)")
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "name" not in rows[0] or "mos" not in rows[0]:
        raise ConfigError(f"{csv_path}: an oracle CSV needs the columns name and mos")
    oracle = {r["name"]: float(r["mos"]) for r in rows if r.get("mos") not in (None, "")}
    raters = csv_path.parent / "raters.json"
    panel = RaterPanel.from_dict(json.loads(raters.read_text())) if raters.is_file() else RaterPanel.create()
    return oracle, panel
