"""`mds.pool.add_paths` on real generated clips, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mds.db.engine import session_scope
from mds.db.models import IngestError, Video
from mds.errors import PoolError
from mds.pool import add_paths, discover
from mds.pool.writer import BatchWriter
from tests.fixtures.bad_videos import expected_type, write_bad_files
from tests.fixtures.clips import write_clip


def _videos(url: str) -> dict[str, Video]:
    with session_scope(url) as s:
        return {v.uri: v for v in s.scalars(select(Video))}


def _clips(folder: Path, n: int, start: int = 0, ext: str = "mp4") -> list[Path]:
    return [write_clip(folder / f"c{i}.{ext}", seed=i) for i in range(start, start + n)]


def test_discover_files_folders_globs(tmp_path: Path) -> None:
    a = _clips(tmp_path / "a", 2)
    b = write_clip(tmp_path / "a" / "deep" / "x.mkv", seed=9)
    (tmp_path / "a" / "notes.txt").write_text("not a video")
    files, missing = discover([tmp_path / "a", str(tmp_path / "a" / "*.mp4"), tmp_path / "nope", str(tmp_path / "z*")])
    assert files == [a[0], a[1], b]  # folder walked recursively, glob duplicates dropped, .txt ignored
    assert [m[0] for m in missing] == [str(tmp_path / "nope"), str(tmp_path / "z*")]
    files, _ = discover([str(tmp_path / "**" / "*.mkv")])
    assert files == [b]
    files, _ = discover([tmp_path / "a"], recursive=False)
    assert files == a


def test_add_folder_records_probe_facts(db_url: str, tmp_path: Path) -> None:
    clips = _clips(tmp_path / "v", 3)
    write_clip(tmp_path / "v" / "sub" / "d.mkv", seed=7, n=24)
    summary = add_paths(db_url, [tmp_path / "v"], dataset="ugc", meta={"batch": "one"})
    assert (summary.added, summary.unchanged, summary.failed) == (4, 0, 0)
    rows = _videos(db_url)
    assert set(rows) == {str(p) for p in clips} | {str(tmp_path / "v" / "sub" / "d.mkv")}
    v = rows[str(clips[0])]
    assert v.name == "c0.mp4" and v.codec == "h264" and (v.width, v.height) == (96, 64)
    assert v.fps == pytest.approx(16.0) and v.frame_count == 16 and v.duration_s == pytest.approx(1.0)
    assert v.probed and len(v.content_hash) == 64 and v.size_bytes == clips[0].stat().st_size
    assert (v.dataset, v.split, v.meta) == ("ugc", "pool", {"batch": "one"})
    assert rows[str(tmp_path / "v" / "sub" / "d.mkv")].frame_count == 24


def test_readding_changes_nothing(db_url: str, tmp_path: Path) -> None:
    _clips(tmp_path, 3)
    add_paths(db_url, [tmp_path])
    before = {u: (v.id, v.updated_at, v.content_hash) for u, v in _videos(db_url).items()}
    for rehash in (False, True):
        s = add_paths(db_url, [tmp_path], rehash=rehash)
        assert (s.added, s.unchanged, s.updated, s.moved, s.failed) == (0, 3, 0, 0, 0)
    after = {u: (v.id, v.updated_at, v.content_hash) for u, v in _videos(db_url).items()}
    assert after == before


def test_moved_file_is_recognised_by_hash(db_url: str, tmp_path: Path) -> None:
    c0, c1 = _clips(tmp_path / "old", 2)
    add_paths(db_url, [tmp_path / "old"])
    ids = {u: v.id for u, v in _videos(db_url).items()}
    # moved: old path gone
    new0 = tmp_path / "new" / "renamed.mp4"
    new0.parent.mkdir()
    shutil.move(c0, new0)
    s = add_paths(db_url, [new0])
    assert (s.added, s.moved, s.failed) == (0, 1, 0)
    rows = _videos(db_url)
    assert rows[str(new0)].id == ids[str(c0)] and rows[str(new0)].name == "renamed.mp4"
    assert str(c0) not in rows
    # copied: old path still there, the new location wins
    copy1 = tmp_path / "new" / "copy.mp4"
    shutil.copy(c1, copy1)
    s = add_paths(db_url, [copy1])
    assert s.moved == 1 and _videos(db_url)[str(copy1)].id == ids[str(c1)]
    with session_scope(db_url) as ses:
        assert ses.scalar(select(func.count(Video.id))) == 2


def test_changed_content_at_same_path_updates_row(db_url: str, tmp_path: Path) -> None:
    p = write_clip(tmp_path / "a.mp4", seed=1, n=16)
    add_paths(db_url, [p])
    old = _videos(db_url)[str(p)]
    write_clip(p, seed=2, n=32)
    future = time.time() + 5  # the file is newer than the row
    os.utime(p, (future, future))
    s = add_paths(db_url, [p])
    assert s.updated == 1
    new = _videos(db_url)[str(p)]
    assert new.id == old.id and new.content_hash != old.content_hash and new.frame_count == 32


def test_same_content_twice_in_one_run(db_url: str, tmp_path: Path) -> None:
    a = write_clip(tmp_path / "a.mp4", seed=3)
    shutil.copy(a, tmp_path / "b.mp4")
    s = add_paths(db_url, [tmp_path])
    assert (s.added, s.failed) == (1, 1)
    assert s.errors[0].error_type == "duplicate_content" and s.errors[0].source == str(tmp_path / "b.mp4")


def test_split_dataset_meta_apply_to_known_videos(db_url: str, tmp_path: Path) -> None:
    _clips(tmp_path, 2)
    add_paths(db_url, [tmp_path], meta={"a": 1})
    s = add_paths(db_url, [tmp_path], split="test", meta={"b": 2})
    assert s.updated == 2
    for v in _videos(db_url).values():
        assert v.split == "test" and v.dataset == "default" and v.meta == {"a": 1, "b": 2}
    with pytest.raises(PoolError, match="unknown split"):
        add_paths(db_url, [tmp_path], split="train")


def test_bad_inputs_are_recorded_and_the_run_goes_on(db_url: str, tmp_path: Path) -> None:
    good = _clips(tmp_path / "mix", 2)
    bad = write_bad_files(tmp_path / "mix")
    missing = tmp_path / "missing.mp4"
    s = add_paths(db_url, [tmp_path / "mix", missing, bad["no_video_stream"]], batch_size=3)
    assert (s.added, s.failed) == (2, len(bad) + 1)
    got = {e.source: e.error_type for e in s.errors}
    assert got[str(missing)] == "missing_path"
    for key, path in bad.items():
        assert got[str(path)] == expected_type(key), key
    assert all(e.reason for e in s.errors)
    assert set(_videos(db_url)) == {str(p) for p in good}
    with session_scope(db_url) as ses:
        stored = {e.source: (e.error_type, e.run_id) for e in ses.scalars(select(IngestError))}
    assert {k: v[0] for k, v in stored.items()} == got and {v[1] for v in stored.values()} == {s.run_id}
    assert s.exit_code() == 0 and s.exit_code(strict=True) == 1


def test_nothing_ingested_and_strict(db_url: str, tmp_path: Path) -> None:
    bad = write_bad_files(tmp_path / "bad")
    s = add_paths(db_url, [bad["unreadable"], bad["empty_file"]])
    assert s.ingested == 0 and s.failed == 2 and s.exit_code() == 1
    assert add_paths(db_url, [tmp_path / "nothing_here_*.mp4"]).exit_code() == 1
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    assert add_paths(db_url, [empty]).total == 0  # nothing to ingest is not a failure
    good = write_clip(tmp_path / "good.mp4")
    with pytest.raises(PoolError, match="strict") as ei:
        add_paths(db_url, [good, bad["unreadable"]], strict=True)
    assert ei.value.summary.added == 1  # type: ignore[attr-defined]
    assert str(good) in _videos(db_url)  # strict does not roll back what was ingested


def test_crash_loses_at_most_one_batch_and_rerun_resumes(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clips(tmp_path, 7)
    real_write = BatchWriter.write
    calls = {"n": 0}

    def failing_write(self, conn, batch, errors):
        calls["n"] += 1
        real_write(self, conn, batch, errors)
        if calls["n"] == 3:
            raise RuntimeError("simulated crash after the rows of batch 3 were written")

    monkeypatch.setattr(BatchWriter, "write", failing_write)
    with pytest.raises(RuntimeError, match="simulated crash"):
        add_paths(db_url, [tmp_path], batch_size=2)
    assert len(_videos(db_url)) == 4  # batches 1-2 committed, batch 3 rolled back
    monkeypatch.setattr(BatchWriter, "write", real_write)
    s = add_paths(db_url, [tmp_path], batch_size=2)
    assert (s.added, s.unchanged, s.failed) == (3, 4, 0)
    assert len(_videos(db_url)) == 7
