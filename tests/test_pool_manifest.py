"""`mds.pool.import_manifest`: CSV, JSONL and Parquet manifests on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from mds.db.engine import session_scope
from mds.db.models import IngestError, Label, Prediction, Video
from mds.errors import PoolError
from mds.pool import add_paths, import_manifest
from mds.pool.writer import BatchWriter
from tests.fixtures.bad_videos import write_bad_files
from tests.fixtures.clips import write_clip


def write_manifest(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` as CSV, JSONL or Parquet according to the suffix."""
    if path.suffix == ".csv":
        cols = list(dict.fromkeys(k for r in rows for k in r))
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for r in rows:
                w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _state(url: str) -> tuple[dict[str, Video], dict[int, Label], dict[tuple[int, str], Prediction]]:
    with session_scope(url) as s:
        videos = {v.uri: v for v in s.scalars(select(Video))}
        labels = {lab.video_id: lab for lab in s.scalars(select(Label))}
        preds = {(p.video_id, p.evaluator): p for p in s.scalars(select(Prediction))}
    return videos, labels, preds


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_manifest_with_metadata_labels_predictions(db_url: str, tmp_path: Path, fmt: str) -> None:
    clips = [write_clip(tmp_path / "clips" / f"c{i}.mp4", seed=i) for i in range(3)]
    rows = [
        {"path": "clips/c0.mp4", "title": "a cat", "tags": ["pet", "cat"], "mos": 3.25, "mos_std": 0.5,
         "n_ratings": 12, "scale_min": 1, "scale_max": 5, "split": "source", "dataset": "ugc",
         "pred_vqr1": 3.0, "prompt": "a cat on a sofa"},
        {"path": str(clips[1]), "title": "a dog", "tags": ["pet"], "mos": None, "mos_std": None,
         "n_ratings": None, "scale_min": None, "scale_max": None, "split": "test", "dataset": None,
         "pred_vqr1": 2.5, "prompt": None},
        {"path": "https://cdn.example.org/v/remote%20clip.mp4?sig=1", "title": "remote", "tags": [],
         "mos": 4.0, "mos_std": None, "n_ratings": None, "scale_min": None, "scale_max": None, "split": None,
         "dataset": "web", "pred_vqr1": None, "prompt": None},
    ]  # fmt: skip
    m = write_manifest(tmp_path / f"m.{fmt}", rows)
    s = import_manifest(db_url, m, dataset="sdr")
    assert (s.added, s.failed) == (3, 0), s.errors
    videos, labels, preds = _state(db_url)
    v0 = videos[str(clips[0])]
    assert v0.probed and v0.codec == "h264" and (v0.split, v0.dataset) == ("source", "ugc")
    assert v0.meta == {"title": "a cat", "tags": ["pet", "cat"], "prompt": "a cat on a sofa"}
    lab = labels[v0.id]
    assert (lab.source, lab.kind, lab.mos, lab.std, lab.n_ratings, lab.scale_min, lab.scale_max) == (
        "manifest", "scalar", 3.25, 0.5, 12, 1.0, 5.0)  # fmt: skip
    p = preds[(v0.id, "import:vqr1")]
    assert (p.score, p.parse_status, p.evaluator_version) == (3.0, "ok", "external")
    assert (p.parsed, p.gen_params, p.preproc, lab.value) == ({"score": 3.0}, {}, {}, {})
    v1 = videos[str(clips[1])]
    assert (v1.split, v1.dataset) == ("test", "sdr") and v1.id not in labels
    url = rows[2]["path"]
    v2 = videos[url]
    assert not v2.probed and v2.content_hash is None and v2.name == "remote clip.mp4"
    assert labels[v2.id].mos == 4.0 and v2.split == "pool" and v2.dataset == "web"

    again = import_manifest(db_url, m, dataset="sdr")
    assert (again.added, again.unchanged, again.updated, again.failed) == (0, 3, 0, 0)


def test_reimport_with_new_values_updates(db_url: str, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "a.mp4")
    m = write_manifest(tmp_path / "m.csv", [{"path": "a.mp4", "mos": 2.0, "pred_x": 1.0, "title": "t"}])
    import_manifest(db_url, m)
    write_manifest(m, [{"path": "a.mp4", "mos": 2.5, "pred_x": 1.5, "title": "t2", "asr": "hello"}])
    s = import_manifest(db_url, m)
    assert (s.added, s.updated) == (0, 1)
    videos, labels, preds = _state(db_url)
    v = videos[str(clip)]
    assert v.meta == {"title": "t2", "asr": "hello"} and labels[v.id].mos == 2.5
    assert preds[(v.id, "import:x")].score == 1.5 and len(preds) == 1 and len(labels) == 1


def test_manifest_matches_files_added_before(db_url: str, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "a.mp4")
    add_paths(db_url, [clip])
    m = write_manifest(tmp_path / "m.jsonl", [{"path": str(clip), "category": "Animal", "mos": 3.0}])
    s = import_manifest(db_url, m)
    assert s.updated == 1
    videos, labels, _ = _state(db_url)
    assert len(videos) == 1 and videos[str(clip)].meta == {"category": "Animal"}
    assert labels[videos[str(clip)].id].mos == 3.0


