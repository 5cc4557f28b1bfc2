"""Rounds survive a crash at every step: re-running never redoes finished work nor duplicates rows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.demo_helpers import tiny_clip_model, tiny_pool_dir

FAST = {"epochs": 10}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return tiny_pool_dir(tmp_path_factory), tiny_clip_model(tmp_path_factory)


def _project(tmp_path: Path, url: str, pool: Path):
    from mds.config import Settings
    from mds.demo.pool import import_into_db, load_demo_pool

    import_into_db(load_demo_pool(pool), url)
    return Settings(project_dir=tmp_path, db_url=url, data_dir=tmp_path / ".mds", raw={})


def _crashing(monkeypatch: pytest.MonkeyPatch, mode: str, calls: Counter) -> None:
    """Every step crashes once (before or after doing its work), then behaves."""
    from mds.rounds import steps

    for step, fname in steps.STEP_FUNCTIONS.items():
        real = getattr(steps, fname)
        state = {"crashed": False}

        def f(ctx, _real=real, _step=step, _state=state):
            calls[_step] += 1
            if mode == "before" and not _state["crashed"]:
                _state["crashed"] = True
                raise RuntimeError(f"simulated crash before {_step}")
            out = _real(ctx)
            if mode == "after" and not _state["crashed"]:
                _state["crashed"] = True
                raise RuntimeError(f"simulated crash after {_step}")
            return out

        monkeypatch.setattr(steps, fname, f)


def _run_until_done(settings, cfg, step_order: list[str]) -> int:
    from mds.rounds import finish_round, round_status, start_round
    from mds.rounds.state import FINISH_STEPS, START_STEPS

    crashes = 0
    for _ in range(len(START_STEPS) + 1):
        try:
            start_round(settings.db_url, cfg, settings=settings)
            break
        except RuntimeError as e:
            crashes += 1
            st = round_status(settings.db_url)
            step = str(e).split()[-1]
            assert step not in st["steps_done"] and st["error"] and step in st["error"]
            step_order.append(step)
    for _ in range(len(FINISH_STEPS) + 1):
        try:
            finish_round(settings.db_url, settings=settings)
            break
        except RuntimeError as e:
            crashes += 1
            st = round_status(settings.db_url)
            step = str(e).split()[-1]
            assert step not in st["steps_done"] and step in st["error"]
            step_order.append(step)
    return crashes


def test_every_step_crashes_and_resumes(setup, tmp_path: Path, sqlite_url: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from mds.db.engine import session_scope
    from mds.db.models import Annotation, Checkpoint, Label, LabelingTask, Round, Selection
    from mds.rounds import RoundConfig, finish_round, list_rounds, round_status
    from mds.rounds.state import FINISH_STEPS, START_STEPS

    pool, clip = setup
    settings = _project(tmp_path, sqlite_url, pool)
    cfg = RoundConfig(strategy="mds", budget="3", labels="simulated", oracle=str(pool), ratings_per_video=4,
                      clip_model=clip, clip_frames=4, finetune=FAST, failure=FAST)
    all_steps = [*START_STEPS, *FINISH_STEPS]

    # round 1: each step crashes before doing anything; every step's work then runs exactly once
    calls: Counter = Counter()
    _crashing(monkeypatch, "before", calls)
    order: list[str] = []
    assert _run_until_done(settings, cfg, order) == len(all_steps)
    assert order == all_steps
    assert all(calls[s] == 2 for s in all_steps)  # one crashed call + one real call
    st = round_status(settings.db_url, 1)
    assert st["status"] == "done" and st["steps_pending"] == [] and st["error"] is None
    finish_round(settings.db_url, 1, settings=settings)  # nothing left to do
    assert all(calls[s] == 2 for s in all_steps)

    # round 2: each step crashes after its work; re-running it must not duplicate anything
    monkeypatch.undo()
    calls2: Counter = Counter()
    _crashing(monkeypatch, "after", calls2)
    assert _run_until_done(settings, cfg, []) == len(all_steps)
    st2 = round_status(settings.db_url, 2)
    assert st2["status"] == "done" and len(st2["selection"]) == 3
    assert st2["base_checkpoint_id"] == st["finetuned_checkpoint_id"]  # the promoted model of round 1
    with session_scope(settings.db_url) as s:
        assert s.scalar(select(func.count()).select_from(Round)) == 2
        r2 = s.scalars(select(Round).where(Round.number == 2)).one()
        assert s.scalar(select(func.count()).select_from(Selection).where(Selection.round_id == r2.id)) == 3
        assert s.scalar(select(func.count()).select_from(LabelingTask).where(LabelingTask.round_id == r2.id)) == 3
        assert s.scalar(select(func.count()).select_from(Annotation).where(Annotation.round_id == r2.id)) == 12
        assert s.scalar(select(func.count()).select_from(Label).where(Label.round_id == r2.id)) == 3
        ft = s.scalars(select(Checkpoint).where(Checkpoint.kind == "finetuned")).all()
        assert len(ft) == 2 and all(c.status == "ready" for c in ft)
        base = s.scalars(select(Checkpoint).where(Checkpoint.kind == "base")).all()
        assert len(base) == 1
        picks1 = set(s.scalars(select(Selection.video_id).where(Selection.round_id != r2.id)))
        picks2 = set(s.scalars(select(Selection.video_id).where(Selection.round_id == r2.id)))
        assert not picks1 & picks2
    rows = list_rounds(settings.db_url)
    assert [r["status"] for r in rows] == ["done", "done"]
    assert rows[1]["finetuned_srcc"] is not None
    assert Path(st2["steps"]["report"]["path"]).is_file()
