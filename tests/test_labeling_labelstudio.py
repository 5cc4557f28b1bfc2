"""End-to-end tests against a real Label Studio server (no mocks): push, rate, pull, aggregate, faults."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from scipy import stats
from sqlalchemy import func, select

pytest_plugins = ["tests.labelstudio_fixtures"]
pytestmark = pytest.mark.labelstudio


def make_round(*a, **kw):
    from tests.labelstudio_fixtures import make_round as _make

    return _make(*a, **kw)


def _session(url: str):
    from mds.db.engine import make_sessionmaker

    return make_sessionmaker(url)()


def _opts(srv, **kw):
    from labeling.push import PushOptions

    return PushOptions(document_root=srv.document_root, **kw)


def _tasks_by_video(client, project_id: int) -> dict[int, dict]:
    return {t["data"]["mds_video_id"]: t for t in client.list_tasks(project_id)}


def test_label_configs_accepted_by_server(ls_client) -> None:
    from labeling.kinds import KINDS, get_kind

    for kind in KINDS:
        for slider in [False, True] if kind == "scalar" else [False]:
            pid = ls_client.create_project(
                title=f"config {kind}", label_config=get_kind(kind, slider=slider).label_config()
            )
            assert ls_client.get_project(pid)["label_config"].count("<Video") == (
                2 if kind == "pairwise" else 1
            )
            ls_client.delete_project(pid)


def test_round_trip_push_rate_pull_complete(db_url: str, ls_running, ls_client, ls_raters) -> None:
    from labeling.pull import pull
    from labeling.push import push_round
    from mds.db.models import Annotation, Job, Label, LabelingTask, LabelProject, Round, Video

    root = ls_running.document_root
    outside = Path(ls_running.data_dir).parent / f"outside-{uuid.uuid4().hex[:6]}"
    with _session(db_url) as s:
        vids = make_round(s, root / f"v-{uuid.uuid4().hex[:8]}", n=4, outside_dir=outside)
        res = push_round(s, ls_client, 1, _opts(ls_running, ratings_per_video=3))
        assert (res.total, res.imported, res.recovered, res.already) == (4, 4, 0, 0)
        pid = res.project_id
        project = ls_client.get_project(pid)
        assert project["sampling"] == "Uncertainty sampling"
        assert project["model_version"] == "mds-round-1"
        assert project["maximum_annotations"] == 3
        tasks = _tasks_by_video(ls_client, pid)
        assert set(tasks) == set(vids)
        for i, vid in enumerate(vids):
            t = tasks[vid]
            assert t["data"]["title"] == f"Clip {i}" and t["data"]["prompt"] == f"prompt {i}"
            [p] = t["predictions"]
            assert p["model_version"] == "mds-round-1"
            assert p["score"] == pytest.approx((i + 0.5) / 4)  # queue order = pick order
            assert p["result"][0]["value"]["rating"] == round(
                1.4 + 1.2 * i
            )  # base prediction as pre-annotation
            # the original file is served by Label Studio (the last clip through a link)
            r = httpx.get(
                ls_running.url + t["data"]["video"], headers={"Authorization": f"Token {ls_running.token}"}
            )
            assert r.status_code == 200 and r.content == Path(s.get(Video, vid).uri).read_bytes()
        assert "mds-media" in tasks[vids[-1]]["data"]["video"]
        assert s.scalars(select(Round)).one().status == "pushed"

        again = push_round(s, ls_client, 1, _opts(ls_running, ratings_per_video=3))
        assert (again.imported, again.already, again.predictions) == (0, 4, 0)
        assert len(ls_client.list_tasks(pid)) == 4
        assert s.scalar(select(func.count()).select_from(LabelProject)) == 1

        # three scripted raters; rater 3 sends an out-of-range value for video 0, rater 1 skips nothing
        ratings = {0: [2, 3, 9], 1: [3, 4, 4], 2: [4, 4, 5], 3: [5, 4, 5]}
        ann_ids = {}
        for i, vid in enumerate(vids):
            for rater, value in zip(ls_raters[:3], ratings[i]):
                ann_ids[(i, rater.name)] = rater.rate(ls_client, tasks[vid]["id"], value)
        out = pull(s, ls_client)
        assert (out.created, out.rejected, out.deleted) == (12, 1, 0)
        assert out.reasons == {"out_of_range": 1}
        rej = s.scalars(select(Annotation).where(Annotation.status == "rejected")).one()
        assert (
            rej.video_id == vids[0]
            and "out_of_range" in rej.reject_reason
            and rej.annotator == ls_raters[2].name
        )
        labels = {lab.video_id: lab for lab in s.scalars(select(Label).where(Label.source == "labelstudio"))}
        for i, vid in enumerate(vids):
            vals = [v for v in ratings[i] if v <= 5]
            lab = labels[vid]
            assert lab.n_ratings == len(vals) and lab.mos == pytest.approx(statistics.mean(vals))
            assert lab.std == pytest.approx(statistics.stdev(vals))
            assert lab.ci95 == pytest.approx(
                stats.t.ppf(0.975, len(vals) - 1) * statistics.stdev(vals) / len(vals) ** 0.5
            )
            assert (lab.scale_min, lab.scale_max) == (1.0, 5.0)
        assert out.rounds_labelled == [] and s.scalar(select(func.count()).select_from(Job)) == 0

        # a fourth rater completes video 0: the round is labelled and fine-tuning is queued once
        ls_raters[3].rate(ls_client, tasks[vids[0]]["id"], 3)
        out = pull(s, ls_client)
        assert (out.created, out.unchanged) == (1, 12)
        r1 = s.scalars(select(Round)).one()
        assert r1.status == "labelled" and "labelled" in r1.steps and out.rounds_labelled == [r1.id]
        job = s.scalars(select(Job)).one()
        assert (job.kind, job.payload["round_id"], job.dedupe_key) == (
            "finetune",
            r1.id,
            f"finetune:round:{r1.id}",
        )
        assert all(t.status == "labelled" for t in s.scalars(select(LabelingTask)))
        out = pull(s, ls_client)
        assert out.created == out.updated == out.deleted == 0 and out.rounds_labelled == []
        assert s.scalar(select(func.count()).select_from(Job)) == 1

        # an update and a deletion after aggregation: MOS recomputed
        ls_client.update_annotation(
            ann_ids[(1, ls_raters[0].name)],
            [{"from_name": "quality", "to_name": "video", "type": "rating", "value": {"rating": 1}}],
        )
        ls_client.delete_annotation(ann_ids[(2, ls_raters[2].name)])
        out = pull(s, ls_client)
        assert (out.updated, out.deleted) == (1, 1)
        s.expire_all()
        labels = {lab.video_id: lab for lab in s.scalars(select(Label).where(Label.source == "labelstudio"))}
        assert labels[vids[1]].mos == pytest.approx(statistics.mean([1, 4, 4]))
        assert labels[vids[2]].mos == pytest.approx(4.0) and labels[vids[2]].n_ratings == 2
        gone = s.scalars(
            select(Annotation).where(Annotation.external_id == str(ann_ids[(2, ls_raters[2].name)]))
        ).one()
        assert gone.status == "deleted"  # kept, not erased

        # the whole project deleted in Label Studio: sync reports it and keeps every stored rating
        n_ann = s.scalar(select(func.count()).select_from(Annotation).where(Annotation.status == "ok"))
        ls_client.delete_project(pid)
        out = pull(s, ls_client)
        assert out.missing_projects == [pid] and out.deleted == 0
        assert (
            s.scalar(select(func.count()).select_from(Annotation).where(Annotation.status == "ok")) == n_ann
        )
        assert s.scalar(select(func.count()).select_from(Label)) == 4


def test_push_survives_server_stop_and_lost_answer(sqlite_url: str, ls_running, ls_client) -> None:
    from labeling.push import push_round
    from mds.db.models import LabelingTask
    from mds.errors import LabelingError

    with _session(sqlite_url) as s:
        vids = make_round(s, ls_running.document_root / f"v-{uuid.uuid4().hex[:8]}", n=6)

        def stop_after_first(i: int, ids: list[int]) -> None:
            if i == 0:
                ls_running.stop()

        with pytest.raises(LabelingError, match="unreachable"):
            push_round(s, ls_client, 1, _opts(ls_running, batch_size=2), on_batch=stop_after_first)
        rows = list(s.scalars(select(LabelingTask)))
        assert len(rows) == 6 and sum(t.external_task_id is not None for t in rows) == 2

        ls_running.start(timeout=120)
        # the next batch is imported but its answer is "lost" before the ids are recorded
        real_import = ls_client.import_tasks
        calls = []

        def lossy_import(project_id: int, tasks: list) -> list[int]:
            ids = real_import(project_id, tasks)
            calls.append(ids)
            if len(calls) == 1:
                raise LabelingError("Label Studio at test timed out (import tasks)")
            return ids

        ls_client.import_tasks = lossy_import
        with pytest.raises(LabelingError, match="timed out"):
            push_round(s, ls_client, 1, _opts(ls_running, batch_size=2))
        ls_client.import_tasks = real_import

        res = push_round(s, ls_client, 1, _opts(ls_running, batch_size=2))
        assert (res.already, res.recovered, res.imported) == (2, 2, 2)
        tasks = ls_client.list_tasks(res.project_id)
        keys = [t["data"]["mds_task_key"] for t in tasks]
        assert len(tasks) == 6 and len(set(keys)) == 6
        assert sorted(t["data"]["mds_video_id"] for t in tasks) == sorted(vids)
        for t in tasks:
            assert [p["model_version"] for p in t["predictions"]] == ["mds-round-1"]
        s.expire_all()
        rows = {t.external_task_id: t for t in s.scalars(select(LabelingTask))}
        assert set(rows) == {str(t["id"]) for t in tasks}
        assert all(r.status == "pushed" for r in rows.values())


def test_unreachable_server_one_line_error_nothing_lost(sqlite_url: str, tmp_path: Path) -> None:
    from labeling.aggregate import record_ratings
    from labeling.server import free_port
    from mds.db.models import Annotation, Label, LabelingTask, LabelProject, Round

    with _session(sqlite_url) as s:
        vids = make_round(s, tmp_path / "videos", n=2)
        record_ratings(s, None, [(vids[0], "a", 4), (vids[0], "b", 5)], source="manifest")
        s.commit()
    dead = f"http://127.0.0.1:{free_port()}"
    exe = Path(sys.executable).parent / "mds"
    env = {
        "MDS_DATABASE_URL": sqlite_url,
        "MDS_LABEL_STUDIO_TOKEN": "t" * 40,
        "PATH": "/usr/bin:/bin",
        "MDS_LABEL_STUDIO_DOCUMENT_ROOT": str(tmp_path),
        "HOME": str(tmp_path),
    }
    p = subprocess.run(
        [str(exe), "label", "push", "--round", "1", "--url", dead],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert p.returncode == 1
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unreachable" in lines[0] and dead in lines[0], p.stderr
    from labeling.client import LabelStudioClient
    from labeling.pull import pull
    from mds.errors import LabelingError

    with _session(sqlite_url) as s, pytest.raises(LabelingError, match="unreachable") as err:
        pull(s, LabelStudioClient(dead, "t" * 40))
    assert "\n" not in str(err.value)
    with _session(sqlite_url) as s:
        assert s.scalar(select(func.count()).select_from(LabelProject)) == 0
        assert s.scalar(select(func.count()).select_from(LabelingTask)) == 0
        assert s.scalar(select(func.count()).select_from(Annotation)) == 2
        assert s.scalars(select(Label)).one().mos == pytest.approx(4.5)
        assert s.scalars(select(Round)).one().status == "selected"


def test_webhook_secret_duplicates_completion_and_deletion(
    sqlite_url: str, ls_running, ls_client, ls_raters
) -> None:
    import time

    from labeling.push import push_round
    from labeling.server import free_port
    from labeling.webhook import SECRET_HEADER, WebhookServer
    from mds.db.models import Job, Label, Round, WebhookEvent

    with _session(sqlite_url) as s:
        vids = make_round(s, ls_running.document_root / f"v-{uuid.uuid4().hex[:8]}", n=2)
        res = push_round(s, ls_client, 1, _opts(ls_running, ratings_per_video=1))
    secret = uuid.uuid4().hex
    srv = WebhookServer(sqlite_url, secret, port=free_port(), client_factory=lambda: ls_client).start()
    try:

        def count_events() -> int:
            with _session(sqlite_url) as s:
                return s.scalar(select(func.count()).select_from(WebhookEvent))

        body = json.dumps(
            {
                "action": "ANNOTATION_CREATED",
                "project": {"id": res.project_id},
                "task": {"id": 0},
                "annotation": {"id": 0, "task": 0},
            }
        ).encode()
        for headers in ({}, {SECRET_HEADER: "wrong"}):
            r = httpx.post(srv.url, content=body, headers=headers)
            assert r.status_code == 401
        r = httpx.post(srv.url + "?token=nope", content=body)
        assert r.status_code == 401 and count_events() == 0

        ls_client.ensure_webhook(res.project_id, srv.url, headers={SECRET_HEADER: secret})
        tasks = _tasks_by_video(ls_client, res.project_id)
        t0 = time.monotonic()
        ann = ls_raters[0].rate(ls_client, tasks[vids[0]]["id"], 2)
        ls_raters[0].rate(ls_client, tasks[vids[1]]["id"], 5)
        assert time.monotonic() - t0 < 5  # Label Studio's delivery did not wait for processing

        def wait_for(pred, timeout: float = 30.0) -> None:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if pred():
                    return
                time.sleep(0.2)
            raise AssertionError("condition not reached")

        def state() -> tuple[str, int, dict[int, float]]:
            with _session(sqlite_url) as s:
                rnd = s.scalars(select(Round)).one()
                labels = {lab.video_id: lab.mos for lab in s.scalars(select(Label))}
                return rnd.status, s.scalar(select(func.count()).select_from(Job)), labels

        wait_for(lambda: state()[0] == "labelled")
        assert state() == ("labelled", 1, {vids[0]: 2.0, vids[1]: 5.0})
        with _session(sqlite_url) as s:
            evs = list(s.scalars(select(WebhookEvent)))
            assert [e.action for e in evs] == ["ANNOTATION_CREATED", "ANNOTATION_CREATED"]
            wait_for(
                lambda: all(
                    e.status == "processed" for e in _session(sqlite_url).scalars(select(WebhookEvent))
                )
            )

        # the same delivery twice: one row, and processing it again changes nothing
        dup = json.dumps(
            {
                "action": "ANNOTATION_UPDATED",
                "project": {"id": res.project_id},
                "task": {"id": tasks[vids[0]]["id"]},
                "annotation": {"id": ann},
            }
        ).encode()
        first = httpx.post(srv.url, content=dup, headers={SECRET_HEADER: secret}).json()
        second = httpx.post(srv.url, content=dup, headers={SECRET_HEADER: secret}).json()
        assert (first["status"], second["status"]) == ("accepted", "duplicate")
        assert first["event_id"] == second["event_id"] and count_events() == 3
        wait_for(lambda: _session(sqlite_url).get(WebhookEvent, first["event_id"]).status == "processed")
        assert state() == ("labelled", 1, {vids[0]: 2.0, vids[1]: 5.0})

        # a deletion in Label Studio reaches mds through the webhook: the label goes away
        ls_client.delete_annotation(ann)
        wait_for(lambda: vids[0] not in state()[2])
        with _session(sqlite_url) as s:
            assert s.scalars(select(WebhookEvent).where(WebhookEvent.action == "ANNOTATIONS_DELETED")).one()
    finally:
        srv.stop()


def test_pairwise_round_both_orientations_and_skip(sqlite_url: str, ls_running, ls_client, ls_raters) -> None:
    from labeling.pull import pull
    from labeling.push import pair_swapped, push_round
    from mds.db.models import Annotation, Label, Round, Selection, Video

    with _session(sqlite_url) as s:
        v1, v2, v3, v4 = make_round(
            s, ls_running.document_root / f"v-{uuid.uuid4().hex[:8]}", n=4, evaluator=None
        )
        for vid in (v2, v4):
            s.delete(s.scalars(select(Selection).where(Selection.video_id == vid)).one())
        s.flush()
        for order, (a, b) in enumerate(((v1, v2), (v3, v4))):
            sel = s.scalars(select(Selection).where(Selection.video_id == a)).one()
            sel.extra, sel.pick_order = {"pair_video_id": b, "cluster": 3 + order}, order
        rnd = s.scalars(select(Round)).one()
        # a seed that shows exactly one of the two pairs right-left
        rnd.seed = next(
            k for k in range(64) if pair_swapped(Round(seed=k), v1, v2) != pair_swapped(Round(seed=k), v3, v4)
        )
        s.commit()
        res = push_round(s, ls_client, 1, _opts(ls_running, kind="pairwise", ratings_per_video=2))
        tasks = _tasks_by_video(ls_client, res.project_id)
        assert set(tasks) == {v1, v3}
        swapped = {a: bool(tasks[a]["data"].get("mds_swapped")) for a in (v1, v3)}
        assert sorted(swapped.values()) == [False, True]
        for a, b in ((v1, v2), (v3, v4)):
            d = tasks[a]["data"]
            left, right = (d["video2"], d["video"]) if swapped[a] else (d["video"], d["video2"])
            assert left.endswith(Path(s.get(Video, a).uri).name) and right.endswith(
                Path(s.get(Video, b).uri).name
            )
            assert [p["model_version"] for p in tasks[a]["predictions"]] == ["mds-round-1"]
        assert sorted(tasks[a]["predictions"][0]["cluster"] for a in (v1, v3)) == [3, 4]
        pick = [
            {"from_name": d, "to_name": "video1", "type": "choices", "value": {"choices": [c]}}
            for d, c in (("TA", "Tie"), ("VQ", "Video 2"), ("MQ", "Video 2"), ("OA", "Video 2"))
        ]
        for a in (v1, v3):  # the rater always picks the right-hand video
            ls_client.create_annotation(tasks[a]["id"], pick, completed_by=ls_raters[0].user_id)
        ls_raters[1].skip(ls_client, tasks[v1]["id"])
        out = pull(s, ls_client)
        assert (out.created, out.skipped) == (3, 1)
        for a, b in ((v1, v2), (v3, v4)):
            ok = s.scalars(
                select(Annotation).where(Annotation.status == "ok", Annotation.video_id == a)
            ).one()
            winner = "Video 1" if swapped[a] else "Video 2"  # in mds's order: the first video is `a`
            assert (ok.pair_video_id, ok.score, ok.value["OA"], ok.value["TA"]) == (
                b,
                1.0 if swapped[a] else -1.0,
                winner,
                "Tie",
            )
            lab = s.scalars(select(Label).where(Label.video_id == a)).one()
            assert (
                lab.kind == "pairwise"
                and lab.value["votes"]["OA"] == {winner: 1}
                and lab.value["pair_video_id"] == b
            )
        assert out.rounds_labelled == []  # a skip is not a rating: one of two ratings so far
