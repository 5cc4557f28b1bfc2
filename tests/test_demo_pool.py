"""The offline demo pool: real ffmpeg encodes, VMAF pseudo-MOS, splits, manifest, oracle, DB import."""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.demo_helpers import tiny_pool_dir


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_pool_dir(tmp_path_factory)


def test_tiny_pool_layout_and_splits(pool_dir: Path) -> None:
    from mds.demo.pool import SOURCE_DATASET, TARGET_DATASET, load_demo_pool

    pool = load_demo_pool(pool_dir)
    counts = pool.counts()
    assert counts == {f"{SOURCE_DATASET}/source": 13, f"{SOURCE_DATASET}/test": 3,
                      f"{TARGET_DATASET}/pool": 18, f"{TARGET_DATASET}/test": 6}
    # target test contents never appear in the target pool
    pool_contents = {v.content for v in pool.by_split("pool")}
    test_contents = {v.content for v in pool.by_split("test", TARGET_DATASET)}
    assert pool_contents and test_contents and not pool_contents & test_contents
    # two domains of distortion
    assert {v.distortion for v in pool.videos if v.dataset == SOURCE_DATASET} <= {"blur", "noise", "downscale"}
    tgt = {v.distortion for v in pool.videos if v.dataset == TARGET_DATASET}
    assert tgt <= {"h264", "hevc", "vp9", "av1", "banding", "stutter"} and len(tgt) >= 3
    for v in pool.videos:
        assert 1.0 <= v.mos <= 5.0
        spatial = 1 + 4 * min(max(v.vmaf, 0), 100) / 100
        if v.distortion == "stutter":  # spatial fidelity scaled down by the lost frame rate
            assert 1.0 <= v.mos <= spatial + 1e-3
        else:
            assert v.mos == pytest.approx(spatial, abs=1e-3)
        assert v.psnr_y > 0 and 0 <= v.ssim <= 1


