"""Build the offline demo pool: references, two distortion domains, pseudo-MOS, manifest, oracle, DB.

Layout of ``OUT``::

    refs/<content>.mkv             pristine references (lossless; not part of the pool)
    videos/<split>/<name>.mp4      the pool's videos
    manifest.csv                   path, name, dataset, split, mos (source/test only), metadata
    oracle.csv                     hidden truth for every video: mos, vmaf, psnr_y, ssim
    raters.json                    the simulated annotator panel
    demo-pool.json                 what was built (size, seed, counts, encoders, mapping, timings)
    mds.toml, mds.db               a ready project (SQLite) when the pool is imported

Splits: source-domain videos (``dataset="demo-source"``) are ``source`` (labelled) with
a share held out as ``test``; target-domain videos (``dataset="demo-target"``) are
``pool`` (labels hidden: only in ``oracle.csv``) or ``test`` — the target test split
uses contents that never appear in the pool.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from mds.demo.annotators import RaterPanel
from mds.demo.distortions import (
    SOURCE_KINDS,
    Distortion,
    apply_distortion,
    make_distortion,
    target_kinds,
    temporal_filter,
)
from mds.demo.quality import full_reference, reference_motion, stutter_mos, vmaf_to_mos
from mds.demo.sources import Content, pick_contents, render_reference
from mds.errors import ConfigError

SOURCE_DATASET = "demo-source"
TARGET_DATASET = "demo-target"
FORMAT_VERSION = 3  # 3: stutter pseudo-MOS = spatial VMAF x frame-rate factor; seeded gradients/perlin


@dataclass(frozen=True)
class PoolSize:
    """Shape of a demo pool: contents and distortions per content in each domain."""

    contents: int  # distinct reference contents
    test_contents: int  # contents reserved for the target test split
    source_per_content: int
    target_per_content: int
    source_test_fraction: float = 0.2
    width: int = 160
    height: int = 120
    fps: int = 16
    frames: int = 32


SIZES: dict[str, PoolSize] = {
    # ~40 videos: 16 source-domain + 24 target-domain (18 pool, 6 test)
    "tiny": PoolSize(contents=8, test_contents=2, source_per_content=2, target_per_content=3),
    # ~360 videos: 120 source-domain + 240 target-domain (192 pool, 48 test)
    "small": PoolSize(contents=40, test_contents=8, source_per_content=3, target_per_content=6),
    # ~1,400 videos: 400 source-domain + 1,000 target-domain (800 pool, 200 test)
    "large": PoolSize(contents=100, test_contents=20, source_per_content=4, target_per_content=10),
}


@dataclass
class DemoVideo:
    name: str
    path: str
    dataset: str
    split: str
    content: str
    content_kind: str
    distortion: str
    level: float
    param: float
    codec: str
    crf: int | None = None
    vmaf: float | None = None
    psnr_y: float | None = None
    ssim: float | None = None
    mos: float | None = None

    def manifest_row(self) -> dict:
        hidden = self.split == "pool"
        return {
            "path": str(Path(self.path).relative_to(Path(self.path).parents[2])), "name": self.name,
            "dataset": self.dataset, "split": self.split,
            "mos": "" if hidden else round(float(self.mos), 4),
            "scale_min": "" if hidden else 1, "scale_max": "" if hidden else 5,
            "content": self.content, "content_kind": self.content_kind, "distortion": self.distortion,
            "level": round(self.level, 4), "param": self.param, "codec": self.codec,
            "crf": "" if self.crf is None else self.crf,
        }


@dataclass
class DemoPool:
    """A built demo pool on disk (and, when imported, in the database at ``db_url``)."""

    root: Path
    size: str
    seed: int
    videos: list[DemoVideo]
    panel: RaterPanel
    db_url: str | None = None
    info: dict = field(default_factory=dict)

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.csv"

    @property
    def oracle_path(self) -> Path:
        return self.root / "oracle.csv"

    def oracle(self) -> dict[str, float]:
        """Hidden true MOS of every video, by name."""
        return {v.name: float(v.mos) for v in self.videos if v.mos is not None}

    def by_split(self, split: str, dataset: str | None = None) -> list[DemoVideo]:
        return [v for v in self.videos if v.split == split and (dataset is None or v.dataset == dataset)]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in self.videos:
            key = f"{v.dataset}/{v.split}"
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))


def _plan(size: PoolSize, seed: int) -> tuple[list[Content], list[tuple[Content, Distortion, str, str]]]:
    """Contents and ``(content, distortion, dataset, split)`` jobs, fully determined by ``seed``."""
    rng = np.random.default_rng([seed, 1])
    contents = pick_contents(size.contents, seed)
    tkinds = target_kinds()
    jobs: list[tuple[Content, Distortion, str, str]] = []
    test_ids = set(range(size.contents - size.test_contents, size.contents))
    src_jobs: list[tuple[Content, Distortion]] = []
    for ci, c in enumerate(contents):
        skinds = [SOURCE_KINDS[(ci + k) % len(SOURCE_KINDS)] for k in range(size.source_per_content)]
        for k in skinds:
            d = make_distortion(k, float(rng.uniform(0.0, 1.0)))
            if rng.random() < 0.5:  # upload compression on top, as user-generated content has
                d = replace(d, crf=int(rng.integers(18, 41)))
            src_jobs.append((c, d))
        order = rng.permutation(len(tkinds))
        split = "test" if ci in test_ids else "pool"
        for j in range(size.target_per_content):
            kind = tkinds[int(order[j % len(tkinds)])]
            jobs.append((c, make_distortion(kind, float(rng.uniform(0.0, 1.0))), TARGET_DATASET, split))
    n_src_test = int(round(size.source_test_fraction * len(src_jobs)))
    src_test = set(rng.choice(len(src_jobs), size=n_src_test, replace=False).tolist())
    jobs = [(c, d, SOURCE_DATASET, "test" if i in src_test else "source") for i, (c, d) in enumerate(src_jobs)] + jobs
    return contents, jobs


def _load_existing(root: Path, size: str, seed: int) -> DemoPool | None:
    info_path = root / "demo-pool.json"
    if not info_path.is_file():
        return None
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError:
        return None
    if info.get("size") != size or info.get("seed") != seed or info.get("format") != FORMAT_VERSION:
        return None
    videos = [DemoVideo(**{**v, "path": str(root / v["path"])}) for v in info["videos"]]
    if not all(Path(v.path).is_file() for v in videos):
        return None
    panel = RaterPanel.from_dict(json.loads((root / "raters.json").read_text()))
    return DemoPool(root=root, size=size, seed=seed, videos=videos, panel=panel, db_url=info.get("db_url"), info=info)


def build_demo_pool(
    out: str | Path,
    size: str = "tiny",
    *,
    seed: int = 0,
    workers: int = 2,
    db_url: str | None = None,
    import_db: bool = True,
    force: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> DemoPool:
    """Build (or reuse, when already built with the same size and seed) the demo pool in ``out``.

    ``progress(stage, done, total)`` is called as references and videos are made.
    With ``import_db`` the videos are ingested through the pool API into ``db_url``
    (default: ``sqlite:///OUT/mds.db``, with an ``mds.toml`` written in ``OUT``).
    """
    if size not in SIZES:
        raise ConfigError(f"unknown demo pool size {size!r}; choose one of {', '.join(SIZES)}")
    root = Path(out).resolve()
    if not force:
        existing = _load_existing(root, size, seed)
        if existing is not None:
            if import_db and (existing.db_url is None or (db_url and existing.db_url != db_url)):
                existing.db_url = import_into_db(existing, db_url)
                _write_info(existing)
            return existing
    spec = SIZES[size]
    t0 = time.perf_counter()
    contents, jobs = _plan(spec, seed)
    _start_build(root, spec, contents, jobs, force)
    geom = dict(width=spec.width, height=spec.height, fps=spec.fps, frames=spec.frames)

    def ref_path(c: Content) -> Path:
        return root / "refs" / f"{c.name}.mkv"

    def make_ref(c: Content) -> None:
        p = ref_path(c)
        if not p.is_file():
            tmp = p.with_suffix(".part.mkv")
            render_reference(c, tmp, **geom)
            tmp.replace(p)

    _parallel(make_ref, contents, workers, lambda d: progress and progress("references", d, len(contents)))
    t_refs = time.perf_counter() - t0

    videos: list[DemoVideo] = []
    for i, (c, d, dataset, split) in enumerate(jobs):
        name = f"{'src' if dataset == SOURCE_DATASET else 'tgt'}-{i:04d}-{c.name}-{d.kind}"
        path = root / "videos" / split / f"{name}.mp4"
        videos.append(DemoVideo(
            name=f"{name}.mp4", path=str(path), dataset=dataset, split=split, content=c.name,
            content_kind=c.kind, distortion=d.kind, level=round(d.level, 4), param=d.param, codec=d.codec,
            crf=d.crf if d.crf is not None else (int(d.param) if d.kind in ("h264", "hevc", "vp9", "av1") else None),
        ))
    for s in ("source", "pool", "test"):
        (root / "videos" / s).mkdir(parents=True, exist_ok=True)

    def make_video(k: int) -> None:
        v, (c, d, _, _) = videos[k], jobs[k]
        path = Path(v.path)
        if not path.is_file():
            tmp = path.with_name(path.stem + ".part.mp4")
            apply_distortion(ref_path(c), tmp, d, **geom)
            tmp.replace(path)
        held = temporal_filter(d, spec.fps)
        q = full_reference(path, ref_path(c), reference_filter=held)
        v.vmaf, v.psnr_y, v.ssim = q["vmaf"], q["psnr_y"], q["ssim"]
        if held:  # frame-rate loss: spatial fidelity of the kept frames x a motion-weighted frame-rate factor
            v.mos = round(stutter_mos(q["vmaf"], 1.0 / d.param, reference_motion(ref_path(c))), 4)
        else:
            v.mos = round(vmaf_to_mos(q["vmaf"]), 4)

    _parallel(make_video, range(len(videos)), workers, lambda d: progress and progress("videos", d, len(videos)))
    panel = RaterPanel.create(seed=seed)
    elapsed = time.perf_counter() - t0
    pool = DemoPool(root=root, size=size, seed=seed, videos=videos, panel=panel)
    pool.info = {
        "format": FORMAT_VERSION, "size": size, "seed": seed, "spec": asdict(spec),
        "contents": [c.as_dict() for c in contents], "target_kinds": list(target_kinds()),
        "mos_mapping": "MOS = 1 + 4 * clip(VMAF, 0, 100) / 100 (libvmaf built-in model); stutter: "
                       "1 + (MOS_spatial - 1) * Q_t(kept frame rate, reference motion)",
        "counts": pool.counts(), "build_s": {"references": round(t_refs, 2), "total": round(elapsed, 2)},
    }
    _write_files(pool)
    if import_db:
        pool.db_url = import_into_db(pool, db_url)
        _write_info(pool)
    return pool


def _start_build(root: Path, spec: PoolSize, contents: list[Content], jobs: list, force: bool) -> None:
    """Keep files of an interrupted build of the same plan; anything else in ``refs``/``videos`` goes."""
    import hashlib
    import shutil

    plan = json.dumps({"format": FORMAT_VERSION, "spec": asdict(spec), "contents": [c.as_dict() for c in contents],
                       "jobs": [(c.name, asdict(d), ds, sp) for c, d, ds, sp in jobs]}, sort_keys=True)
    sig = hashlib.sha256(plan.encode()).hexdigest()
    marker = root / "build-plan.sha256"
    if force or not marker.is_file() or marker.read_text().strip() != sig:
        for sub in ("refs", "videos", ".cache"):
            shutil.rmtree(root / sub, ignore_errors=True)
        (root / "demo-pool.json").unlink(missing_ok=True)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    marker.write_text(sig + "\n")


def _parallel(fn: Callable, items, workers: int, tick: Callable[[int], object]) -> None:
    items = list(items)
    done = 0
    if workers <= 1:
        for it in items:
            fn(it)
            done += 1
            tick(done)
        return
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for _ in ex.map(fn, items):
            done += 1
            tick(done)


def _write_info(pool: DemoPool) -> None:
    # paths relative to the pool folder, so a copied or moved pool still opens
    videos = [{**asdict(v), "path": str(Path(v.path).relative_to(pool.root))} for v in pool.videos]
    info = dict(pool.info, videos=videos, db_url=pool.db_url)
    (pool.root / "demo-pool.json").write_text(json.dumps(info, indent=1))


def _write_files(pool: DemoPool) -> None:
    rows = [v.manifest_row() for v in pool.videos]
    with open(pool.manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(pool.oracle_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "dataset", "split", "mos", "vmaf", "psnr_y", "ssim", "distortion", "level"])
        for v in pool.videos:
            w.writerow([v.name, v.dataset, v.split, v.mos, v.vmaf, v.psnr_y, v.ssim, v.distortion, v.level])
    (pool.root / "raters.json").write_text(json.dumps(pool.panel.as_dict(), indent=1))
    _write_info(pool)


def load_demo_pool(root: str | Path) -> DemoPool:
    """Open a demo pool built earlier (reads ``demo-pool.json``)."""
    root = Path(root).resolve()
    info_path = root / "demo-pool.json"
    if not info_path.is_file():
        raise ConfigError(f"{root} is not a demo pool (no demo-pool.json): run `mds demo-pool` first")
    info = json.loads(info_path.read_text())
    pool = _load_existing(root, info["size"], info["seed"])
    if pool is None:
        raise ConfigError(f"{root}: the demo pool is incomplete; rebuild it with `mds demo-pool --force`")
    return pool


def import_into_db(pool: DemoPool, db_url: str | None = None) -> str:
    """Ingest the manifest through the pool API (Label source ``manifest`` for source/test MOS)."""
    from mds.config import write_project_file
    from mds.db import migrate

    url = db_url or f"sqlite:///{pool.root / 'mds.db'}"
    if db_url is None:
        write_project_file(pool.root, "sqlite:///mds.db")
    migrate.upgrade(url)
    try:
        from mds.pool.manifest import import_manifest
    except ImportError as e:
        raise ConfigError(f"the pool API is not available ({e}); use --no-db") from None
    summary = import_manifest(url, pool.manifest)
    if summary.failed:
        raise ConfigError(f"{summary.failed} demo videos could not be ingested (see `mds pool` ingest errors)")
    return url
