"""Write ingest candidates to the pool in batches (one transaction per batch).

Identity rules: a probed local file is identified by its sha256 first (a moved
file keeps its ``video_id``), then by its ``uri``; URLs and metadata-only
entries are identified by ``uri``. Rows are written with Core bulk statements
(many rows per statement), so a 100k-row manifest takes seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, DateTime, insert, select, update

from mds.db.models import IngestError, Label, Prediction, Video
from mds.pool.summary import IngestSummary

# SQLite allows 32766 bound parameters per statement; stay well below for IN (...) lookups.
_IN_CHUNK = 2000


_PROBE_FIELDS = ("size_bytes", "container", "codec", "width", "height", "fps", "frame_count", "duration_s")


@dataclass
class Candidate:
    """One video to put into the pool (from a file argument or a manifest row)."""

    source: str  # for error messages: path or "manifest.csv:17"
    uri: str
    name: str
    dataset: str | None = None  # None: "default" for new videos, unchanged for known ones
    split: str | None = None  # None: "pool" for new videos, unchanged for known ones
    meta: dict[str, Any] | None = None  # merged into the stored meta
    name_explicit: bool = False
    label: dict[str, Any] | None = None  # mos, std, n_ratings, scale_min, scale_max
    predictions: dict[str, float] = field(default_factory=dict)  # evaluator -> score
    content_hash: str | None = None
    probe: dict[str, Any] | None = None  # ProbeResult fields when probed now


@dataclass
class BatchWriter:
    """Holds per-run state (duplicates across batches) and writes one batch at a time."""

    summary: IngestSummary
    default_dataset: str = "default"
    default_split: str = "pool"
    label_source: str = "manifest"
    prediction_version: str = "external"
    seen_hash: dict[str, str] = field(default_factory=dict)

    def snapshot(self) -> tuple:
        """Counters and run state, to undo a transaction that was rolled back."""
        s = self.summary
        return (s.added, s.unchanged, s.updated, s.moved, s.failed, s.labels_written, s.predictions_written,
                len(s.errors), dict(self.seen_hash))  # fmt: skip

    def restore(self, state: tuple) -> None:
        s = self.summary
        (s.added, s.unchanged, s.updated, s.moved, s.failed, s.labels_written, s.predictions_written, n,
         self.seen_hash) = state  # fmt: skip
        del s.errors[n:]

    def write(self, conn: Connection, batch: list[Candidate], errors: list[tuple[str, str, str]]) -> None:
        """Write ``batch`` plus the batch's ``errors`` ``(source, type, reason)`` in the caller's transaction."""
        s = self.summary
        batch = [c for c in batch if not self._duplicate_content(c, errors)]
        by_uri = _fetch(conn, Video.uri, [c.uri for c in batch])
        by_hash = _fetch(conn, Video.content_hash, [c.content_hash for c in batch if c.content_hash])

        new_rows: list[dict[str, Any]] = []
        new_cands: list[Candidate] = []
        status: dict[int, str] = {}  # id(candidate) -> added/unchanged/updated/moved
        known: list[tuple[Candidate, int]] = []
        for c in batch:
            row = by_hash.get(c.content_hash) if c.content_hash else None
            uri_row = by_uri.get(c.uri)
            if row is None:
                row = uri_row
            elif uri_row is not None and uri_row["id"] != row["id"]:
                reason = (
                    f"same content as video {row['id']} ({row['uri']}) but the path belongs to video "
                    f"{uri_row['id']}; remove one of them first"
                )
                errors.append((c.source, "conflict", reason))
                continue
            if row is None:
                new_rows.append(self._new_row(c))
                new_cands.append(c)
                status[id(c)] = "added"
                continue
            changes = self._changes(row, c)
            moved = row["uri"] != c.uri
            if changes:
                conn.execute(update(Video).where(Video.id == row["id"]).values(**changes))
                if moved:  # keep lookups right for later rows of this batch
                    by_uri.pop(row["uri"], None)
                    by_uri[c.uri] = row
                row.update(changes)
            status[id(c)] = "moved" if moved else ("updated" if changes else "unchanged")
            known.append((c, row["id"]))

        ids: dict[int, int] = {}
        if new_rows:
            _bulk_insert(conn, Video, new_rows)
            got = _fetch(conn, Video.uri, [c.uri for c in new_cands], cols=(Video.id, Video.uri))
            for c in new_cands:
                ids[id(c)] = got[c.uri]["id"]
        for c, vid in known:
            ids[id(c)] = vid

        touched = self._write_labels(conn, batch, ids) | self._write_predictions(conn, batch, ids)
        for c in batch:
            st = status.get(id(c))
            if st is None:
                continue
            if st == "unchanged" and id(c) in touched:
                st = "updated"
            setattr(s, st, getattr(s, st) + 1)

        if errors:
            conn.execute(
                insert(IngestError),
                [{"source": src[:2048], "error_type": et, "reason": r, "run_id": s.run_id} for src, et, r in errors],
            )
            for src, et, r in errors:
                s.record_error(src, et, r)

    def _duplicate_content(self, c: Candidate, errors: list[tuple[str, str, str]]) -> bool:
        if not c.content_hash:
            return False
        first = self.seen_hash.get(c.content_hash)
        if first is not None and first != c.uri:
            errors.append((c.source, "duplicate_content", f"same content (sha256) as {first} in this run"))
            return True
        self.seen_hash[c.content_hash] = c.uri
        return False

    def _new_row(self, c: Candidate) -> dict[str, Any]:
        row: dict[str, Any] = {
            "uri": c.uri,
            "name": c.name[:512],
            "content_hash": c.content_hash,
            "dataset": c.dataset or self.default_dataset,
            "split": c.split or self.default_split,
            "meta": dict(c.meta or {}),
            "probed": c.probe is not None,
        }
        for f in _PROBE_FIELDS:
            row[f] = (c.probe or {}).get(f)
        return row

    def _changes(self, row: dict[str, Any], c: Candidate) -> dict[str, Any]:
        ch: dict[str, Any] = {}
        if row["uri"] != c.uri:
            ch["uri"] = c.uri
            if not c.name_explicit:
                ch["name"] = c.name[:512]
        if c.name_explicit and row["name"] != c.name:
            ch["name"] = c.name[:512]
        if c.content_hash and row["content_hash"] != c.content_hash:
            ch["content_hash"] = c.content_hash
        if c.probe is not None:
            for f in _PROBE_FIELDS:
                if row[f] != c.probe.get(f):
                    ch[f] = c.probe.get(f)
            if not row["probed"]:
                ch["probed"] = True
        if c.dataset and row["dataset"] != c.dataset:
            ch["dataset"] = c.dataset
        if c.split and row["split"] != c.split:
            ch["split"] = c.split
        if c.meta:
            merged = {**(row["meta"] or {}), **c.meta}
            if merged != (row["meta"] or {}):
                ch["meta"] = merged
        return ch

    def _write_labels(self, conn: Connection, batch: list[Candidate], ids: dict[int, int]) -> set[int]:
        want = {ids[id(c)]: (c, c.label) for c in batch if c.label is not None and id(c) in ids}
        if not want:
            return set()
        existing: dict[int, dict] = {}
        for chunk in _chunks(list(want)):
            q = select(Label.id, Label.video_id, Label.mos, Label.std, Label.n_ratings, Label.ci95,
                       Label.scale_min, Label.scale_max).where(_in(conn, Label.video_id, chunk), Label.source == self.label_source)  # fmt: skip
            for r in conn.execute(q).mappings():
                existing[r["video_id"]] = dict(r)
        new, touched = [], set()
        for vid, (c, lab) in want.items():
            values = {k: lab.get(k) for k in ("mos", "std", "n_ratings", "ci95", "scale_min", "scale_max")}
            old = existing.get(vid)
            if old is None:
                new.append({"video_id": vid, "source": self.label_source, "kind": "scalar", **values})
                touched.add(id(c))
            elif any(old[k] != v for k, v in values.items()):
                conn.execute(update(Label).where(Label.id == old["id"]).values(**values))
                touched.add(id(c))
        if new:
            _bulk_insert(conn, Label, new, value={})
        self.summary.labels_written += len(touched)
        return touched

    def _write_predictions(self, conn: Connection, batch: list[Candidate], ids: dict[int, int]) -> set[int]:
        want = [(ids[id(c)], c) for c in batch if c.predictions and id(c) in ids]
        if not want:
            return set()
        evaluators = sorted({f"import:{n}" for _, c in want for n in c.predictions})
        existing: dict[tuple[int, str], dict] = {}
        for chunk in _chunks([v for v, _ in want]):
            q = select(Prediction.id, Prediction.video_id, Prediction.evaluator, Prediction.score).where(
                _in(conn, Prediction.video_id, chunk),
                Prediction.evaluator.in_(evaluators),
                Prediction.evaluator_version == self.prediction_version,
                Prediction.variant == "",
            )
            for r in conn.execute(q).mappings():
                existing[(r["video_id"], r["evaluator"])] = dict(r)
        new, touched = [], set()
        for vid, c in want:
            for name, score in c.predictions.items():
                ev = f"import:{name}"
                old = existing.get((vid, ev))
                if old is None:
                    new.append(
                        {"video_id": vid, "evaluator": ev, "evaluator_version": self.prediction_version,
                         "variant": "", "score": score, "parsed": {"score": score}, "raw_output": None,
                         "parse_status": "ok", "n_samples": 1}
                    )  # fmt: skip
                    touched.add(id(c))
                    self.summary.predictions_written += 1
                elif old["score"] != score:
                    conn.execute(
                        update(Prediction).where(Prediction.id == old["id"]).values(score=score, parsed={"score": score})
                    )
                    touched.add(id(c))
                    self.summary.predictions_written += 1
        if new:
            _bulk_insert(conn, Prediction, new, gen_params={}, preproc={})
        return touched


_VIDEO_COLS = (Video.id, Video.uri, Video.name, Video.content_hash, Video.dataset, Video.split, Video.meta,
               Video.probed, Video.updated_at, *(getattr(Video, f) for f in _PROBE_FIELDS))  # fmt: skip


def _chunks(items: list, n: int = _IN_CHUNK):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _in(conn: Connection, col, values: list):
    """``col IN (values)``. (``= ANY(array)`` was tried on PostgreSQL: right after a bulk load the
    planner has no statistics and scans the table per query, several times slower.)"""
    return col.in_(values)


def _fetch(conn: Connection, key, values: list, cols=_VIDEO_COLS) -> dict[Any, dict[str, Any]]:
    """Rows of ``videos`` whose ``key`` column is in ``values``, keyed by that column's value."""
    out: dict[Any, dict[str, Any]] = {}
    values = list(dict.fromkeys(v for v in values if v is not None))
    for chunk in _chunks(values):
        for r in conn.execute(select(*cols).where(_in(conn, key, chunk))).mappings():
            d = dict(r)
            out[d[key.key]] = d
    return out


