"""Per-frame quality features: they respond to the distortions they measure, and are cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mds.quality.features import (
    FEATURE_DIM,
    FEATURE_NAMES,
    FRAME_FEATURES,
    frame_features,
    video_features_from_frames,
)
from tests.fixtures.distortions import _blocking, _blur, _noise, pan_frames


def _f(frames: np.ndarray, name: str) -> float:
    return float(video_features_from_frames(frames)[FEATURE_NAMES.index(f"{name}_mean")])


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return pan_frames("astronaut", seed=3, n=4)


def test_vector_shape_and_determinism(clean: np.ndarray) -> None:
    a = video_features_from_frames(clean)
    b = video_features_from_frames(clean.copy())
    assert a.shape == (FEATURE_DIM,) and a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert frame_features(clean[0]).shape == (len(FRAME_FEATURES),)


def test_sharpness_falls_with_blur(clean: np.ndarray) -> None:
    vals = [_f(_blur(clean, s), "sharp0") for s in (0.0, 1.0, 2.0, 3.0)]
    assert vals == sorted(vals, reverse=True)


def test_noise_estimate_rises_with_noise(clean: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    vals = [_f(_noise(clean, sd, rng), "noise_floor") for sd in (0.0, 5.0, 15.0, 30.0)]
    assert vals == sorted(vals)


def test_blockiness_rises_with_dct_quantisation(clean: np.ndarray) -> None:
    vals = [_f(_blocking(clean, q), "block_h") + _f(_blocking(clean, q), "block_v") for q in (0.0, 10.0, 40.0)]
    assert vals == sorted(vals)


def test_temporal_features_see_motion_and_flicker(clean: np.ndarray) -> None:
    still = np.repeat(clean[:1], 4, axis=0)
    flick = still.astype(np.int16).copy()
    flick[1::2] += 40
    flick = np.clip(flick, 0, 255).astype(np.uint8)
    i_f, i_m = FEATURE_NAMES.index("flicker"), FEATURE_NAMES.index("motion")
    v_still, v_pan, v_flick = (video_features_from_frames(x) for x in (still, clean, flick))
    assert v_still[i_f] == 0 and v_still[i_m] == 0
    assert v_pan[i_m] > 0
    assert v_flick[i_f] > v_pan[i_f]


def test_feature_store_caches_and_records_failures(tmp_path: Path, clip_dir: Path) -> None:
    from types import SimpleNamespace

    from mds.quality.store import FeatureStore, features_for_videos

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 300)
    videos = [SimpleNamespace(id=i + 1, uri=str(p)) for i, p in enumerate(sorted(clip_dir.glob("*.mp4")))]
    videos.append(SimpleNamespace(id=99, uri=str(bad)))
    store = FeatureStore(tmp_path / "data")
    X, ok, failures = features_for_videos(videos, store)
    assert ok == [1, 2, 3, 4] and list(failures) == [99]
    assert X.shape == (4, FEATURE_DIM)
    reopened = FeatureStore(tmp_path / "data")
    assert len(reopened) == 4
    np.testing.assert_array_equal(reopened.get(2, str(videos[1].uri)), X[1])
    assert reopened.get(2, "/moved/elsewhere.mp4") is None  # stamped with the location
    # A cached vector is served without decoding: delete the file, the vector still comes back.
    import shutil

    copy = tmp_path / "copy.mp4"
    shutil.copy(videos[2].uri, copy)
    v = SimpleNamespace(id=7, uri=str(copy))
    first, _, _ = features_for_videos([v], reopened)
    copy.unlink()
    again, ok2, fail2 = features_for_videos([v], FeatureStore(tmp_path / "data"))
    assert ok2 == [7] and not fail2
    np.testing.assert_array_equal(first, again)
