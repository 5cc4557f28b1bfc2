"""Speed of the CPU learning path: feature extraction, base training, g, fine-tuning (2-core CPU).

Run: ``.venv/bin/python benchmarks/bench_learning.py`` (about a minute). Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from mds.learning import (
        finetune_base,
        fit_failure_predictor,
        minmax_normalise,
        predict_quality,
        train_base,
    )
    from mds.quality.features import extract_video_features
    from tests.fixtures.clips import write_clip
    from tests.fixtures.distortions import pan_frames

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        for w, h in ((128, 96), (640, 360), (1280, 720)):
            frames = np.concatenate([pan_frames("astronaut", 0, n=8, width=w, height=h)] * 4)  # 32 frames
            p = write_clip(Path(d) / f"c{w}.mp4", frames, fps=16)
            extract_video_features(p)  # warm-up
            t = time.perf_counter()
            for _ in range(5):
                extract_video_features(p)
            out[f"features_s_per_video_{w}x{h}"] = round((time.perf_counter() - t) / 5, 4)
    rng = np.random.default_rng(0)
    for n in (300, 3000):
        X = rng.normal(size=(n, 39)).astype(np.float32)
        y, _ = minmax_normalise(X[:, 0] - 0.5 * X[:, 1] + rng.normal(0, 0.3, n))
        t = time.perf_counter()
        f = train_base(X, y, epochs=150)
        out[f"train_base_s_n{n}"] = round(time.perf_counter() - t, 2)
        e = np.abs(predict_quality(f, X) - y)
        t = time.perf_counter()
        fit_failure_predictor(f, X, e, epochs=60)
        out[f"fit_failure_predictor_s_n{n}"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        finetune_base(f, X, y, epochs=40)
        out[f"finetune_base_s_n{n}"] = round(time.perf_counter() - t, 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
