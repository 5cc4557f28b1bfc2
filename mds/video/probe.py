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
    if p.is_dir():
        raise BrokenVideoError(path, "unreadable", "is a directory")
    try:
        return av.open(str(p))
    except av.error.FileNotFoundError:
        raise BrokenVideoError(path, "missing_path", "no such file") from None
    except PermissionError:
        raise BrokenVideoError(path, "unreadable", "permission denied") from None
    except (av.error.FFmpegError, ValueError, OSError) as e:
        if _looks_like_iso_bmff(p):
            # MP4/MOV keep their index (moov) at the end by default: a cut-off file has none.
            raise BrokenVideoError(path, "truncated", "MP4/MOV header present but no readable index (moov)") from None
        raise BrokenVideoError(path, "unreadable", _short(e)) from None


def _looks_like_iso_bmff(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return len(head) >= 8 and head[4:8] == b"ftyp"


def _short(e: BaseException) -> str:
    # FFmpeg errors carry "[Errno N] text: 'path'"; strerror is the text alone.
    text = getattr(e, "strerror", None) or str(e)
    msg = str(text).strip().splitlines()[0] if str(text).strip() else type(e).__name__
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
            if not container.streams.audio and _looks_like_iso_bmff(Path(path)):
                raise BrokenVideoError(path, "truncated", "MP4/MOV index (moov) incomplete: no audio or video stream")
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
    start, end = _stream_span(container, stream)
    last_time: float | None = None
    try:
        if stream.duration and stream.time_base:
            target = int(stream.duration * 0.9) + (stream.start_time or 0)
            container.seek(target, stream=stream, backward=True, any_frame=False)
        n = 0
        for frame in container.decode(stream):
            n += 1
            if frame.time is not None:
                last_time = float(frame.time)
        if n == 0:
            # Some demuxers (MPEG-TS, one-frame WebM) land past the last keyframe: decode from the start.
            container.seek(0)
            for frame in container.decode(stream):
                n += 1
                if frame.time is not None:
                    last_time = float(frame.time)
        if n == 0:
            raise BrokenVideoError(path, "truncated", "no frame decodable near the end")
    except BrokenVideoError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError) as e:
        raise BrokenVideoError(path, "truncated", _short(e)) from None
    # Streamable containers (MKV, WebM) still open when cut short, with the declared duration
    # of the complete file: the decodable frames then end well before it.
    if last_time is not None and end is not None and start is not None:
        rate = stream.average_rate or stream.guessed_rate
        frame_s = 1.0 / float(rate) if rate else 0.0
        duration = end - start
        slack = min(1.0, 0.1 * duration) + 2 * frame_s
        if last_time + frame_s < end - slack:
            raise BrokenVideoError(
                path, "truncated", f"frames end at {last_time - start:.2f} s of a declared {duration:.2f} s"
            )


def _stream_span(container, stream) -> tuple[float | None, float | None]:  # noqa: ANN001
    """Absolute (start, end) time of the video stream in seconds, when the file declares them."""
    import av

    tb = stream.time_base
    if stream.start_time is not None and tb is not None:
        start = float(stream.start_time * tb)
    elif container.start_time is not None:
        start = container.start_time / av.time_base
    else:
        start = 0.0
    if stream.duration is not None and tb is not None:
        return start, start + float(stream.duration * tb)
    if container.duration is not None:
        c_start = container.start_time / av.time_base if container.start_time is not None else 0.0
        return start, c_start + container.duration / av.time_base
    return start, None


def as_fraction(x: float) -> Fraction:
    return Fraction(x).limit_denominator(1001)
