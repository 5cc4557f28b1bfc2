"""mds embed / select / evaluate / import-* on a pool of generated clips with a tiny random open_clip model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mds.cli import app
from tests.test_selection_embeddings import add_videos, register_tiny_clip

runner = CliRunner()


def run(*args: str) -> str:
    res = runner.invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_embed_then_select_on_generated_clips(db_url: str, clip_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MDS_DATA_DIR", str(tmp_path / "data"))
    model = register_tiny_clip(tmp_path)
    clips = sorted(clip_dir.glob("*.mp4"))
    ids = add_videos(db_url, clips)
    out = json.loads(run("--db", db_url, "embed", "--encoder", model, "--pretrained", "none", "--frames", "4",
                         "--batch-size", "6", "--json"))
    assert out["embedded"] == 4 and out["failed"] == 0 and out["encoder"] == f"open_clip:{model}:random-s0:F4"
    again = " ".join(run("--db", db_url, "embed", "--encoder", model, "--pretrained", "none", "--frames", "4").split())
    assert "embedded 0" in again and "already done 4" in again
    scores = tmp_path / "g.json"
    scores.write_text(json.dumps({c.name: {"score": s} for c, s in zip(clips, [2.0, 3.0, 3.0, 2.5])} | {"x.mp4": {"score": 1}}))
    imp = json.loads(run("--db", db_url, "import-scores", str(scores), "--predictor", "g", "--json"))
    assert imp["imported"] == 4 and imp["unknown"] == 1
    table = run("--db", db_url, "select", "--strategy", "mds", "--budget", "3", "--lambda", "0.25")
    assert "round 1: mds" in table and "clip1.mp4" in table and "difficulty" in table
    res = json.loads(run("--db", db_url, "select", "--strategy", "random", "--budget", "50%", "--seed", "1",
                         "--include-in-flight", "--json"))
    assert res["round"] == 2 and res["budget"] == 2 and len(res["picks"]) == 2
    assert {p["video_id"] for p in res["picks"]} <= set(ids)


def test_embed_without_weights_is_a_one_line_error(sqlite_url: str, tmp_path: Path) -> None:
    env = {"MDS_DATA_DIR": str(tmp_path / "d"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "mds.cli", "--db", sqlite_url, "embed"], capture_output=True, text=True,
                       env=env, cwd=tmp_path, check=False)
    if "No module named mds.cli.__main__" in r.stderr:
        r = subprocess.run([sys.executable, "-c", "from mds.cli import main; main()", "--db", sqlite_url, "embed"],
                           capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1], check=False)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "--pretrained none" in r.stderr


def test_evaluate_formats(tmp_path: Path, shared_dir: Path) -> None:
    sdr = shared_dir / "data" / "mdsvqa-sdr"
    out = json.loads(run("evaluate", str(sdr / "baseline_sdr.scores.json"), str(sdr / "sdr_mos.txt"),
                         "--subset", str(sdr / "selected_sdr_64.txt"), "--json"))
    assert (round(out["srcc"], 4), round(out["plcc"], 4), out["n"]) == (0.2644, 0.3614, 64)
    # the picks' mean error against every labelled name (raw MOS here: 2,030 SDR videos)
    assert out["n_subset"] == 64 and out["n_all"] == 2030 and out["error_ratio"] > 1.5
    txt = run("evaluate", str(sdr / "baseline_sdr.scores.json"), str(sdr / "sdr_train_set.txt"),
              "--subset", str(sdr / "selected_sdr_64.txt"))
    assert "-> 2.30x" in " ".join(txt.split())
    # CSV predictions against 'name value' labels, names without the suffix.
    pred = json.loads((sdr / "sdr_active_finetuning.scores.json").read_text())
    csv = tmp_path / "p.csv"
    csv.write_text("name,score\n" + "".join(f"{k[:-4]},{v}\n" for k, v in pred.items()))
    txt = run("evaluate", str(csv), str(sdr / "sdr_mos.txt"))
    assert "SRCC 0.7314" in txt and "PLCC 0.7942" in txt and "KRCC" in txt and "RMSE" in txt


def test_on_a_pool_built_with_pool_add(sqlite_url: str, clip_dir: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MDS_DATA_DIR", str(tmp_path / "data"))
    model = register_tiny_clip(tmp_path)
    run("--db", sqlite_url, "pool", "add", str(clip_dir), "--split", "pool", "--quiet")
    out = json.loads(run("--db", sqlite_url, "embed", "--encoder", model, "--pretrained", "none", "--frames", "3",
                         "--json"))
    assert out["embedded"] == 4
    names = sorted(p.name for p in clip_dir.glob("*.mp4"))
    (tmp_path / "g.txt").write_text("".join(f"{n} {3.0 if i % 2 else 2.0}\n" for i, n in enumerate(names)))
    run("--db", sqlite_url, "import-scores", str(tmp_path / "g.txt"), "--predictor", "g")
    res = json.loads(run("--db", sqlite_url, "select", "--strategy", "mds", "--budget", "2", "--json"))
    # Both g = 3.0 clips, since lambda * Dmax = 0.5 cannot bridge the 1.0 gap to g = 2.0.
    assert {p["video"] for p in res["picks"]} == {names[1], names[3]}
    assert res["picks"][0]["diversity"] is None and res["picks"][1]["diversity"] > 0
    assert res["lambda"] == 0.25 and res["encoder"].endswith(":F3")
