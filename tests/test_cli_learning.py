"""`mds train-base`, `mds failure train|score|ls`, `mds finetune`, `mds checkpoints`, `mds promote`; Ctrl-C and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mds.cli import app
from tests.fixtures.distortions import add_to_db, cached_set, shared_base

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def mds(url: str, *args: str):
    return runner.invoke(app, ["--db", url, *args])


@pytest.fixture
def pool(sqlite_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
         monkeypatch: pytest.MonkeyPatch) -> str:
    base = shared_base(tmp_path_factory)
    add_to_db(sqlite_url, cached_set(base, "source", 40, 31)[0], split="source")
    add_to_db(sqlite_url, cached_set(base, "target", 30, 32)[0], split="pool")
    add_to_db(sqlite_url, cached_set(base, "target", 20, 33)[0], split="test")
    monkeypatch.setenv("MDS_DATA_DIR", str(tmp_path / "data"))
    return sqlite_url


def test_cli_loop(pool: str) -> None:
    r = mds(pool, "train-base", "--epochs", "40", "--json")
    assert r.exit_code == 0, r.output
    base = json.loads(r.stdout)
    assert base["promoted"] and base["metrics"]["test"]["n"] == 20

    r = mds(pool, "failure", "train", "--epochs", "10", "--json")
    assert r.exit_code == 0, r.output
    g = json.loads(r.stdout)
    assert g["predictor"] == "g-cpu-default@v1" and not g["reused"]
    r = mds(pool, "failure", "train", "--epochs", "10")
    assert r.exit_code == 0 and "reused g-cpu-default@v1" in r.stdout

    r = mds(pool, "failure", "score", "--json")
    assert r.exit_code == 0, r.output
    sc = json.loads(r.stdout)
    assert (sc["scored"], sc["failed"]) == (30, 0)
    r = mds(pool, "failure", "score", "--split", "all")
    assert r.exit_code == 0 and "scored 60, already scored 30" in r.stdout

    r = mds(pool, "finetune", "--rounds", "7")
    assert r.exit_code == 1 and "unknown round id(s): 7" in str(r.exception)  # main() prints it on one line

    r = mds(pool, "finetune", "--epochs", "5", "--json")
    assert r.exit_code == 0, r.output
    ft = json.loads(r.stdout)
    assert ft["parent_id"] == base["checkpoint_id"] and not ft["promoted"] and ft["after"]["n"] == 20

    r = mds(pool, "promote", str(ft["checkpoint_id"]))
    assert r.exit_code == 0 and "promoted cpu-default-ft@v1" in r.stdout
    r = mds(pool, "promote", g["predictor"])
    assert r.exit_code == 1 and "only base or finetuned" in str(r.exception)

    r = mds(pool, "checkpoints", "--json")
    rows = json.loads(r.stdout)
    assert [(c["kind"], c["promoted"]) for c in rows] == [("base", True), ("failure_predictor", False),
                                                          ("finetuned", True)]
    r = mds(pool, "failure", "ls")
    assert r.exit_code == 0 and "g-cpu-default@v1" in r.stdout


def test_ctrl_c_then_resume(pool: str, tmp_path: Path) -> None:
    assert mds(pool, "train-base", "--epochs", "20").exit_code == 0
    env = {**os.environ, "MDS_DATA_DIR": str(tmp_path / "data"), "MDS_DATABASE_URL": pool}
    cmd = [sys.executable, "-c", "import sys; from mds.cli import main; sys.argv=['mds', *sys.argv[1:]]; main()",
           "failure", "train", "--epochs", "150", "--patience", "0", "--batch-size", "8", "--json"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = list((tmp_path / "data").glob("checkpoints/**/train_state/train_state.pt"))
    deadline = time.time() + 120
    while not state and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        state = list((tmp_path / "data").glob("checkpoints/**/train_state/train_state.pt"))
    assert state, "no training state was written"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    # 130 once the root entry point exits with the code Typer returns for an interrupt (it returns it
    # instead of raising under standalone_mode=False); until then the process ends with 0.
    assert proc.returncode in (0, 130), (out, err)
    assert "interrupted" in err and "resume" in err
    assert out == ""  # no result was reported
    r = mds(pool, "checkpoints", "--kind", "failure_predictor", "--json")
    assert [c["status"] for c in json.loads(r.stdout)] == ["training"]

    r = mds(pool, "failure", "train", "--epochs", "150", "--patience", "0", "--batch-size", "8", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["resumed"] and rep["epochs_run"] == 150
    r = mds(pool, "checkpoints", "--kind", "failure_predictor", "--json")
    assert [(c["status"], c["version"]) for c in json.loads(r.stdout)] == [("ready", "v1")]
