"""The ffmpeg bundled with imageio-ffmpeg: encoders, filters and libvmaf, fully offline."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Sequence
from pathlib import Path

from mds.errors import VideoError


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the bundled ffmpeg binary."""
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - a declared dependency
        raise VideoError("imageio-ffmpeg is not installed (it provides the ffmpeg used by the demo)") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: Sequence[str], *, stdin: bytes | None = None, timeout: float = 120) -> str:
    """Run ffmpeg quietly with ``args``; returns stderr, raises :class:`VideoError` on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", *(["-nostdin"] if stdin is None else []), "-v", "error", "-y", *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise VideoError(f"ffmpeg failed ({' '.join(args[:6])} ...): {' | '.join(tail)}")
    return proc.stderr.decode("utf-8", "replace")


@functools.lru_cache(maxsize=1)
def available_encoders() -> frozenset[str]:
    """Names of the video encoders of the bundled ffmpeg."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True, check=False).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("V"):
            names.add(parts[1])
    return frozenset(names)


@functools.lru_cache(maxsize=1)
def available_filters() -> frozenset[str]:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-filters"], capture_output=True, text=True, check=False).stdout
    return frozenset(p.split()[1] for p in out.splitlines() if len(p.split()) >= 3 and "->" in p.split()[2])


def write_lossless(path: Path, frames, fps: int) -> None:
    """Write RGB frames ``(T, H, W, 3)`` uint8 as a lossless FFV1 yuv420p reference."""
    _, h, w, _ = frames.shape
    run_ffmpeg(
        ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
         "-pix_fmt", "yuv420p", "-c:v", "ffv1", str(path)],
        stdin=frames.tobytes(),
    )
