"""List, show, stats and remove on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from mds.db.engine import session_scope
from mds.db.models import DifficultyScore, Label, Prediction, Round, Selection, Video
from mds.errors import PoolError
from mds.pool import (
    add_paths,
    count_videos,
    get_video,
    import_manifest,
    list_ingest_errors,
    list_videos,
    pool_stats,
    remove_videos,
)
from tests.fixtures.clips import write_clip


@pytest.fixture
def pool(db_url: str, tmp_path: Path) -> str:
    """Two probed clips (one in a sub-folder with the same name) and three metadata-only rows."""
    write_clip(tmp_path / "a" / "same.mp4", seed=1)
    write_clip(tmp_path / "b" / "same.mp4", seed=2)
    (tmp_path / "a" / "junk.mp4").write_bytes(b"junk")
    add_paths(db_url, [tmp_path / "a", tmp_path / "b"], dataset="local")
    m = tmp_path / "m.csv"
    m.write_text(
        "path,name,split,dataset,mos,pred_q\n"
        "/x/s1.mp4,SDR_Animal_01.mp4,source,sdr,3.5,3.0\n"
        "/x/s2.mp4,SDR_Sports_02.mp4,test,sdr,2.0,\n"
        "/x/p3.mp4,SDR_Sports_03.mp4,pool,sdr,,2.0\n"
    )
    import_manifest(db_url, m, probe=False)
    return db_url


def test_list_and_count(pool: str) -> None:
    rows = list_videos(pool)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows) and len(rows) == 5
    assert {r["name"] for r in list_videos(pool, dataset="sdr")} == {
        "SDR_Animal_01.mp4", "SDR_Sports_02.mp4", "SDR_Sports_03.mp4"}  # fmt: skip
    assert [r["name"] for r in list_videos(pool, split="test")] == ["SDR_Sports_02.mp4"]
    assert {r["name"] for r in list_videos(pool, labelled=True)} == {"SDR_Animal_01.mp4", "SDR_Sports_02.mp4"}
    assert len(list_videos(pool, labelled=False)) == 3
    assert len(list_videos(pool, search="Sports")) == 2
    assert len(list_videos(pool, probed=True)) == 2
    assert len(list_videos(pool, limit=2, offset=4)) == 1
    assert count_videos(pool, dataset="sdr", labelled=True) == 2
    with pytest.raises(PoolError, match="unknown split"):
        list_videos(pool, split="train")


def test_get_video_by_id_uri_name(pool: str) -> None:
    v = get_video(pool, "SDR_Animal_01.mp4")
    assert v["uri"] == "/x/s1.mp4" and v["split"] == "source"
    assert v["labels"][0]["mos"] == 3.5 and v["labels"][0]["source"] == "manifest"
    assert v["predictions"] == [
        {"evaluator": "import:q", "version": "external", "variant": "", "score": 3.0, "parse_status": "ok"}
    ]
    assert get_video(pool, v["id"])["name"] == "SDR_Animal_01.mp4"
    assert get_video(pool, str(v["id"]))["uri"] == "/x/s1.mp4"
    assert get_video(pool, "/x/s1.mp4")["id"] == v["id"]
    with pytest.raises(PoolError, match="ambiguous"):
        get_video(pool, "same.mp4")
    with pytest.raises(PoolError, match="no video"):
        get_video(pool, "nope.mp4")
    with pytest.raises(PoolError, match="no video with id"):
        get_video(pool, 9999)


def test_pool_stats(pool: str) -> None:
    st = pool_stats(pool)
    assert st["videos"] == 5 and st["probed"] == 2 and st["labelled"] == 2
    assert st["by_split"] == {"pool": 3, "source": 1, "test": 1}
    assert st["by_dataset"] == {"local": 2, "sdr": 3}
    assert st["codecs"] == {"h264": 2} and st["total_duration_s"] == pytest.approx(2.0)
    assert st["predictions"] == {"import:q": 2}
    assert st["ingest_errors"] == {"unreadable": 1}
    errs = list_ingest_errors(pool)
    assert len(errs) == 1 and errs[0]["source"].endswith("junk.mp4") and errs[0]["error_type"] == "unreadable"


def test_remove_cascades_and_keeps_round_videos(pool: str) -> None:
    ids = {r["name"]: r["id"] for r in list_videos(pool, dataset="sdr")}
    with session_scope(pool) as s:
        s.add(DifficultyScore(video_id=ids["SDR_Animal_01.mp4"], predictor="g@1", score=0.5))
        r = Round(number=1, strategy="mds", budget=1)
        s.add(r)
        s.flush()
        s.add(Selection(round_id=r.id, video_id=ids["SDR_Sports_02.mp4"], pick_order=0))
    with pytest.raises(PoolError, match="nothing to remove"):
        remove_videos(pool)
    with pytest.raises(PoolError, match="no video"):
        remove_videos(pool, ["SDR_Animal_01.mp4", "typo.mp4"])
    assert count_videos(pool) == 5  # an unknown ref removes nothing
    dry = remove_videos(pool, dataset="sdr", dry_run=True)
    assert sorted(dry.removed) == sorted([ids["SDR_Animal_01.mp4"], ids["SDR_Sports_03.mp4"]])
    assert count_videos(pool) == 5
    res = remove_videos(pool, dataset="sdr")
    assert res.removed == dry.removed
    assert res.skipped == [{"id": ids["SDR_Sports_02.mp4"], "name": "SDR_Sports_02.mp4", "reason": "selected in a round"}]
    with session_scope(pool) as s:
        left = set(s.scalars(select(Video.name)))
        assert left == {"same.mp4", "SDR_Sports_02.mp4"}
        assert s.scalar(select(func.count(DifficultyScore.id))) == 0
        assert set(s.scalars(select(Label.video_id))) == {ids["SDR_Sports_02.mp4"]}
        assert s.scalar(select(func.count(Prediction.id))) == 0
