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


@pytest.mark.parametrize(("ext", "codec"), [("mp4", "libx264"), ("mkv", "libx264"), ("webm", "libvpx-vp9"),
                                            ("ts", "libx264"), ("mov", "mpeg4"), ("mkv", "libx265")])  # fmt: skip
@pytest.mark.parametrize("n", [1, 5, 40])
def test_probe_accepts_valid_clips_in_many_containers(tmp_path: Path, ext: str, codec: str, n: int) -> None:
    p = write_clip(tmp_path / f"ok.{ext}", n=n, codec=codec)
    r = probe(p)
    assert r.width == 96 and r.height == 64 and r.size_bytes == p.stat().st_size


@pytest.mark.parametrize(("ext", "cut", "detail"), [("mp4", 0.5, "moov"), ("mp4", 0.8, "moov"), ("mkv", 0.5, "end at"),
                                                     ("mkv", 0.8, "end at"), ("webm", 0.6, "")])  # fmt: skip
def test_probe_classifies_cut_files_as_truncated(tmp_path: Path, ext: str, cut: float, detail: str) -> None:
    codec = "libvpx-vp9" if ext == "webm" else "libx264"
    data = write_clip(tmp_path / f"whole.{ext}", n=48, codec=codec).read_bytes()
    p = tmp_path / f"cut.{ext}"
    p.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(BrokenVideoError) as e:
        probe(p)
    assert e.value.kind == "truncated" and detail in e.value.detail


def test_probe_error_kinds(tmp_path: Path) -> None:
    from tests.fixtures.bad_videos import expected_type, write_bad_files

    for key, path in write_bad_files(tmp_path).items():
        with pytest.raises(BrokenVideoError) as e:
            probe(path)
        assert e.value.kind == expected_type(key), key
        assert str(path) not in e.value.detail  # the path is said once, in the message prefix
