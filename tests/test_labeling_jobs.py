"""Job queue and the worker process: dedupe, handler registry, failures recorded, separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

REPO = Path(__file__).resolve().parents[1]


def finetune_handler(db_url: str, payload: dict) -> dict:
    """A real test handler: marks the round fine-tuned in the database it is given."""
    from mds.db.engine import make_sessionmaker
    from mds.db.models import Round

    with make_sessionmaker(db_url)() as s:
        r = s.get(Round, payload["round_id"])
        r.status = "finetuned"
        s.commit()
        return {"round_id": r.id, "pid": os.getpid()}


def failing_handler(db_url: str, payload: dict) -> dict:
    raise RuntimeError(f"cannot train round {payload['round_id']}")


def _round(session) -> int:
    from mds.db.models import Round

    r = Round(number=1, strategy="mds", budget=4, status="labelled")
    session.add(r)
    session.commit()
    return r.id


def test_enqueue_dedupes(session) -> None:
    from labeling.jobs import enqueue
    from mds.db.models import Job

    rid = _round(session)
    a = enqueue(session, "finetune", {"round_id": rid}, dedupe_key=f"finetune:round:{rid}")
    session.commit()
    b = enqueue(session, "finetune", {"round_id": rid}, dedupe_key=f"finetune:round:{rid}")
    assert a.id == b.id and len(session.scalars(select(Job)).all()) == 1


def test_in_process_registry_and_failures(db_url: str, session) -> None:
    from labeling.jobs import enqueue, register_job_handler, requeue_failed, run_worker
    from mds.db.models import Job

    rid = _round(session)
    register_job_handler("test-ok", finetune_handler)
    register_job_handler("test-fail", failing_handler)
    register_job_handler("test-missing", "mds_no_such_module.sub:run")
    for kind in ("test-ok", "test-fail", "test-missing", "test-unknown"):
        enqueue(session, kind, {"round_id": rid})
    session.commit()
    counts = run_worker(db_url, once=True, poll_s=0.01)
    assert (counts["done"], counts["failed"]) == (1, 3)
    session.expire_all()
    jobs = {j.kind: j for j in session.scalars(select(Job))}
    assert jobs["test-ok"].status == "done" and jobs["test-ok"].result["round_id"] == rid
    assert jobs["test-fail"].status == "failed" and "cannot train round" in jobs["test-fail"].error
    assert "cannot be loaded" in jobs["test-missing"].error
    assert "no handler" in jobs["test-unknown"].error
    assert all(j.attempts == 1 and j.finished_at is not None for j in jobs.values())
    assert run_worker(db_url, once=True, poll_s=0.01) == {
        "events": 0,
        "done": 0,
        "failed": 0,
    }  # nothing re-run
    register_job_handler("test-fail", finetune_handler)  # the cause is fixed: retry
    assert requeue_failed(session, ["test-fail"]) == 1
    assert run_worker(db_url, once=True, poll_s=0.01)["done"] == 1
    session.expire_all()
    assert session.scalars(select(Job).where(Job.kind == "test-fail")).one().attempts == 2


def test_worker_cli_runs_finetune_in_separate_process(db_url: str, session, tmp_path: Path) -> None:
    from labeling.jobs import enqueue
    from mds.db.models import Job, Round

    rid = _round(session)
    enqueue(session, "finetune", {"round_id": rid}, dedupe_key=f"finetune:round:{rid}")
    session.commit()
    (tmp_path / "mds.toml").write_text(
        f'[database]\nurl = "{db_url}"\n\n[jobs.handlers]\nfinetune = "tests.test_labeling_jobs:finetune_handler"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MDS_DATABASE_URL", None)
    p = subprocess.run(
        [str(Path(sys.executable).parent / "mds"), "label", "worker", "--once", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["done"] == 1
    session.expire_all()
    job = session.scalars(select(Job)).one()
    assert job.status == "done" and job.result["pid"] != os.getpid()
    assert session.get(Round, rid).status == "finetuned"