def test_no_probe_is_metadata_only(db_url: str, tmp_path: Path) -> None:
    rows = [{"path": f"/data/nowhere/v{i}.mp4", "mos": 1 + i / 10, "split": "pool"} for i in range(30)]
    m = write_manifest(tmp_path / "m.parquet", rows)
    s = import_manifest(db_url, m, probe=False, batch_size=7)
    assert (s.added, s.failed, s.labels_written) == (30, 0, 30)
    videos, labels, _ = _state(db_url)
    assert all(not v.probed and v.content_hash is None for v in videos.values())
    assert sorted(lab.mos for lab in labels.values()) == pytest.approx([1 + i / 10 for i in range(30)])


def test_bad_rows_are_recorded_and_the_rest_imported(db_url: str, tmp_path: Path) -> None:
    ok = [write_clip(tmp_path / f"ok{i}.mp4", seed=i) for i in range(2)]
    bad = write_bad_files(tmp_path / "bad")
    lines = [
        "path,mos,split,title",
        "ok0.mp4,3.1,pool,fine",  # 2
        "ok1.mp4,abc,pool,bad mos",  # 3
        ",2.0,pool,no path",  # 4
        "ok1.mp4,2.0,train,bad split",  # 5
        "ok1.mp4,9.5,pool,fine",  # 6 ok: no scale given
        "ok0.mp4,3.1,pool,duplicate",  # 7
        "missing.mp4,3.0,pool,missing file",  # 8
        f"{bad['unreadable']},3.0,pool,random bytes",  # 9
        f"{bad['truncated']},3.0,pool,truncated",  # 10
        "ok1.mp4,1,pool,x,extra,fields",  # 11
        "https://example.org/a.mp4,nan,pool,nan mos",  # 12
    ]
    m = tmp_path / "m.csv"
    m.write_text("\n".join(lines) + "\n")
    s = import_manifest(db_url, m, batch_size=4)
    got = {e.source: e.error_type for e in s.errors}
    assert got == {
        "m.csv:3": "bad_value", "m.csv:4": "missing_path", "m.csv:5": "bad_split", "m.csv:7": "duplicate_row",
        "m.csv:8": "missing_path", "m.csv:9": "unreadable", "m.csv:10": "truncated", "m.csv:11": "malformed_row",
        "m.csv:12": "bad_value",
    }  # fmt: skip
    assert (s.added, s.failed) == (2, 9)
    videos, labels, _ = _state(db_url)
    assert set(videos) == {str(p) for p in ok}
    assert labels[videos[str(ok[1])].id].mos == 9.5
    with session_scope(db_url) as ses:
        assert ses.query(IngestError).filter_by(run_id=s.run_id).count() == 9


def test_bad_label_values(db_url: str, tmp_path: Path) -> None:
    rows = [
        {"path": "/x/a.mp4", "mos": 6, "scale_min": 1, "scale_max": 5},
        {"path": "/x/b.mp4", "mos": 3, "n_ratings": 2.5},
        {"path": "/x/c.mp4", "mos": 3, "mos_std": -1},
        {"path": "/x/d.mp4", "mos_std": 0.3},
        {"path": "/x/e.mp4", "mos": 3, "pred_q": "high"},
        {"path": "/x/f.mp4", "mos": 3, "scale_min": 1, "scale_max": 5, "n_ratings": 4, "pred_q": 2},
    ]
    s = import_manifest(db_url, write_manifest(tmp_path / "m.jsonl", rows), probe=False)
    assert s.added == 1 and s.failed == 5
    assert {e.error_type for e in s.errors} == {"bad_value"}
    reasons = " | ".join(e.reason for e in s.errors)
    for needle in ("outside the scale", "n_ratings", "negative", "without mos", "pred_q"):
        assert needle in reasons


def test_broken_jsonl_lines(db_url: str, tmp_path: Path) -> None:
    m = tmp_path / "m.jsonl"
    m.write_text(
        '{"path": "/x/a.mp4", "mos": 3}\n{"path": "/x/b.mp4", "mos": \n[1, 2]\n\n{"path": "/x/c.mp4"}\n'
        '{"uri": "/x/d.mp4"}\n'  # one path column per manifest: the first row chose "path"
    )
    s = import_manifest(db_url, m, probe=False)
    assert s.added == 2
    assert [(e.source, e.error_type) for e in s.errors] == [
        ("m.jsonl:2", "bad_json"), ("m.jsonl:3", "bad_json"), ("m.jsonl:6", "missing_path")]  # fmt: skip