def _is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _bulk_insert(conn: Connection, model: type, rows: list[dict[str, Any]], **constants: Any) -> None:
    """Insert many rows in the connection's transaction, by the backend's fastest path.

    PostgreSQL: ``COPY ... FROM STDIN`` (row-by-row executemany is slow there, and
    multi-row INSERTs with thousands of parameters are slow to prepare client-side).
    SQLite: the driver's ``executemany`` on one prepared INSERT. Both bypass the ORM's
    per-row parameter processing, so values are converted here: the columns' Python
    defaults are applied, JSON is serialised, timestamps use SQLAlchemy's storage
    format. ``constants`` are values shared by every row.
    """
    if not rows:
        return
    table = model.__table__
    given = set(rows[0]) | set(constants)
    columns = [c for c in table.columns if c.name in given or (c.default is not None and not c.primary_key)]
    names = [c.name for c in columns]
    pg = _is_postgres(conn)
    now = datetime.now(UTC)
    stamp: Any = now if pg else now.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    fixed: dict[str, Any] = {}
    for col in columns:
        if col.name in constants:
            fixed[col.name] = _convert(col, constants[col.name], pg)
        elif col.default is not None and col.name not in rows[0]:
            arg = col.default.arg
            value = (now if isinstance(col.type, DateTime) else arg(None)) if callable(arg) else arg
            fixed[col.name] = stamp if isinstance(col.type, DateTime) else _convert(col, value, pg)
    per_row = [c for c in columns if c.name not in fixed]
    json_cols = {c.name for c in per_row if isinstance(c.type, JSON)}
    bool_cols = set() if pg else {c.name for c in per_row if isinstance(c.type, Boolean)}

    def tuples():
        for r in rows:
            out = []
            for c in columns:
                n = c.name
                if n in fixed:
                    out.append(fixed[n])
                    continue
                v = r.get(n)
                if v is not None:
                    if n in json_cols:
                        v = json.dumps(v)
                    elif n in bool_cols:
                        v = int(v)
                out.append(v)
            yield out

    raw = conn.connection.driver_connection
    quoted = ", ".join(conn.dialect.identifier_preparer.quote(n) for n in names)
    if pg:
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({quoted}) FROM STDIN") as copy:
            for row in tuples():
                copy.write_row(row)
    else:
        marks = ", ".join("?" for _ in names)
        raw.cursor().executemany(f"INSERT INTO {table.name} ({quoted}) VALUES ({marks})", tuples())


def _convert(col, value: Any, pg: bool) -> Any:
    if value is None:
        return None
    if isinstance(col.type, JSON):
        return json.dumps(value)
    if isinstance(col.type, Boolean) and not pg:
        return int(value)
    return value
