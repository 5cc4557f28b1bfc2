"""A per-video feature cache: one ``.npz`` file per extractor key under the data dir.

Vectors are keyed by video id and stamped with the video's uri, so a re-pointed
video id is recomputed. The file is rewritten atomically (temporary file
+ rename), so a crash never leaves a half-written cache.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from mds.quality.features import DEFAULT_SAMPLING, FEATURE_DIM, extract_video_features, extractor_key
from mds.video.frames import SamplingConfig


class FeatureStore:
    """Cached quality-feature vectors for one extractor key."""

    def __init__(self, root: str | Path, key: str | None = None) -> None:
        self.key = key or extractor_key()
        self.path = Path(root) / "features" / f"quality-{self.key}.npz"
        self._vecs: dict[int, np.ndarray] = {}
        self._stamps: dict[int, str] = {}
        self._dirty = False
        if self.path.is_file():
            with np.load(self.path, allow_pickle=False) as z:
                ids, X, stamps = z["ids"], z["X"], z["stamps"]
            for i, x, s in zip(ids.tolist(), X, stamps.tolist(), strict=True):
                self._vecs[int(i)] = x
                self._stamps[int(i)] = str(s)

    @classmethod
    def for_data_dir(cls, data_dir: str | Path, sampling: SamplingConfig = DEFAULT_SAMPLING) -> FeatureStore:
        return cls(data_dir, extractor_key(sampling))

    def __len__(self) -> int:
        return len(self._vecs)

    def get(self, video_id: int, stamp: str | None = None) -> np.ndarray | None:
        v = self._vecs.get(int(video_id))
        if v is None or (stamp is not None and self._stamps.get(int(video_id)) != stamp):
            return None
        return v

    def put(self, video_id: int, vec: np.ndarray, stamp: str = "") -> None:
        self._vecs[int(video_id)] = np.asarray(vec, dtype=np.float32)
        self._stamps[int(video_id)] = stamp
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ids = np.array(sorted(self._vecs), dtype=np.int64)
        X = np.stack([self._vecs[i] for i in ids]) if len(ids) else np.zeros((0, FEATURE_DIM), np.float32)
        stamps = np.array([self._stamps[i] for i in ids], dtype=str) if len(ids) else np.array([], dtype=str)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, ids=ids, X=X, stamps=stamps)
        os.replace(tmp, self.path)
        self._dirty = False


def video_stamp(video: object) -> str:
    """What a cached vector is valid for: the file's location (a re-pointed video id is recomputed)."""
    return str(getattr(video, "uri", ""))


def features_for_videos(
    videos: Sequence[object],
    store: FeatureStore | None = None,
    *,
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    save_every: int = 50,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Feature matrix for Video rows (``id``, ``uri``, ``content_hash``).

    Returns ``(X, ok_ids, failures)``: rows of ``X`` follow ``ok_ids``; videos that
    cannot be decoded are left out and reported in ``failures`` (id -> reason).
    """
    from mds.video.probe import BrokenVideoError

    rows: list[np.ndarray] = []
    ok: list[int] = []
    failures: dict[int, str] = {}
    fresh = 0
    for v in videos:
        vid, stamp = int(v.id), video_stamp(v)
        x = store.get(vid, stamp) if store is not None else None
        if x is None:
            try:
                x = extract_video_features(v.uri, sampling)
            except (BrokenVideoError, OSError, ValueError) as e:
                failures[vid] = str(e)[:300]
                if on_progress:
                    on_progress(1)
                continue
            if store is not None:
                store.put(vid, x, stamp)
                fresh += 1
                # The file is rewritten whole: save less often as it grows (a crash loses one interval).
                if fresh % max(save_every, len(store) // 5) == 0:
                    store.save()
        rows.append(x)
        ok.append(vid)
        if on_progress:
            on_progress(1)
    if store is not None:
        store.save()
    X = np.stack(rows).astype(np.float32) if rows else np.zeros((0, FEATURE_DIM), np.float32)
    return X, ok, failures


def features_for_paths(paths: Iterable[str | Path], sampling: SamplingConfig = DEFAULT_SAMPLING) -> np.ndarray:
    """Feature matrix for plain file paths (no cache)."""
    return np.stack([extract_video_features(p, sampling) for p in paths]).astype(np.float32)
