"""No-reference per-frame quality features, pooled per video (numpy only).

Frames come from :func:`mds.video.frames.sample_frames`; every measure works on a
downscaled luma plane (short side at most :data:`MAX_SHORT_SIDE`), at two scales
where it is cheap. Per frame: sharpness (log Laplacian variance), noise (fast
Immerkaer estimate), blockiness (8x8 boundary vs interior gradients), colourfulness
(Hasler-Suesstrunk), RMS contrast, banding (flat regions and 1-2 level steps),
exposure (mean, clipped dark / bright fractions), edge density. Between sampled
frames: flicker (mean-luma jumps), motion (mean absolute difference) and the
temporal variation of sharpness. A video is described by the mean and standard
deviation of the per-frame features plus the temporal ones.

Bump :data:`FEATURE_VERSION` whenever a formula changes: cached vectors are keyed
by it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mds.video.frames import SamplingConfig, sample_frames

FEATURE_VERSION = "qf1"
MAX_SHORT_SIDE = 256
DEFAULT_SAMPLING = SamplingConfig(num_frames=8)

FRAME_FEATURES = (
    "sharp0",  # log variance of the Laplacian, full scale
    "sharp1",  # same at half scale
    "hf_ratio",  # sharp0 - sharp1: how much detail lives only at full scale
    "noise0",  # Immerkaer noise sigma, full scale
    "noise1",  # half scale
    "block_h",  # log ratio of gradients on 8-px column boundaries vs elsewhere
    "block_v",  # same for rows
    "colourful",  # Hasler-Suesstrunk colourfulness
    "contrast",  # RMS contrast of luma
    "flat_frac",  # fraction of zero horizontal/vertical steps (flat areas)
    "band_frac",  # fraction of 1-2 level steps (contouring in gradients)
    "luma_mean",  # exposure
    "dark_frac",  # luma < 0.06
    "bright_frac",  # luma > 0.94
    "edge_density",  # mean gradient magnitude
    "crete_blur",  # re-blur perceptual blur metric (0 sharp .. 1 blurred)
    "noise_floor",  # low percentile of 8x8-block residual std (noise in flat areas)
    "sharp2",  # log Laplacian variance at quarter scale
)
TEMPORAL_FEATURES = ("flicker", "motion", "sharp_tvar")
FEATURE_NAMES = (
    tuple(f"{n}_mean" for n in FRAME_FEATURES)
    + tuple(f"{n}_std" for n in FRAME_FEATURES)
    + TEMPORAL_FEATURES
)
FEATURE_DIM = len(FEATURE_NAMES)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma in [0, 1], float32."""
    f = rgb.astype(np.float32) / 255.0
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def _downscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Box-average by an integer factor along the first two axes (crops the remainder)."""
    if factor <= 1:
        return img
    h, w = img.shape[0] // factor * factor, img.shape[1] // factor * factor
    img = img[:h, :w]
    shape = (h // factor, factor, w // factor, factor) + img.shape[2:]
    return img.reshape(shape).mean(axis=(1, 3))


def _laplacian(y: np.ndarray) -> np.ndarray:
    return y[1:-1, :-2] + y[1:-1, 2:] + y[:-2, 1:-1] + y[2:, 1:-1] - 4.0 * y[1:-1, 1:-1]


def _noise_sigma(y: np.ndarray) -> float:
    """Immerkaer's fast noise estimate (mask = difference of two Laplacians)."""
    if min(y.shape) < 3:
        return 0.0
    m = (
        y[:-2, :-2] - 2 * y[:-2, 1:-1] + y[:-2, 2:]
        - 2 * y[1:-1, :-2] + 4 * y[1:-1, 1:-1] - 2 * y[1:-1, 2:]
        + y[2:, :-2] - 2 * y[2:, 1:-1] + y[2:, 2:]
    )
    return float(np.sqrt(np.pi / 2) * np.mean(np.abs(m)) / 6.0)


