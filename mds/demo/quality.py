"""Full-reference quality (VMAF, PSNR-Y, SSIM) with the bundled ffmpeg + libvmaf, and the pseudo-MOS.

Pseudo-MOS mapping (documented in the README): VMAF (0–100, libvmaf's built-in
model) is mapped linearly onto the 1–5 absolute category rating scale,

    MOS = 1 + 4 · clip(VMAF, 0, 100) / 100,

so VMAF 100 (indistinguishable from the reference) is 5 ("excellent") and
VMAF 0 is 1 ("bad"). PSNR-Y and SSIM are stored beside it for reference.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from mds.demo.ffmpeg import run_ffmpeg


def vmaf_to_mos(vmaf: float) -> float:
    """The pseudo-MOS of a VMAF score (linear onto 1–5)."""
    return 1.0 + 4.0 * min(max(float(vmaf), 0.0), 100.0) / 100.0


def full_reference(distorted: Path, reference: Path) -> dict[str, float]:
    """``{"vmaf", "psnr_y", "ssim"}`` of ``distorted`` against ``reference`` (frame-aligned)."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "vmaf.json"
        graph = (
            "[0:v]setpts=PTS-STARTPTS,format=yuv420p[d];[1:v]setpts=PTS-STARTPTS,format=yuv420p[r];"
            f"[d][r]libvmaf=log_fmt=json:log_path={log}:n_threads=1:feature=name=psnr|name=float_ssim"
        )
        run_ffmpeg(["-i", str(distorted), "-i", str(reference), "-lavfi", graph, "-f", "null", "-"])
        pooled = json.loads(log.read_text())["pooled_metrics"]
    return {
        "vmaf": round(float(pooled["vmaf"]["mean"]), 4),
        "psnr_y": round(float(pooled["psnr_y"]["mean"]), 4),
        "ssim": round(float(pooled["float_ssim"]["mean"]), 5),
    }