def test_unreadable_manifests_raise_one_line_errors(db_url: str, tmp_path: Path) -> None:
    with pytest.raises(PoolError, match="manifest not found"):
        import_manifest(db_url, tmp_path / "absent.csv")
    (tmp_path / "m.xlsx").write_text("x")
    with pytest.raises(PoolError, match="unknown manifest type"):
        import_manifest(db_url, tmp_path / "m.xlsx")
    write_manifest(tmp_path / "nopath.csv", [{"title": "a", "mos": 1}])
    with pytest.raises(PoolError, match="no path column"):
        import_manifest(db_url, tmp_path / "nopath.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(PoolError, match="empty manifest"):
        import_manifest(db_url, tmp_path / "empty.csv")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(PoolError, match="cannot read manifest"):
        import_manifest(db_url, tmp_path / "broken.parquet")
    write_manifest(tmp_path / "custom.csv", [{"clip": "/x/a.mp4"}])
    assert import_manifest(db_url, tmp_path / "custom.csv", path_column="clip", probe=False).added == 1


def test_manifest_crash_midway_resumes(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"path": f"/x/v{i}.mp4", "mos": 3.0, "pred_a": float(i)} for i in range(35)]
    m = write_manifest(tmp_path / "m.csv", rows)
    real_write = BatchWriter.write
    calls = {"n": 0}

    def failing_write(self, conn, batch, errors):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash in batch 3")
        real_write(self, conn, batch, errors)

    monkeypatch.setattr(BatchWriter, "write", failing_write)
    with pytest.raises(RuntimeError):
        import_manifest(db_url, m, probe=False, batch_size=10)
    videos, labels, preds = _state(db_url)
    assert len(videos) == len(labels) == len(preds) == 20
    monkeypatch.setattr(BatchWriter, "write", real_write)
    s = import_manifest(db_url, m, probe=False, batch_size=10)
    assert (s.added, s.unchanged) == (15, 20)
    videos, labels, preds = _state(db_url)
    assert len(videos) == len(labels) == len(preds) == 35


def test_add_fills_in_metadata_only_rows(db_url: str, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "a.mp4")
    m = write_manifest(tmp_path / "m.csv", [{"path": "a.mp4", "title": "t", "mos": 2.0}])
    import_manifest(db_url, m, probe=False)
    before = _state(db_url)[0][str(clip)]
    assert not before.probed and before.content_hash is None
    s = add_paths(db_url, [clip])
    assert s.updated == 1
    videos, labels, _ = _state(db_url)
    after = videos[str(clip)]
    assert after.id == before.id and after.probed and after.codec == "h264" and len(after.content_hash) == 64
    assert after.meta == {"title": "t"} and labels[after.id].mos == 2.0


def test_content_and_path_owned_by_different_videos(db_url: str, tmp_path: Path) -> None:
    a = write_clip(tmp_path / "a.mp4", seed=1)
    write_clip(tmp_path / "b.mp4", seed=2)
    add_paths(db_url, [tmp_path])
    (tmp_path / "b.mp4").write_bytes(a.read_bytes())  # b now holds a's content
    s = add_paths(db_url, [tmp_path / "b.mp4"], rehash=True)
    assert s.failed == 1 and s.errors[0].error_type == "conflict"
    videos, _, _ = _state(db_url)
    assert len(videos) == 2 and videos[str(a)].content_hash != videos[str(tmp_path / "b.mp4")].content_hash


def test_values_the_database_rejects_fail_only_their_row(db_url: str, tmp_path: Path) -> None:
    rows = [{"path": f"/x/v{i}.mp4", "title": f"t{i}", "mos": 3.0} for i in range(6)]
    rows[2]["name"] = "nul\u0000inside"  # PostgreSQL text cannot hold NUL; SQLite can
    rows[4]["path"] = "/x/" + "long" * 600 + ".mp4"
    s = import_manifest(db_url, write_manifest(tmp_path / "m.jsonl", rows), probe=False, batch_size=10)
    types = {e.source: e.error_type for e in s.errors}
    assert types["m.jsonl:5"] == "bad_value"
    videos, labels, _ = _state(db_url)
    if db_url.startswith("postgresql"):
        assert types == {"m.jsonl:3": "db_error", "m.jsonl:5": "bad_value"}
        assert (s.added, s.failed) == (4, 2) and len(videos) == len(labels) == 4
    else:
        assert (s.added, s.failed) == (5, 1) and len(videos) == len(labels) == 5
    with session_scope(db_url) as ses:
        assert ses.query(IngestError).filter_by(run_id=s.run_id).count() == s.failed


def test_csv_cells_keep_their_type(db_url: str, tmp_path: Path) -> None:
    m = tmp_path / "m.csv"
    m.write_text('path,level,crf,clip_id,title,tags,ratio\n/x/a.mp4,0.25,23,007,2024,"[""a"", ""b""]",1e3\n')
    import_manifest(db_url, m, probe=False)
    v = _state(db_url)[0]["/x/a.mp4"]
    assert v.meta == {"level": 0.25, "crf": 23, "clip_id": "007", "title": 2024, "tags": ["a", "b"], "ratio": "1e3"}
