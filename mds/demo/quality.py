"""Full-reference quality (VMAF, PSNR-Y, SSIM) with the bundled ffmpeg + libvmaf, and the pseudo-MOS.

Pseudo-MOS mapping (documented in the README): VMAF (0–100, libvmaf's built-in
model) is mapped linearly onto the 1–5 absolute category rating scale,

    MOS = 1 + 4 · clip(VMAF, 0, 100) / 100,

so VMAF 100 (indistinguishable from the reference) is 5 ("excellent") and
VMAF 0 is 1 ("bad"). PSNR-Y and SSIM are stored beside it for reference.

Frame-rate loss (stutter) is the exception. VMAF compares frame *t* with reference
frame *t*, so a clip whose frames are held scores as if every held frame were a
different, badly distorted picture (a sharp 5 fps pan of a page scored VMAF 8). For
those videos the spatial fidelity is measured against the reference with the same
frames held, and a temporal factor for the lost frame rate scales the MOS above 1:

    MOS = 1 + (MOS_spatial − 1) · Q_t,
    Q_t = 1 − w · (1 − (1 − e^(−b·r)) / (1 − e^(−b))),  r = kept frame rate / full rate,
    w = m / (m + m0),

an inverted-exponential frame-rate quality curve (b = :data:`FRAME_RATE_B`) whose
weight ``w`` grows with the reference's motion ``m`` (mean absolute luma difference
of consecutive frames, 0–255): holding frames of a static picture is invisible, of a
fast pan it is not. ``m0`` = :data:`MOTION_HALF` is the motion at which half the
curve's penalty applies (about the median of the demo contents).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np

from mds.demo.ffmpeg import run_ffmpeg

FRAME_RATE_B = 3.0
MOTION_HALF = 8.0


def vmaf_to_mos(vmaf: float) -> float:
    """The pseudo-MOS of a VMAF score (linear onto 1–5)."""
    return 1.0 + 4.0 * min(max(float(vmaf), 0.0), 100.0) / 100.0


def frame_rate_factor(rate_fraction: float, motion: float) -> float:
    """``Q_t`` in [0, 1] for a clip keeping ``rate_fraction`` of its frame rate, with reference ``motion``."""
    r = min(max(float(rate_fraction), 0.0), 1.0)
    curve = (1.0 - math.exp(-FRAME_RATE_B * r)) / (1.0 - math.exp(-FRAME_RATE_B))
    w = max(float(motion), 0.0) / (max(float(motion), 0.0) + MOTION_HALF)
    return 1.0 - w * (1.0 - curve)


def stutter_mos(spatial_vmaf: float, rate_fraction: float, motion: float) -> float:
    """Pseudo-MOS of a clip with held frames: spatial MOS scaled above 1 by :func:`frame_rate_factor`."""
    return 1.0 + (vmaf_to_mos(spatial_vmaf) - 1.0) * frame_rate_factor(rate_fraction, motion)


def reference_motion(reference: Path) -> float:
    """Mean absolute luma difference (0–255) between consecutive frames of ``reference``."""
    import av

    prev: np.ndarray | None = None
    total, n = 0.0, 0
    with av.open(str(reference)) as c:
        for frame in c.decode(video=0):
            y = frame.to_ndarray(format="gray").astype(np.float32)
            if prev is not None:
                total += float(np.abs(y - prev).mean())
                n += 1
            prev = y
    return total / n if n else 0.0


def full_reference(distorted: Path, reference: Path, reference_filter: str | None = None) -> dict[str, float]:
    """``{"vmaf", "psnr_y", "ssim"}`` of ``distorted`` against ``reference`` (frame-aligned).

    ``reference_filter`` (an ffmpeg filter chain) is applied to the reference first, e.g.
    the same frame holds as the distorted clip so only spatial fidelity is measured.
    """
    ref_chain = f"{reference_filter}," if reference_filter else ""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "vmaf.json"
        graph = (
            f"[0:v]setpts=PTS-STARTPTS,format=yuv420p[d];[1:v]{ref_chain}setpts=PTS-STARTPTS,format=yuv420p[r];"
            f"[d][r]libvmaf=log_fmt=json:log_path={log}:n_threads=1:feature=name=psnr|name=float_ssim"
        )
        run_ffmpeg(["-i", str(distorted), "-i", str(reference), "-lavfi", graph, "-f", "null", "-"])
        pooled = json.loads(log.read_text())["pooled_metrics"]
    return {
        "vmaf": round(float(pooled["vmaf"]["mean"]), 4),
        "psnr_y": round(float(pooled["psnr_y"]["mean"]), 4),
        "ssim": round(float(pooled["float_ssim"]["mean"]), 5),
    }