def _box(y: np.ndarray, k: int, axis: int) -> np.ndarray:
    c = np.cumsum(np.pad(y, [(k // 2 + 1, k // 2) if a == axis else (0, 0) for a in range(2)], mode="edge"), axis=axis)
    hi = np.take(c, np.arange(k, c.shape[axis]), axis=axis)
    lo = np.take(c, np.arange(0, c.shape[axis] - k), axis=axis)
    return (hi - lo) / k


def _crete_blur(y: np.ndarray) -> float:
    """Crete-Roffet no-reference blur: how much variation survives a 9-tap re-blur."""
    out = 0.0
    for axis in (0, 1):
        if y.shape[axis] < 12:
            continue
        dF = np.abs(np.diff(y, axis=axis))
        dB = np.abs(np.diff(_box(y, 9, axis), axis=axis))
        sF = dF.sum()
        if sF > 0:
            out = max(out, float((sF - np.maximum(0.0, dF - dB).sum()) / sF))
    return out


def _noise_floor(y: np.ndarray) -> float:
    """10th percentile of the residual std over 8x8 blocks (texture-free blocks reveal the noise)."""
    if min(y.shape) < 16:
        return 0.0
    r = y - _box(_box(y, 3, 0), 3, 1)
    h, w = r.shape[0] // 8 * 8, r.shape[1] // 8 * 8
    b = r[:h, :w].reshape(h // 8, 8, w // 8, 8).std(axis=(1, 3))
    return float(np.percentile(b, 10))


def _blockiness(d: np.ndarray, axis_len: int) -> float:
    """log((mean |step| at 8-px boundaries + eps) / (mean |step| elsewhere + eps)).

    ``d`` holds absolute steps along the last axis; step k sits between pixels k and k+1.
    """
    if axis_len < 17:
        return 0.0
    idx = np.arange(d.shape[-1])
    on = (idx % 8) == 7
    b = d[..., on].mean()
    o = d[..., ~on].mean()
    return float(np.log((b + 1e-4) / (o + 1e-4)))


def frame_features(rgb: np.ndarray) -> np.ndarray:
    """Features of one RGB frame ``(H, W, 3)`` uint8, in :data:`FRAME_FEATURES` order."""
    factor = max(1, int(np.ceil(min(rgb.shape[:2]) / MAX_SHORT_SIDE)))
    rgb_f = _downscale(rgb.astype(np.float32), factor) if factor > 1 else rgb.astype(np.float32)
    y0 = (0.299 * rgb_f[..., 0] + 0.587 * rgb_f[..., 1] + 0.114 * rgb_f[..., 2]) / 255.0
    y1 = _downscale(y0, 2)
    lap0, lap1 = _laplacian(y0), _laplacian(y1)
    sharp0 = float(np.log(lap0.var() + 1e-7)) if lap0.size else 0.0
    sharp1 = float(np.log(lap1.var() + 1e-7)) if lap1.size else 0.0
    dx = np.abs(np.diff(y0, axis=1))
    dy = np.abs(np.diff(y0, axis=0))
    r, g, b = rgb_f[..., 0], rgb_f[..., 1], rgb_f[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    colourful = float(np.sqrt(rg.var() + yb.var()) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)) / 255.0
    q = 1.0 / 255.0
    steps = np.concatenate([dx.ravel(), dy.ravel()])
    flat = float(np.mean(steps < 0.5 * q))
    band = float(np.mean((steps >= 0.5 * q) & (steps < 2.5 * q)))
    return np.array(
        [
            sharp0,
            sharp1,
            sharp0 - sharp1,
            _noise_sigma(y0),
            _noise_sigma(y1),
            _blockiness(dx, y0.shape[1]),
            _blockiness(dy.T, y0.shape[0]),
            colourful,
            float(y0.std()),
            flat,
            band,
            float(y0.mean()),
            float(np.mean(y0 < 0.06)),
            float(np.mean(y0 > 0.94)),
            float(np.mean(dx[:-1, :] if dx.shape[0] > 1 else dx) + np.mean(dy)),
            _crete_blur(y0),
            _noise_floor(y0),
            float(np.log(_laplacian(_downscale(y1, 2)).var() + 1e-7)) if min(y1.shape) >= 6 else 0.0,
        ],
        dtype=np.float64,
    )


def video_features_from_frames(frames: np.ndarray) -> np.ndarray:
    """Pooled features ``(FEATURE_DIM,)`` float32 of frames ``(T, H, W, 3)`` uint8."""
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ValueError("frames must be (T, H, W, 3) with T >= 1")
    per = np.stack([frame_features(f) for f in frames])
    factor = max(1, int(np.ceil(min(frames.shape[1:3]) / MAX_SHORT_SIDE))) * 2
    small = np.stack([_downscale(_luma(f), factor) for f in frames])
    if len(frames) > 1:
        means = small.mean(axis=(1, 2))
        flicker = float(np.mean(np.abs(np.diff(means))))
        motion = float(np.mean(np.abs(np.diff(small, axis=0))))
        sharp_tvar = float(np.mean(np.abs(np.diff(per[:, 0]))))
    else:
        flicker = motion = sharp_tvar = 0.0
    out = np.concatenate([per.mean(axis=0), per.std(axis=0), [flicker, motion, sharp_tvar]])
    return out.astype(np.float32)


def extract_video_features(path: str | Path, sampling: SamplingConfig = DEFAULT_SAMPLING) -> np.ndarray:
    """Decode ``sampling``'s frames of ``path`` and return its pooled feature vector.

    Raises :class:`mds.video.probe.BrokenVideoError` for undecodable files.
    """
    return video_features_from_frames(sample_frames(path, sampling).frames)


def extractor_key(sampling: SamplingConfig = DEFAULT_SAMPLING) -> str:
    """Identity of the extractor (formula version + sampling), used as the cache key."""
    import hashlib

    return f"{FEATURE_VERSION}-{hashlib.sha256(sampling.key().encode()).hexdigest()[:8]}"
