"""``mds round start|finish|status|ls`` end to end on both databases (random strategy, simulated raters)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.demo_helpers import tiny_pool_dir


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_pool_dir(tmp_path_factory)


def _invoke(args: list[str]):
    from typer.testing import CliRunner

    from mds.cli import app

    return CliRunner().invoke(app, args)


def test_rounds_from_the_cli(pool_dir: Path, db_url: str, tmp_path: Path) -> None:
    from mds.db.engine import session_scope
    from mds.db.models import Label, Selection, Video
    from mds.demo.pool import import_into_db, load_demo_pool

    import_into_db(load_demo_pool(pool_dir), db_url)
    base = ["--db", db_url, "--project", str(tmp_path)]
    res = _invoke([*base, "round", "status"])
    assert res.exit_code != 0 and "no rounds yet" in str(res.exception or res.output)

    start = [*base, "round", "start", "--strategy", "random", "--budget", "3", "--labels", "simulated",
             "--oracle", str(pool_dir), "--ratings", "3", "--json"]
    res = _invoke(start)
    assert res.exit_code == 0, res.output
    st = json.loads(res.output)
    assert st["number"] == 1 and st["status"] == "pushed" and len(st["selection"]) == 3
    assert st["steps"]["difficulty"]["skipped"] and st["steps"]["embed"]["skipped"]
    assert st["steps"]["base"]["trained"] is True

    res = _invoke(start)  # the round is not finished yet
    assert res.exit_code != 0 and "round 1 is not finished" in str(res.exception)

    res = _invoke([*base, "round", "finish", "--json"])
    assert res.exit_code == 0, res.output
    st1 = json.loads(res.output)
    assert st1["status"] == "done" and st1["steps_pending"] == []
    tt = st1["metrics"]["finetuned"]["target_test"]
    assert tt["n"] == 6 and -1 <= tt["srcc"] <= 1
    assert st1["metrics"]["picks"]["error_ratio"] > 0
    assert Path(st1["steps"]["report"]["path"]).is_file()

    res = _invoke(start)
    assert res.exit_code == 0, res.output
    st2 = json.loads(res.output)
    assert st2["base_checkpoint_id"] == st1["finetuned_checkpoint_id"] and st2["steps"]["base"]["trained"] is False
    res = _invoke([*base, "round", "finish", "--round", "2", "--json"])
    assert res.exit_code == 0, res.output

    res = _invoke([*base, "round", "ls", "--json"])
    rows = json.loads(res.output)
    assert [r["status"] for r in rows] == ["done", "done"] and all(r["picks"] == 3 for r in rows)
    res = _invoke([*base, "round", "status", "--round", "1"])
    assert res.exit_code == 0 and "round 1: done" in res.output

    with session_scope(db_url) as s:
        picked = list(s.scalars(select(Selection.video_id)))
        assert len(picked) == len(set(picked)) == 6
        splits = set(s.scalars(select(Video.split).where(Video.id.in_(picked))))
        assert splits == {"pool"}
        n = s.scalar(select(func.count()).select_from(Label).where(Label.source == "simulated"))
        assert n == 6
    _assert_selection_time_errors(db_url, tmp_path, [st1, st2])


def _assert_selection_time_errors(db_url: str, project: Path, rounds: list[dict]) -> None:
    """g's supervision on round-labelled videos is out-of-sample: the error of the base model that was
    current when each video was selected, not of the model fine-tuned on its label."""
    from mds.config import load_settings
    from mds.db.engine import session_scope
    from mds.db.models import Prediction, Round, Selection
    from mds.learning.data import error_rule, load_labels, selection_time_versions, supervision
    from mds.learning.failure import train_failure_predictor

    data_dir = load_settings(db_url=db_url, project_dir=project).data_dir
    rep = train_failure_predictor(db_url, data_dir=data_dir, splits=("source", "pool"), epochs=2, seed=0)
    with session_scope(db_url) as s:
        labels = load_labels(s, splits=("source",), round_ids=list(s.scalars(select(Round.id))))
        at_sel = selection_time_versions(s, "cpu-default", labels)
        sup = supervision(s, error_rule("cpu-default"), labels, evaluator_version=rep.evaluator_version,
                          versions=at_sel)
        by_vid = dict(zip(sup.video_ids, zip(sup.errors, sup.video_versions, sup.mos_norm, strict=True), strict=True))
        versions = set()
        for st in rounds:
            rnd = s.scalars(select(Round).where(Round.number == st["number"])).one()
            ver = rnd.steps["score"]["evaluator_version"]
            versions.add(ver)
            for vid in s.scalars(select(Selection.video_id).where(Selection.round_id == rnd.id)):
                err, used, mos = by_vid[vid]
                assert used == ver == at_sel[vid]
                p = s.scalars(select(Prediction).where(Prediction.video_id == vid, Prediction.evaluator_version == ver,
                                                       Prediction.variant == "")).one()
                assert p.round_id == rnd.id  # stored by the round's score step, before its fine-tuning
                assert err == pytest.approx(abs(p.score - mos))
        # two base models were in use (round 2 selects with round 1's fine-tuned model), and neither is the
        # current (round 2 fine-tuned) model whose predictions the source videos use
        assert len(versions) == 2 and rep.evaluator_version not in versions
        from mds.db.models import Checkpoint

        cfg = s.get(Checkpoint, rep.checkpoint_id).config
        assert cfg["errors"]["rounds"] == "selection-time" and cfg["errors"]["n_selection_time"] == 6


def test_finish_needs_a_started_round(pool_dir: Path, sqlite_url: str, tmp_path: Path) -> None:
    from mds.config import Settings
    from mds.errors import ConfigError
    from mds.rounds import finish_round
    from mds.rounds.state import create_round

    create_round(sqlite_url, snapshot={"round": {}}, config_hash="x", strategy="random", budget_spec="3", seed=0,
                 lambda_=None, evaluator="cpu-default", encoder=None)
    settings = Settings(project_dir=tmp_path, db_url=sqlite_url, data_dir=tmp_path / ".mds", raw={})
    with pytest.raises(ConfigError, match="has not been started completely"):
        finish_round(sqlite_url, settings=settings)


def test_random_clip_weights_only_when_asked_for() -> None:
    from mds.cli.rounds import resolve_clip_pretrained
    from mds.errors import ConfigError

    with pytest.raises(ConfigError, match="--clip-pretrained none"):
        resolve_clip_pretrained(None, "mds", {})
    assert resolve_clip_pretrained("none", "mds", {}) is None  # explicit random init
    assert resolve_clip_pretrained(None, "mds", {"clip_pretrained": "/w/clip.bin"}) == "/w/clip.bin"
    assert resolve_clip_pretrained("/x.bin", "diversity", {"clip_pretrained": "/w/clip.bin"}) == "/x.bin"
    assert resolve_clip_pretrained(None, "random", {}) is None  # no embeddings needed
