"""Arrays of a pool with known labels, for oracle replay: quality features, CLIP frame sets, MOS.

Features and embeddings are computed once per pool and cached in ``<pool>/.cache``
(keyed by the feature extractor and the encoder), so repeated experiments only pay
for learning and selection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mds.demo.pool import SOURCE_DATASET, TARGET_DATASET, DemoPool, load_demo_pool
from mds.simulate.config import EncoderConfig


@dataclass
class PoolArrays:
    """Everything oracle replay needs, row-aligned; ``ids`` are positions 0..N-1 (stable for one pool)."""

    names: list[str]
    paths: list[str]
    datasets: np.ndarray
    splits: np.ndarray
    mos: np.ndarray  # the hidden truth (pseudo-MOS) of every video
    meta: list[dict]
    X: np.ndarray  # quality features (N, d)
    frames: np.ndarray  # CLIP frame sets (N, F, D), unit vectors
    encoder_key: str
    panel: object = None
    info: dict = field(default_factory=dict)

    def rows(self, split: str, dataset: str | None = None) -> np.ndarray:
        m = self.splits == split
        if dataset is not None:
            m &= self.datasets == dataset
        return np.flatnonzero(m)

    @property
    def source(self) -> np.ndarray:
        return self.rows("source", SOURCE_DATASET)

    @property
    def pool(self) -> np.ndarray:
        return self.rows("pool", TARGET_DATASET)

    @property
    def target_test(self) -> np.ndarray:
        return self.rows("test", TARGET_DATASET)

    @property
    def source_test(self) -> np.ndarray:
        return self.rows("test", SOURCE_DATASET)

    def pooled(self) -> np.ndarray:
        m = self.frames.mean(axis=1)
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def _cache_file(root: Path, kind: str, key: str, names: list[str]) -> Path:
    h = hashlib.sha256((key + "\n" + "\n".join(names)).encode()).hexdigest()[:16]
    return root / ".cache" / f"{kind}-{h}.npy"


def quality_features(paths: list[str], cache: Path | None, progress: Callable[[int, int], None] | None = None
                     ) -> np.ndarray:
    """The CPU default model's quality features of every path (cached in ``cache``)."""
    if cache is not None and cache.is_file():
        return np.load(cache)
    from mds.quality.features import extract_video_features

    rows = []
    for i, p in enumerate(paths):
        rows.append(extract_video_features(p))
        if progress:
            progress(i + 1, len(paths))
    X = np.stack(rows).astype(np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, X)
    return X


def clip_frames(paths: list[str], enc: EncoderConfig, cache: Path | None,
                progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, str]:
    """Per-frame CLIP vectors ``(N, F, D)`` float32 of every path with the selection engine's encoder."""
    from mds.video.frames import sample_frames
    from selection.embeddings.encoder import ClipEncoder

    spec = enc.spec()
    key = spec.key()
    if cache is not None and cache.is_file():
        return np.load(cache), key
    encoder = ClipEncoder(spec, device="cpu", threads=2)
    out: list[np.ndarray] = []
    group = 16  # videos per forward pass: batching frames across videos is ~3x faster on CPU
    for s in range(0, len(paths), group):
        sets = [sample_frames(p, spec.sampling).frames for p in paths[s : s + group]]
        vecs = encoder.encode(np.concatenate(sets), batch_size=64)
        o = 0
        for fr in sets:
            v = vecs[o : o + len(fr)]
            o += len(fr)
            if len(v) < enc.frames:  # very short clip: repeat the last frame so sets stack
                v = np.concatenate([v, np.repeat(v[-1:], enc.frames - len(v), axis=0)])
            out.append(v)
        if progress:
            progress(len(out), len(paths))
    F = np.stack(out).astype(np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, F)
    return F, key


def load_pool_arrays(pool: str | Path | DemoPool, enc: EncoderConfig | None = None,
                     progress: Callable[[str, int, int], None] | None = None) -> PoolArrays:
    """Load (and cache) the arrays of a demo pool."""
    dp = pool if isinstance(pool, DemoPool) else load_demo_pool(pool)
    enc = enc or EncoderConfig()
    names = [v.name for v in dp.videos]
    paths = [v.path for v in dp.videos]
    from mds.quality.features import extractor_key

    X = quality_features(paths, _cache_file(dp.root, "quality", extractor_key(), names),
                         (lambda d, n: progress("features", d, n)) if progress else None)
    frames, key = clip_frames(paths, enc, _cache_file(dp.root, "clip", enc.key(), names),
                              (lambda d, n: progress("embeddings", d, n)) if progress else None)
    meta = [{"content": v.content, "content_kind": v.content_kind, "distortion": v.distortion, "level": v.level,
             "codec": v.codec, "vmaf": v.vmaf} for v in dp.videos]
    return PoolArrays(
        names=names, paths=paths, datasets=np.array([v.dataset for v in dp.videos]),
        splits=np.array([v.split for v in dp.videos]), mos=np.array([v.mos for v in dp.videos], dtype=np.float64),
        meta=meta, X=X, frames=frames, encoder_key=key, panel=dp.panel, info={"size": dp.size, "seed": dp.seed},
    )
