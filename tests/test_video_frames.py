"""Frame sampler and probe on real generated clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mds.video.frames import SamplingConfig, frame_indices, sample_frames
from mds.video.probe import BrokenVideoError, probe
from tests.fixtures.clips import write_clip


def test_uniform_indices_cover_first_and_last() -> None:
    assert frame_indices(64, 16.0, SamplingConfig(num_frames=8)) == [0, 9, 18, 27, 36, 45, 54, 63]
    assert frame_indices(5, 16.0, SamplingConfig(num_frames=8)) == [0, 1, 2, 3, 4]


def test_fps_mode_with_caps() -> None:
    cfg = SamplingConfig(num_frames=None, fps=2.0, min_frames=4, max_frames=6)
    assert len(frame_indices(160, 16.0, cfg)) == 6  # 10 s at 2 fps = 20, capped at 6
    assert len(frame_indices(16, 16.0, cfg)) == 4  # 1 s at 2 fps = 2, raised to 4


def test_sample_frames_deterministic_and_resized(tmp_path: Path) -> None:
    p = write_clip(tmp_path / "a.mp4", n=24, width=96, height=64)
    a = sample_frames(p, SamplingConfig(num_frames=6, resize=(48, 32)))
    b = sample_frames(p, SamplingConfig(num_frames=6, resize=(48, 32)))
    assert a.frames.shape == (6, 32, 48, 3) and a.frames.dtype == np.uint8
    assert a.indices == b.indices and np.array_equal(a.frames, b.frames)
    assert a.total_frames == 24 and a.width == 96


def test_seek_and_sequential_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mds.video.frames as fr

    p = write_clip(tmp_path / "long.mp4", n=80, gop=16)
    seq = sample_frames(p, SamplingConfig(num_frames=7))
    monkeypatch.setattr(fr, "SEEK_THRESHOLD", 10)
    seek = sample_frames(p, SamplingConfig(num_frames=7))
    assert seq.indices == seek.indices
    assert np.abs(seq.frames.astype(int) - seek.frames.astype(int)).max() == 0


def test_probe_reads_metadata(tmp_path: Path) -> None:
    p = write_clip(tmp_path / "a.mp4", n=16, fps=16)
    r = probe(p)
    assert (r.width, r.height, r.codec, r.frame_count) == (96, 64, "h264", 16)
    assert r.fps == pytest.approx(16.0) and r.duration_s == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage", "truncated"])
def test_broken_files_raise_clear_errors(tmp_path: Path, kind: str) -> None:
    p = tmp_path / "bad.mp4"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "garbage":
        p.write_bytes(np.random.default_rng(0).bytes(20000))
    elif kind == "truncated":
        good = write_clip(tmp_path / "good.mp4", n=32).read_bytes()
        p.write_bytes(good[: len(good) // 2])
    with pytest.raises(BrokenVideoError) as e:
        probe(p)
    assert str(p) in str(e.value)
    with pytest.raises(BrokenVideoError):
        sample_frames(p)