def test_manifest_hides_pool_labels_and_oracle_has_them(pool_dir: Path) -> None:
    with open(pool_dir / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(pool_dir / "oracle.csv", newline="") as f:
        oracle = {r["name"]: r for r in csv.DictReader(f)}
    assert len(rows) == len(oracle) == 40
    for r in rows:
        assert (pool_dir / r["path"]).is_file()
        if r["split"] == "pool":
            assert r["mos"] == ""
        else:
            assert float(r["mos"]) == pytest.approx(float(oracle[r["name"]]["mos"]), abs=1e-4)
    assert all(o["mos"] != "" for o in oracle.values())


def test_videos_decode_with_their_codecs(pool_dir: Path) -> None:
    from mds.demo.pool import load_demo_pool
    from mds.video.frames import SamplingConfig, sample_frames
    from mds.video.probe import probe

    pool = load_demo_pool(pool_dir)
    seen = {}
    for v in pool.videos:
        if v.codec in seen:
            continue
        info = probe(v.path)
        assert (info.width, info.height) == (160, 120)
        frames = sample_frames(v.path, SamplingConfig(num_frames=4)).frames
        assert frames.shape == (4, 120, 160, 3)
        seen[v.codec] = info.codec
    assert seen["h264"] == "h264"
    decoders = {"hevc": {"hevc"}, "vp9": {"vp9", "libvpx-vp9"}, "av1": {"av1", "libdav1d", "libaom-av1"}}
    for c, names in decoders.items():
        if c in seen:
            assert seen[c] in names


def test_vmaf_falls_with_stronger_compression(tmp_path: Path, pool_dir: Path) -> None:
    from mds.demo.distortions import apply_distortion, make_distortion
    from mds.demo.quality import full_reference

    ref = sorted((pool_dir / "refs").glob("*.mkv"))[0]
    scores = []
    for level in (0.0, 1.0):
        out = tmp_path / f"l{level}.mp4"
        apply_distortion(ref, out, make_distortion("h264", level), width=160, height=120, fps=16, frames=32)
        scores.append(full_reference(out, ref))
    assert scores[0]["vmaf"] > scores[1]["vmaf"] + 10
    assert scores[0]["psnr_y"] > scores[1]["psnr_y"]


def test_frame_rate_factor_shape() -> None:
    from mds.demo.quality import frame_rate_factor, stutter_mos

    assert frame_rate_factor(1.0, 30.0) == pytest.approx(1.0)
    assert frame_rate_factor(0.25, 0.0) == pytest.approx(1.0)  # a static picture loses nothing
    # fewer kept frames or more motion -> lower factor
    assert frame_rate_factor(0.125, 20.0) < frame_rate_factor(0.25, 20.0) < frame_rate_factor(0.5, 20.0) < 1.0
    assert frame_rate_factor(0.25, 40.0) < frame_rate_factor(0.25, 4.0)
    assert stutter_mos(100.0, 0.125, 1e6) == pytest.approx(1 + 4 * (1 - math.exp(-0.375)) / (1 - math.exp(-3)), abs=1e-4)
    assert stutter_mos(0.0, 0.5, 10.0) == pytest.approx(1.0)


def test_stutter_pseudo_mos_measures_held_frames_not_misalignment(tmp_path: Path, pool_dir: Path) -> None:
    """Frame-aligned VMAF of a clip with held frames collapses on moving content; the pseudo-MOS
    compares against the reference with the same holds and applies the frame-rate factor instead."""
    from mds.demo.distortions import apply_distortion, make_distortion, temporal_filter
    from mds.demo.quality import full_reference, reference_motion, stutter_mos, vmaf_to_mos

    refs = sorted((pool_dir / "refs").glob("*.mkv"), key=reference_motion)
    ref = refs[-1]  # the most moving content
    motion = reference_motion(ref)
    assert motion > 1.0
    d = make_distortion("stutter", 1.0)
    out = tmp_path / "stutter.mp4"
    apply_distortion(ref, out, d, width=160, height=120, fps=16, frames=32)
    misaligned = full_reference(out, ref)["vmaf"]
    spatial = full_reference(out, ref, reference_filter=temporal_filter(d, 16))["vmaf"]
    assert spatial > 85 and spatial > misaligned + 20  # the kept frames are near-transparent copies
    mos = stutter_mos(spatial, 1.0 / d.param, motion)
    assert 1.0 < mos < vmaf_to_mos(spatial) - 0.5


def test_plan_is_deterministic_and_seed_dependent() -> None:
    from mds.demo.pool import SIZES, _plan

    a = [(c.name, c.motion, d.kind, d.param, ds, sp) for c, d, ds, sp in _plan(SIZES["small"], 3)[1]]
    b = [(c.name, c.motion, d.kind, d.param, ds, sp) for c, d, ds, sp in _plan(SIZES["small"], 3)[1]]
    c = [(c.name, c.motion, d.kind, d.param, ds, sp) for c, d, ds, sp in _plan(SIZES["small"], 4)[1]]
    assert a == b and a != c
    assert len(a) == 360


def test_rebuild_is_reused(pool_dir: Path) -> None:
    from mds.demo.pool import build_demo_pool

    before = (pool_dir / "demo-pool.json").stat().st_mtime_ns
    pool = build_demo_pool(pool_dir, "tiny", seed=0, import_db=False)
    assert len(pool.videos) == 40
    assert (pool_dir / "demo-pool.json").stat().st_mtime_ns == before


def test_import_into_database(pool_dir: Path, db_url: str) -> None:
    from mds.db.engine import session_scope
    from mds.db.models import Label, Video
    from mds.demo.pool import import_into_db, load_demo_pool

    pool = load_demo_pool(pool_dir)
    import_into_db(pool, db_url)
    import_into_db(pool, db_url)  # idempotent
    with session_scope(db_url) as s:
        by_split = dict(s.execute(select(Video.split, func.count()).group_by(Video.split)).all())
        assert by_split == {"source": 13, "test": 9, "pool": 18}
        labelled = set(s.scalars(select(Video.split).join(Label, Label.video_id == Video.id)))
        assert labelled == {"source", "test"}  # the pool's labels stay hidden
        assert s.scalar(select(func.count()).select_from(Label)) == 22
        v = s.scalars(select(Video).where(Video.split == "pool")).first()
        assert v.meta["distortion"] in {"h264", "hevc", "vp9", "av1", "banding", "stutter"}


def test_cli_demo_pool_reuses_and_reports(pool_dir: Path) -> None:
    from typer.testing import CliRunner

    from mds.cli import app

    res = CliRunner().invoke(app, ["demo-pool", "--size", "tiny", "--out", str(pool_dir), "--no-db", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["videos"] == 40 and info["db_url"] is None


def test_unknown_size_is_a_one_line_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run([str(Path(sys.executable).parent / "mds"), "demo-pool", "--size", "huge", "--out", str(tmp_path)],
                       capture_output=True, text=True, check=False)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == ["error: unknown demo pool size 'huge'; choose one of tiny, small, large"]


def test_every_lavfi_source_renders_the_same_frames_twice() -> None:
    """The pool is a function of its seed: no ffmpeg test source may draw from the clock."""
    import hashlib

    from mds.demo.ffmpeg import available_filters, ffmpeg_exe
    from mds.demo.sources import LAVFI, Content, _lavfi_spec

    def frames_md5(spec: str) -> str:
        out = subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", spec, "-frames:v", "6",
                              "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"], capture_output=True, check=True).stdout
        return hashlib.md5(out).hexdigest()

    tried = 0
    for src, _ in LAVFI:
        if src not in available_filters():
            continue
        spec = _lavfi_spec(Content(f"lavfi-{src}", "lavfi", src, "", 7), 96, 64, 16)
        assert frames_md5(spec) == frames_md5(spec), src
        tried += 1
    assert tried >= 5
