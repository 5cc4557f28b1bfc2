"""Probe a video file with PyAV: container, codec, size, fps, frame count, duration."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from mds.errors import VideoError


class BrokenVideoError(VideoError):
    """The file exists but cannot be read as a video. ``kind`` names the failure."""

    def __init__(self, path: str | Path, kind: str, detail: str) -> None:
        self.path = str(path)
        self.kind = kind  # missing_path, empty_file, unreadable, no_video_stream, truncated, unsupported_codec
        self.detail = detail
        super().__init__(f"{path}: {kind.replace('_', ' ')}: {detail}")


@dataclass
class ProbeResult:
    container: str
    codec: str
    width: int
    height: int
    fps: float | None
    frame_count: int | None
    duration_s: float | None
    size_bytes: int
    bit_rate: int | None = None
    pix_fmt: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of the whole file (the pool's content identity)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def open_container(path: str | Path):  # noqa: ANN201
    """``av.open`` with every failure mapped to :class:`BrokenVideoError`."""
    import av

    p = Path(path)
    if not p.exists():
        raise BrokenVideoError(path, "missing_path", "no such file")
    if p.is_file() and p.stat().st_size == 0:
        raise BrokenVideoError(path, "empty_file", "zero-length file")
    try:
        return av.open(str(p))
    except av.error.FileNotFoundError:
        raise BrokenVideoError(path, "missing_path", "no such file") from None
    except (av.error.FFmpegError, ValueError, OSError) as e:
        raise BrokenVideoError(path, "unreadable", _short(e)) from None


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:300]


def probe(path: str | Path, *, decode_check: bool = True) -> ProbeResult:
    """Read container metadata; with ``decode_check`` also decode the first and last frame.

    Raises :class:`BrokenVideoError` for missing, empty, unreadable or truncated
    files, files without a video stream and codecs FFmpeg cannot decode.
    """
    import av

    size = Path(path).stat().st_size if Path(path).exists() else 0
    container = open_container(path)
    try:
        if not container.streams.video:
            raise BrokenVideoError(path, "no_video_stream", "the file has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None or not ctx.name:
            raise BrokenVideoError(path, "unsupported_codec", "no decoder for this stream")
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        frames = stream.frames or None
        if frames is None and duration and fps:
            frames = int(round(duration * fps))
        result = ProbeResult(
            container=container.format.name,
            codec=ctx.name,
            width=int(ctx.width or 0),
            height=int(ctx.height or 0),
            fps=fps,
            frame_count=frames,
            duration_s=duration,
            size_bytes=size,
            bit_rate=container.bit_rate or None,
            pix_fmt=ctx.pix_fmt,
        )
        if result.width <= 0 or result.height <= 0:
            raise BrokenVideoError(path, "unreadable", "video stream has no frame size")
        if decode_check:
            _decode_check(container, stream, path)
        return result
    except BrokenVideoError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, OSError) as e:
        raise BrokenVideoError(path, "unreadable", _short(e)) from None
    finally:
        container.close()


def _decode_check(container, stream, path) -> None:  # noqa: ANN001
    """Decode the first frame and the tail of the file: catches truncation and bad codecs."""
    import av

    try:
        first = next(container.decode(stream), None)
    except av.error.DecoderNotFoundError as e:
        raise BrokenVideoError(path, "unsupported_codec", _short(e)) from None
    except (av.error.FFmpegError, ValueError, IndexError) as e:
        raise BrokenVideoError(path, "unreadable", _short(e)) from None
    if first is None:
        raise BrokenVideoError(path, "truncated", "no decodable frame")
    # Seek near the end and decode to the last frame: a file cut short fails here.
    try:
        if stream.duration and stream.time_base:
            target = int(stream.duration * 0.9) + (stream.start_time or 0)
            container.seek(target, stream=stream, backward=True, any_frame=False)
        n = 0
        for _ in container.decode(stream):
            n += 1
        if n == 0:
            raise BrokenVideoError(path, "truncated", "no frame decodable near the end")
    except BrokenVideoError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError) as e:
        raise BrokenVideoError(path, "truncated", _short(e)) from None


def as_fraction(x: float) -> Fraction:
    return Fraction(x).limit_denominator(1001)
