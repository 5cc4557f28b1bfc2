"""Distortions of the demo pool, in two domains, applied with the bundled ffmpeg.

* **source** domain (the labelled set the base model learns from, like user uploads):
  Gaussian blur, temporal noise, downscaling (down then back up); half of them are
  also H.264-compressed at a random CRF (18–40) as an upload would be, the rest
  stored with near-transparent H.264 (CRF 12).
* **target** domain (the unlabelled pool): compression at a random CRF with
  H.264, HEVC, VP9 and AV1 (whichever encoders the bundled ffmpeg has), banding
  (luma/chroma posterised, then CRF 12) and stutter (frames held: the clip drops
  to a lower frame rate, then back up).

Each distortion takes a level in [0, 1] (0 = mild, 1 = strong), mapped to the
filter's parameter; the level is drawn per video from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mds.demo.ffmpeg import available_encoders, run_ffmpeg

TRANSPARENT = ["-c:v", "libx264", "-crf", "12", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
SOURCE_KINDS = ("blur", "noise", "downscale")
# codec name -> (encoder, CRF range mild..strong, extra args)
CODECS: dict[str, tuple[str, tuple[int, int], list[str]]] = {
    "h264": ("libx264", (26, 51), ["-preset", "veryfast"]),
    "hevc": ("libx265", (28, 51), ["-preset", "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1"]),
    "vp9": ("libvpx-vp9", (36, 63), ["-b:v", "0", "-deadline", "realtime", "-cpu-used", "8"]),
    "av1": ("libsvtav1", (38, 63), ["-preset", "12", "-svtav1-params", "log-level=0"]),
}
TARGET_EXTRA = ("banding", "stutter")


@dataclass(frozen=True)
class Distortion:
    """What was done to a reference: ``kind`` (blur, noise, downscale, h264, hevc, vp9, av1, banding,
    stutter), ``level`` in [0, 1], and the concrete ``param`` (sigma, noise strength, factor, CRF, levels,
    held frames)."""

    kind: str
    level: float
    param: float
    domain: str  # source | target
    codec: str  # codec of the stored file
    crf: int | None = None  # H.264 upload compression on top of a source distortion (None: transparent)


def target_kinds() -> tuple[str, ...]:
    """Target-domain distortion kinds the bundled ffmpeg supports."""
    enc = available_encoders()
    codecs = tuple(c for c, (e, _, _) in CODECS.items() if e in enc)
    return codecs + TARGET_EXTRA


def make_distortion(kind: str, level: float) -> Distortion:
    level = float(min(max(level, 0.0), 1.0))
    if kind == "blur":
        return Distortion(kind, level, round(0.3 + 1.9 * level, 3), "source", "h264")
    if kind == "noise":
        return Distortion(kind, level, round(3 + 30 * level), "source", "h264")
    if kind == "downscale":
        return Distortion(kind, level, round(1.25 + 2.75 * level, 3), "source", "h264")
    if kind in CODECS:
        lo, hi = CODECS[kind][1]
        return Distortion(kind, level, round(lo + (hi - lo) * level), "target", kind)
    if kind == "banding":
        return Distortion(kind, level, int(round(32 - 28 * level)), "target", "h264")  # grey levels kept
    if kind == "stutter":
        return Distortion(kind, level, int(round(2 + 6 * level)), "target", "h264")  # frames held
    raise ValueError(f"unknown distortion {kind!r}")


def _filter(d: Distortion, width: int, height: int, fps: int) -> str | None:
    if d.kind == "blur":
        return f"gblur=sigma={d.param}"
    if d.kind == "noise":
        return f"noise=alls={int(d.param)}:allf=t"
    if d.kind == "downscale":
        w = max(16, int(width / d.param)) // 2 * 2
        h = max(16, int(height / d.param)) // 2 * 2
        return f"scale={w}:{h}:flags=area,scale={width}:{height}:flags=bilinear"
    if d.kind == "banding":
        step = max(1, 256 // int(d.param))
        return f"lutyuv=y='floor(val/{step})*{step}+{step // 2}':u='floor(val/{step})*{step}':v='floor(val/{step})*{step}'"
    return temporal_filter(d, fps)


def temporal_filter(d: Distortion, fps: int) -> str | None:
    """The frame-holding filter of a stutter distortion (None for spatial ones); the pseudo-MOS
    applies it to the reference too, so VMAF measures spatial fidelity of the kept frames."""
    if d.kind == "stutter":
        return f"fps={fps / d.param:.4f},fps={fps}"
    return None


def apply_distortion(ref: Path, out: Path, d: Distortion, *, width: int, height: int, fps: int, frames: int) -> None:
    """Write the distorted version of ``ref`` to ``out`` (an .mp4)."""
    args = ["-i", str(ref)]
    vf = _filter(d, width, height, fps)
    if vf:
        args += ["-vf", vf]
    if d.kind in CODECS:
        enc, _, extra = CODECS[d.kind]
        args += ["-c:v", enc, "-crf", str(int(d.param)), *extra, "-pix_fmt", "yuv420p"]
    elif d.crf is not None:
        args += ["-c:v", "libx264", "-crf", str(int(d.crf)), "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    else:
        args += TRANSPARENT
    args += ["-frames:v", str(frames), "-r", str(fps), "-an", str(out)]
    run_ffmpeg(args)
