"""A round through a real Label Studio: push, simulated raters answer through its API, pull, fine-tune."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.demo_helpers import tiny_pool_dir

pytest_plugins = ["tests.labelstudio_fixtures"]


@pytest.mark.labelstudio
def test_round_through_label_studio(ls_running, tmp_path_factory: pytest.TempPathFactory, sqlite_url: str,
                                    tmp_path: Path) -> None:
    from mds.config import Settings
    from mds.db.engine import session_scope
    from mds.db.models import Annotation, Label, LabelingTask, LabelProject
    from mds.demo.pool import import_into_db, load_demo_pool
    from mds.rounds import RoundConfig, finish_round, start_round

    pool = tiny_pool_dir(tmp_path_factory)  # outside the server's document root: linked into it on push
    import_into_db(load_demo_pool(pool), sqlite_url)
    settings = Settings(project_dir=tmp_path, db_url=sqlite_url, data_dir=tmp_path / ".mds", raw={
        "labelstudio": {"url": ls_running.url, "token": ls_running.token,
                        "document_root": str(ls_running.document_root)}})
    cfg = RoundConfig(strategy="random", budget="3", labels="auto", simulate_raters=True, oracle=str(pool),
                      ratings_per_video=3, finetune={"epochs": 10})
    st = start_round(sqlite_url, cfg, settings=settings)
    assert st["steps"]["push"]["backend"] == "labelstudio" and st["steps"]["push"]["total"] == 3
    st = finish_round(sqlite_url, settings=settings)
    assert st["status"] == "done"
    assert st["steps"]["pull"]["simulated_answers"] == 9
    assert st["steps"]["aggregate"]["source"] == "labelstudio"
    with session_scope(sqlite_url) as s:
        proj = s.scalars(select(LabelProject)).one()
        assert proj.backend == "labelstudio"
        tasks = list(s.scalars(select(LabelingTask)))
        assert len(tasks) == 3 and all(t.external_task_id and t.ratings_done >= 3 for t in tasks)
        n_ann = s.scalar(select(func.count()).select_from(Annotation).where(Annotation.status == "ok"))
        assert n_ann == 9
        labs = list(s.scalars(select(Label).where(Label.round_id.is_not(None))))
        assert len(labs) == 3 and all(1 <= lab.mos <= 5 and lab.n_ratings >= 2 for lab in labs)
    assert st["metrics"]["finetuned"]["target_test"]["n"] == 6
    # finishing again changes nothing (no second batch of simulated answers)
    again = finish_round(sqlite_url, settings=settings)
    assert again["steps"]["pull"] == st["steps"]["pull"]
