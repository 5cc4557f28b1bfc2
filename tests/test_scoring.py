"""`mds score` / :func:`mds.scoring.score_pool` on a generated pool, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mds.scoring import anchor_pairs, choose_anchors, score_pool, win_rate
from tests.fixtures.chat_server import ChatServer, Reply, fixed
from tests.fixtures.tiny_models import tiny_qwen3vl_dir, tiny_qwen25vl_dir  # noqa: F401  (fixtures)

ANSWER = "<think>fine</think><answer>3.85</answer>"


def _add_videos(
    url: str, clip_dir: Path, *, missing: bool = False, prompts: dict[int, str] | None = None
) -> list[int]:
    from mds.db.engine import session_scope
    from mds.db.models import Video

    paths = [clip_dir / f"clip{i}.mp4" for i in range(4)] + ([clip_dir / "gone.mp4"] if missing else [])
    with session_scope(url) as s:
        rows = [
            Video(
                name=p.name,
                uri=str(p),
                split="pool",
                dataset="demo",
                width=96,
                height=64,
                fps=16.0,
                duration_s=1.0,
                frame_count=16,
                meta={"prompt": (prompts or {}).get(i, "x")},
            )
            for i, p in enumerate(paths)
        ]
        s.add_all(rows)
        s.flush()
        ids = [r.id for r in rows]
        s.add(Video(name="src.mp4", uri=str(clip_dir / "clip0.mp4") + "?src", split="source", dataset="demo"))
    return ids


def _predictions(url: str, **where) -> list:  # noqa: ANN003
    from sqlalchemy import select

    from mds.db.engine import session_scope
    from mds.db.models import Prediction

    with session_scope(url) as s:
        q = select(Prediction).order_by(Prediction.video_id, Prediction.variant)
        for k, v in where.items():
            q = q.where(getattr(Prediction, k) == v)
        rows = list(s.scalars(q))
        s.expunge_all()
        return rows


def test_score_pool_stores_skips_and_records_failures(db_url: str, clip_dir: Path) -> None:
    ids = _add_videos(db_url, clip_dir, missing=True)
    with ChatServer(fixed(ANSWER)) as srv:
        opts = {"backend": "openai", "base_url": srv.base_url, "model": "vqr1-served"}
        rep = score_pool(db_url, "vqr1", options=opts, batch_size=2)
        assert (rep.candidates, rep.scored, rep.ok, rep.errors, rep.skipped) == (5, 5, 4, 1, 0)
        rows = _predictions(db_url)
        assert [r.video_id for r in rows] == ids  # the source-split video is not scored
        good, bad = rows[:4], rows[4]
        for r in good:
            assert (r.evaluator, r.parse_status, r.score, r.variant) == ("vqr1", "ok", 3.85, "")
            assert r.evaluator_version == rep.evaluator_version and r.raw_output == ANSWER
            assert r.gen_params["top_k"] == 50 and r.preproc["n_frames"] == 4 and r.n_samples == 1
            assert r.gen_params["backend"] == {
                "backend": "openai",
                "model": "vqr1-served",
                "base_url": srv.base_url,
                "video_mode": "frames",
            }
            assert r.parsed["score"] == 3.85 and r.parsed["model_id"] == "vqr1-served"
        assert bad.parse_status == "error" and bad.score is None and "gone.mp4" in bad.parsed["error"]
        n_req = len(srv.requests)
        # a second run skips what this version scored and retries the error
        rep2 = score_pool(db_url, "vqr1", options=opts)
        assert (rep2.skipped, rep2.scored, rep2.errors) == (4, 1, 1) and len(srv.requests) == n_req
        assert len(_predictions(db_url)) == 5
        # another version (different sampling) scores everything again, beside the old rows
        rep3 = score_pool(db_url, "vqr1", options={**opts, "temperature": 0.2}, limit=2)
        assert rep3.evaluator_version != rep.evaluator_version and rep3.scored == 2
        assert len(_predictions(db_url, evaluator_version=rep3.evaluator_version)) == 2


def test_parse_failures_are_stored_with_raw_text(db_url: str, clip_dir: Path) -> None:
    _add_videos(db_url, clip_dir)
    with ChatServer(fixed("I think the video is fine.")) as srv:
        rep = score_pool(
            db_url,
            "vqr1",
            options={"backend": "openai", "base_url": srv.base_url, "model": "m"},
            split="pool",
            dataset="demo",
        )
    assert rep.parse_failed == 4
    rows = _predictions(db_url)
    assert {(r.parse_status, r.score, r.raw_output) for r in rows} == {
        ("failed", None, "I think the video is fine.")
    }


def test_resume_after_a_crash(sqlite_url: str, clip_dir: Path) -> None:
    _add_videos(sqlite_url, clip_dir)

    def crash_after_first_batch(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with ChatServer(fixed(ANSWER)) as srv:
        opts = {"backend": "openai", "base_url": srv.base_url, "model": "m"}
        with pytest.raises(KeyboardInterrupt):
            score_pool(sqlite_url, "vqr1", options=opts, batch_size=2, progress=crash_after_first_batch)
        assert len(_predictions(sqlite_url)) == 2 and len(srv.requests) == 2
        rep = score_pool(sqlite_url, "vqr1", options=opts, batch_size=2)
        assert (rep.skipped, rep.scored) == (2, 2) and len(srv.requests) == 4
    assert len(_predictions(sqlite_url)) == 4


def test_pairwise_scoring_with_anchors(db_url: str, clip_dir: Path) -> None:
    ids = _add_videos(db_url, clip_dir, prompts={2: "winner"})

    def judge(body: dict, i: int) -> Reply:
        text = str(body["messages"][1]["content"])
        oa = 1 if "Prompt: winner" in text else 2
        return Reply(f"<Answer>TA={oa}, VQ={oa}, MQ=0, OA={oa}</Answer>")

    with ChatServer(judge) as srv:
        opts = {"backend": "openai", "base_url": srv.base_url, "model": "vrt", "image_side": 32}
        rep = score_pool(db_url, "vrthinker", options=opts, anchors=2, seed=1, batch_size=3)
        anchors = rep.anchors
        assert len(anchors) == 2 and set(anchors) <= set(ids)
        expected_pairs = len(anchor_pairs(ids, anchors))
        assert rep.pairs == expected_pairs == len(srv.requests)
        per_video = {r.video_id: r for r in _predictions(db_url, variant="")}
        assert set(per_video) == set(ids) and rep.scored == len(ids)
        winner = ids[2]
        for vid, r in per_video.items():
            assert r.parsed["method"] == "anchor_win_rate" and r.parsed["anchors"] == [
                a for a in anchors if a != vid
            ]
            assert r.score == (1.0 if vid == winner else 0.0)
            assert r.parsed["per_dimension"]["MQ"] == 0.5
        pair_rows = [r for r in _predictions(db_url) if r.variant]
        assert all(
            re.fullmatch(r"vs:\d+", r.variant) and r.pair_video_id == int(r.variant[3:]) for r in pair_rows
        )
        assert {r.score for r in pair_rows if r.video_id == winner} == {1.0}
        n = len(srv.requests)
        rep2 = score_pool(
            db_url, "vrthinker", options=opts, anchors=2, seed=99
        )  # anchors reused from the stored run
        assert rep2.skipped == len(ids) and len(srv.requests) == n


def test_anchor_helpers() -> None:
    assert choose_anchors([5, 3, 9, 1], 2, seed=0) == choose_anchors([1, 3, 5, 9], 2, seed=0)
    assert len(choose_anchors([1, 2], 5)) == 2 and choose_anchors([], 3) == []
    assert anchor_pairs([1, 2, 3], [2, 3]) == [(1, 2), (1, 3), (2, 3), (3, 2)]
    assert win_rate([1, 1, 0, 2, None]) == pytest.approx(2.5 / 4) and win_rate([None]) is None


def test_cli_score_with_server_and_tiny_vlm(
    sqlite_url: str,
    clip_dir: Path,
    tiny_qwen25vl_dir: Path,  # noqa: F811
) -> None:
    import json

    from typer.testing import CliRunner

    from mds.cli import app

    _add_videos(sqlite_url, clip_dir)
    runner = CliRunner()
    with ChatServer(fixed(ANSWER)) as srv:
        res = runner.invoke(
            app,
            [
                "--db",
                sqlite_url,
                "score",
                "-e",
                "vqr1",
                "--backend",
                "openai",
                "--base-url",
                srv.base_url,
                "--model",
                "served",
                "--limit",
                "3",
                "--json",
            ],
        )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert (rep["scored"], rep["ok"]) == (3, 3)
    tiny = tiny_qwen25vl_dir
    res = runner.invoke(
        app,
        [
            "--db",
            sqlite_url,
            "score",
            "--evaluator",
            "videoscore2",
            "--model",
            str(tiny),
            "-o",
            "max_new_tokens=4",
            "-o",
            f"max_pixels={112 * 112}",
            "-o",
            f"min_pixels={56 * 56}",
            "-b",
            "2",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "4 scored (0 ok, 4 parse failed, 0 errors)" in " ".join(res.stdout.split())
    rows = _predictions(sqlite_url, evaluator="videoscore2")
    assert len(rows) == 4 and all(
        r.parse_status in ("failed", "truncated", "missing_dims") and r.raw_output for r in rows
    )
    res = runner.invoke(app, ["--db", sqlite_url, "score", "--list", "--json"])
    assert {e["name"] for e in json.loads(res.stdout)} >= {
        "vqr1",
        "medea",
        "short-drama",
        "vrthinker",
        "videoscore2",
    }


@pytest.mark.parametrize("name", ["vqr1", "medea", "short-drama", "vrthinker", "videoscore2"])
def test_every_adapter_scores_a_generated_pool_with_a_tiny_vlm(
    name: str,
    sqlite_url: str,
    clip_dir: Path,
    tiny_qwen25vl_dir: Path,  # noqa: F811
    tiny_qwen3vl_dir: Path,  # noqa: F811
) -> None:
    """Tiny random VLMs through the real loading path: every video gets a stored row with the raw text kept."""
    ids = _add_videos(sqlite_url, clip_dir)
    model = tiny_qwen3vl_dir if name == "medea" else tiny_qwen25vl_dir
    opts = {
        "backend": "transformers",
        "model": str(model),
        "max_new_tokens": 4,
        "min_pixels": 56 * 56,
        "max_pixels": 112 * 112,
    }
    opts |= {
        "medea": {"short_side": 64},
        "short-drama": {"num_frames": 4},
        "vrthinker": {"image_side": 56, "max_turns": 2},
    }.get(name, {})
    rep = score_pool(sqlite_url, name, options=opts, batch_size=4, anchors=2)
    assert rep.scored == len(ids) and rep.errors == 0
    rows = _predictions(sqlite_url, variant="")
    assert [r.video_id for r in rows] == ids
    if name == "vrthinker":  # garbage answers: no usable comparison, so no win rate
        assert all(r.parse_status == "failed" and r.score is None for r in rows)
        assert len([r for r in _predictions(sqlite_url) if r.variant]) == rep.pairs == 6
    else:
        assert all(r.parse_status in ("failed", "truncated", "missing_dims") for r in rows)
        assert all(r.score is None and r.raw_output is not None for r in rows)  # "" when EOS came first


def test_checkpoint_id_is_recorded_and_changes_the_version(
    sqlite_url: str,
    clip_dir: Path,
    tmp_path: Path,
    tiny_qwen25vl_dir: Path,  # noqa: F811
) -> None:
    """A fine-tuned checkpoint (a peft adapter on the tiny VLM) is scored as its own version, id recorded."""
    import torch
    from peft import LoraConfig, get_peft_model

    from mds.db.engine import session_scope
    from mds.db.models import Checkpoint
    from mds.evaluators.backends.transformers_vlm import load_vlm

    model, _ = load_vlm(tiny_qwen25vl_dir)
    torch.manual_seed(0)
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(tmp_path / "adapter")
    _add_videos(sqlite_url, clip_dir)
    with session_scope(sqlite_url) as s:
        ck = Checkpoint(
            kind="finetuned", name="vqr1-r1", version="1", evaluator="vqr1", path=str(tmp_path / "adapter")
        )
        s.add(ck)
        s.flush()
        ck_id = ck.id
    opts = {
        "model": str(tiny_qwen25vl_dir),
        "max_new_tokens": 3,
        "min_pixels": 56 * 56,
        "max_pixels": 112 * 112,
    }
    base = score_pool(sqlite_url, "vqr1", options=opts, limit=1)
    tuned = score_pool(sqlite_url, "vqr1", options=opts, checkpoint_id=ck_id, limit=1)
    assert tuned.evaluator_version != base.evaluator_version and "+" in tuned.evaluator_version
    (row,) = _predictions(sqlite_url, evaluator_version=tuned.evaluator_version)
    assert row.checkpoint_id == ck_id and row.parsed["model_id"].endswith("/adapter")
    assert row.gen_params["backend"]["adapter"] == str(tmp_path / "adapter")
    with pytest.raises(Exception, match="no checkpoint with id 999"):
        score_pool(sqlite_url, "vqr1", options=opts, checkpoint_id=999)
    with pytest.raises(Exception, match="cannot attach a LoRA adapter"):
        score_pool(
            sqlite_url,
            "vqr1",
            options={"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
            checkpoint_id=ck_id,
        )
