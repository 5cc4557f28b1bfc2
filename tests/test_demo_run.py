"""``mds demo`` end to end on the tiny pool: both arms, per-round table, HTML report, re-run reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.demo_helpers import tiny_clip_model, tiny_pool_dir


@pytest.mark.slow
def test_demo_runs_both_arms_and_reports(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from mds.rounds.demo import run_demo

    clip = tiny_clip_model(tmp_path_factory)
    shutil.copytree(tiny_pool_dir(tmp_path_factory), tmp_path / "out" / "pool")  # reuse the built pool
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MDS_LABEL_STUDIO_URL", raising=False)
    lines: list[str] = []
    res = run_demo(tmp_path / "out", size="tiny", rounds=2, budget="3", clip_model=clip,
                   finetune={"epochs": 10}, failure={"epochs": 10}, echo=lines.append)
    text = "\n".join(lines)
    assert "RANDOM weights" in text and "MDS-random" in text
    assert set(res["table"]) == {"mds", "random"}
    for rows in res["table"].values():
        assert [r["round"] for r in rows] == [1, 2] and all(-1 <= r["srcc"] <= 1 for r in rows)
        assert all(r["k"] == 3 for r in rows)
    assert res["table"]["mds"][0]["base_srcc"] == pytest.approx(res["table"]["random"][0]["base_srcc"])
    html = Path(res["report"]).read_text()
    assert "randomly initialised" in html and html.count("data:image/png;base64") >= 2
    assert json.loads((tmp_path / "out" / "demo.json").read_text())["clip_random_init"] is True
    # a second run reuses the finished rounds
    again = run_demo(tmp_path / "out", size="tiny", rounds=2, budget="3", clip_model=clip, echo=None)
    assert again["table"] == res["table"]
