"""Deterministic frame sampling shared by every model (evaluators, CLIP encoder, features).

Two modes: ``num_frames`` frames spread uniformly over the video, or frames at
a target ``fps`` with ``min_frames``/``max_frames`` caps. Short clips are decoded
sequentially; long ones are read by seeking to each wanted frame (the same frames
either way). Broken files raise :class:`mds.video.probe.BrokenVideoError`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mds.video.probe import BrokenVideoError, open_container

# Above this many frames, seeking beats decoding everything (stack notes: 960-frame clip, GOP 32).
SEEK_THRESHOLD = 300


@dataclass(frozen=True)
class SamplingConfig:
    """How to pick frames. Exactly one of ``num_frames`` / ``fps`` drives the count."""

    num_frames: int | None = 8
    fps: float | None = None
    min_frames: int = 1
    max_frames: int | None = None
    resize: tuple[int, int] | None = None  # exact (width, height)
    short_side: int | None = None  # resize keeping the aspect ratio
    even: bool = False  # round the count down to an even number (Qwen temporal patch 2)

    def __post_init__(self) -> None:
        if (self.num_frames is None) == (self.fps is None):
            raise ValueError("SamplingConfig: give exactly one of num_frames or fps")
        if self.num_frames is not None and self.num_frames < 1:
            raise ValueError("SamplingConfig: num_frames must be >= 1")
        if self.fps is not None and self.fps <= 0:
            raise ValueError("SamplingConfig: fps must be > 0")
        if self.resize is not None and self.short_side is not None:
            raise ValueError("SamplingConfig: use resize or short_side, not both")

    def key(self) -> str:
        """A short stable string for cache keys and stored records."""
        d = {k: v for k, v in asdict(self).items() if v not in (None, False)}
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SampledFrames:
    """Decoded RGB frames ``(T, H, W, 3)`` uint8 with where they came from."""

    frames: np.ndarray
    indices: list[int]
    timestamps: list[float]
    fps: float | None
    total_frames: int
    width: int  # original size
    height: int
    config: SamplingConfig = field(default_factory=SamplingConfig)


def frame_count_for(total_frames: int, fps: float | None, config: SamplingConfig) -> int:
    """How many frames ``config`` wants from a video of ``total_frames`` at ``fps``."""
    if config.num_frames is not None:
        n = config.num_frames
    else:
        duration = total_frames / fps if fps else total_frames
        n = int(round(duration * config.fps))
    n = max(n, config.min_frames)
    if config.max_frames is not None:
        n = min(n, config.max_frames)
    n = max(1, min(n, total_frames))
    if config.even and n >= 2:
        n -= n % 2
    return n


def frame_indices(total_frames: int, fps: float | None, config: SamplingConfig) -> list[int]:
    """Uniformly spread frame indices (first and last frame included when n > 1)."""
    if total_frames <= 0:
        return []
    n = frame_count_for(total_frames, fps, config)
    return [int(i) for i in np.linspace(0, total_frames - 1, n).round().astype(int)]


def _to_rgb(frame, config: SamplingConfig) -> np.ndarray:  # noqa: ANN001
    w, h = frame.width, frame.height
    if config.resize is not None:
        w, h = config.resize
    elif config.short_side is not None:
        s = config.short_side / min(w, h)
        w, h = max(2, int(round(w * s))), max(2, int(round(h * s)))
    if (w, h) != (frame.width, frame.height):
        frame = frame.reformat(width=w, height=h, format="rgb24")
        return frame.to_ndarray()
    return frame.to_ndarray(format="rgb24")


def sample_frames(
    path: str | Path,
    config: SamplingConfig | None = None,
    *,
    indices: list[int] | None = None,
) -> SampledFrames:
    """Decode the frames ``config`` asks for (or the explicit ``indices``) from ``path``."""
    import av

    config = config or SamplingConfig()
    container = open_container(path)
    try:
        if not container.streams.video:
            raise BrokenVideoError(path, "no_video_stream", "the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        total = stream.frames or 0
        if total <= 0 and stream.duration and stream.time_base and fps:
            total = int(round(float(stream.duration * stream.time_base) * fps))
        width, height = stream.codec_context.width, stream.codec_context.height
        if total <= 0:
            # Unknown length: decode everything once, then pick.
            return _sample_sequential_unknown(container, stream, path, config, indices, fps, width, height)
        wanted = indices if indices is not None else frame_indices(total, fps, config)
        wanted = sorted({min(max(0, i), total - 1) for i in wanted})
        if total > SEEK_THRESHOLD and fps and stream.time_base:
            got = _decode_by_seeking(container, stream, wanted, fps)
        else:
            got = _decode_sequential(container, stream, wanted)
        if not got:
            raise BrokenVideoError(path, "truncated", "no decodable frame")
        # A container may claim more frames than it holds: map missing tail indices to the last frame.
        out_idx, frames = [], []
        last_idx = max(got)
        for i in wanted:
            j = i if i in got else max((k for k in got if k <= i), default=min(got))
            out_idx.append(min(j, last_idx))
            frames.append(_to_rgb(got[j], config))
        ts = [i / fps if fps else float(i) for i in out_idx]
        return SampledFrames(np.stack(frames), out_idx, ts, fps, total, width, height, config)
    except BrokenVideoError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, OSError) as e:
        raise BrokenVideoError(path, "truncated", str(e).splitlines()[0][:300] if str(e) else type(e).__name__) from None
    finally:
        container.close()


def _decode_sequential(container, stream, wanted: list[int]) -> dict:  # noqa: ANN001
    want = set(wanted)
    last = max(wanted)
    got = {}
    for i, frame in enumerate(container.decode(stream)):
        if i in want:
            got[i] = frame
        if i >= last:
            break
    return got


def _decode_by_seeking(container, stream, wanted: list[int], fps: float) -> dict:  # noqa: ANN001
    tb = stream.time_base
    start = stream.start_time or 0
    got = {}
    for idx in wanted:
        target = start + int(round(idx / fps / tb))
        container.seek(target, stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None or frame.pts >= target:
                got[idx] = frame
                break
    return got


def _sample_sequential_unknown(container, stream, path, config, indices, fps, width, height):  # noqa: ANN001
    all_frames = list(container.decode(stream))
    if not all_frames:
        raise BrokenVideoError(path, "truncated", "no decodable frame")
    total = len(all_frames)
    wanted = indices if indices is not None else frame_indices(total, fps, config)
    wanted = sorted({min(max(0, i), total - 1) for i in wanted})
    frames = np.stack([_to_rgb(all_frames[i], config) for i in wanted])
    ts = [i / fps if fps else float(i) for i in wanted]
    return SampledFrames(frames, wanted, ts, fps, total, width, height, config)


def cover_frame(path: str | Path, *, short_side: int | None = None) -> np.ndarray:
    """The video's cover: the first decodable frame (platform thumbnails are passed as metadata)."""
    cfg = SamplingConfig(num_frames=1, short_side=short_side)
    return sample_frames(path, cfg, indices=[0]).frames[0]
