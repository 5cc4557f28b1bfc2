"""Import a manifest (CSV, JSONL or Parquet) of videos with metadata, MOS and external predictions.

Columns (names are case-insensitive):

* path column, required: the first of ``path``, ``uri``, ``url``, ``video_path``,
  ``file``, ``filename``, ``video`` (or ``path_column=``). Relative paths are
  resolved against the manifest's folder; ``http(s)://``, ``s3://`` and ``gs://``
  URLs are stored as given and never probed.
* ``name``: display name / external id (default: the file name).
* ``dataset``, ``split`` (``source`` | ``pool`` | ``test``).
* ``mos`` (+ ``mos_std`` or ``std``, ``n_ratings``, ``scale_min``, ``scale_max``,
  ``ci95``) → an aggregated :class:`~mds.db.models.Label` with source ``manifest``.
* ``pred_<name>`` → a :class:`~mds.db.models.Prediction` with evaluator
  ``import:<name>``, version ``prediction_version``, ``parse_status="ok"``.
* ``meta`` (JSONL/Parquet: an object) and every other column (title, tags, asr,
  category, prompt, ...) → ``Video.meta``. In CSV a cell that starts with ``[`` or
  ``{`` is read as JSON (e.g. ``["a","b"]`` for tags), and a number that reads back
  identically (``3``, ``0.25``; not ``007``) is stored as a number.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mds.db.models import SPLITS
from mds.errors import PoolError
from mds.pool.ingest import DEFAULT_BATCH, _finish, check_split, run_ingest
from mds.pool.summary import IngestSummary
from mds.pool.writer import BatchWriter, Candidate

PATH_COLUMNS = ("path", "uri", "url", "video_path", "file", "filename", "video")
URL_SCHEMES = ("http", "https", "s3", "gs")
PRED_PREFIX = "pred_"
_LABEL_COLUMNS = {"mos": "mos", "mos_std": "std", "std": "std", "n_ratings": "n_ratings",
                  "scale_min": "scale_min", "scale_max": "scale_max", "ci95": "ci95"}  # fmt: skip
_RESERVED = {"name", "dataset", "split", "meta", *_LABEL_COLUMNS}
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}

Row = tuple[str, dict[str, Any]]
Bad = tuple[str, str, str]


class RowError(Exception):
    def __init__(self, error_type: str, reason: str) -> None:
        super().__init__(reason)
        self.error_type = error_type
        self.reason = reason


def manifest_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise PoolError(f"{path}: unknown manifest type {path.suffix or '(none)'}; use .csv, .tsv, .jsonl or .parquet")
    return fmt


def read_manifest(path: str | Path) -> tuple[list[str], Iterator[Row | Bad]]:
    """Open a manifest: ``(columns, rows)`` where each row is ``(source, values)`` or a bad-row tuple.

    Raises :class:`PoolError` when the file cannot be read at all.
    """
    path = Path(path)
    fmt = manifest_format(path)
    if not path.is_file():
        raise PoolError(f"{path}: manifest not found")
    try:
        if fmt in ("csv", "tsv"):
            return _read_csv(path, "\t" if fmt == "tsv" else ",")
        if fmt == "jsonl":
            return _read_jsonl(path)
        return _read_parquet(path)
    except PoolError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as e:
        raise PoolError(f"{path}: cannot read manifest: {str(e).splitlines()[0] if str(e) else type(e).__name__}")


def _read_csv(path: Path, delimiter: str) -> tuple[list[str], Iterator[Row | Bad]]:
    f = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 (closed by the generator)
    reader = csv.reader(f, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        f.close()
        raise PoolError(f"{path}: empty manifest (no header row)") from None
    cols = [h.strip().lower() for h in header]

    def rows() -> Iterator[Row | Bad]:
        with f:
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as e:
                    yield (f"{path.name}:{reader.line_num}", "malformed_row", f"CSV error: {e}")
                    continue
                src = f"{path.name}:{reader.line_num}"
                if not values or all(not v.strip() for v in values):
                    continue
                if len(values) > len(cols):
                    yield (src, "malformed_row", f"{len(values)} fields for {len(cols)} columns")
                    continue
                yield (src, {c: _cell(v) for c, v in zip(cols, values, strict=False)})

    return cols, rows()


def _cell(v: str) -> Any:
    """A CSV cell: JSON for ``[``/``{``, a number when it reads back identically (``"0.25"``, not ``"007"``)."""
    v = v.strip()
    if v == "":
        return None
    first = v[0]
    if first in "[{":
        try:
            return json.loads(v)
        except ValueError:
            return v
    if first in _NUMBER_START:
        try:
            n = int(v)
            return n if str(n) == v else v
        except ValueError:
            pass
        try:
            x = float(v)
            return x if repr(x) == v else v
        except ValueError:
            return v
    return v


_NUMBER_START = frozenset("-0123456789.")


def _read_jsonl(path: Path) -> tuple[list[str], Iterator[Row | Bad]]:
    # Columns are the union of the first 1000 objects' keys (enough to find the path column).
    cols: dict[str, None] = {}
    with open(path, encoding="utf-8-sig") as f:
        for i, line in enumerate(f):
            if i >= 1000:
                break
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                cols.update(dict.fromkeys(str(k).strip().lower() for k in obj))

    def rows() -> Iterator[Row | Bad]:
        with open(path, encoding="utf-8-sig") as f:
            for n, line in enumerate(f, start=1):
                src = f"{path.name}:{n}"
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as e:
                    yield (src, "bad_json", f"not valid JSON: {e}")
                    continue
                if not isinstance(obj, dict):
                    yield (src, "bad_json", f"expected a JSON object, got {type(obj).__name__}")
                    continue
                yield (src, {str(k).strip().lower(): v for k, v in obj.items()})

    return list(cols), rows()


def _read_parquet(path: Path) -> tuple[list[str], Iterator[Row | Bad]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    names = list(pf.schema_arrow.names)
    cols = [n.strip().lower() for n in names]

    def rows() -> Iterator[Row | Bad]:
        n = 0
        for rb in pf.iter_batches(batch_size=10_000):
            for rec in rb.to_pylist():
                n += 1
                yield (f"{path.name}:row {n}", {k.strip().lower(): v for k, v in rec.items()})

    return cols, rows()


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if type(v) is str:
        return not v or v.isspace()
    return isinstance(v, float) and math.isnan(v)


def _number(v: Any, what: str, *, integer: bool = False) -> float | int:
    if isinstance(v, bool):
        raise RowError("bad_value", f"{what} {v!r} is not a number")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise RowError("bad_value", f"{what} {v!r} is not a number") from None
    if not math.isfinite(x):
        raise RowError("bad_value", f"{what} {v!r} is not a finite number")
    if integer:
        if x != int(x) or x < 0:
            raise RowError("bad_value", f"{what} {v!r} is not a count")
        return int(x)
    return x


def _jsonable(v: Any) -> Any:
    """Parquet/JSON values to plain JSON (numpy scalars, timestamps, bytes)."""
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    if isinstance(v, float):
        return None if math.isnan(v) else v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _location(raw: Any, base: str) -> tuple[str, str, bool]:
    """``(uri, name, is_url)`` of a path cell (plain string functions: this runs once per row)."""
    s = str(raw).strip()
    if "://" in s:
        parsed = urlparse(s)
        scheme = parsed.scheme.lower()
        if scheme in URL_SCHEMES and parsed.netloc:
            name = unquote(parsed.path.rstrip("/").rsplit("/", 1)[-1]) or parsed.netloc
            return s, name, True
        if scheme == "file":
            s = unquote(parsed.path)
    if s.startswith("~"):
        s = os.path.expanduser(s)
    p = os.path.normpath(s if os.path.isabs(s) else os.path.join(base, s))
    return p, os.path.basename(p), False


def row_to_candidate(
    source: str, values: dict[str, Any], *, path_col: str, base: str, dataset: str | None, split: str | None
) -> tuple[Candidate, bool]:
    """Validate one manifest row; returns ``(candidate, is_url)`` or raises :class:`RowError`."""
    raw = values.get(path_col)
    if _is_missing(raw):
        raise RowError("missing_path", f"no value in the path column {path_col!r}")
    uri, name, is_url = _location(raw, base)
    cand = Candidate(source=source, uri=uri, name=name, dataset=dataset, split=split)
    label: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for col, v in values.items():
        if col == path_col or _is_missing(v):
            continue
        key = _LABEL_COLUMNS.get(col)
        if key is not None:
            label[key] = _number(v, col, integer=(key == "n_ratings"))
        elif col.startswith(PRED_PREFIX):
            if len(col) > len(PRED_PREFIX):
                cand.predictions[col[len(PRED_PREFIX) :]] = float(_number(v, col))
        elif col not in _RESERVED:
            meta[col] = v if isinstance(v, str) else _jsonable(v)
        elif col == "name":
            cand.name, cand.name_explicit = str(v).strip(), True
        elif col == "dataset":
            cand.dataset = str(v).strip()
        elif col == "split":
            sp = str(v).strip().lower()
            if sp not in SPLITS:
                raise RowError("bad_split", f"split {v!r} is not one of {', '.join(SPLITS)}")
            cand.split = sp
        elif col == "meta":
            if not isinstance(v, dict):
                raise RowError("bad_value", "meta must be an object")
            meta = {**_jsonable(v), **meta}
    if label:
        if "mos" not in label:
            raise RowError("bad_value", f"{', '.join(sorted(label))} given without mos")
        lo, hi = label.get("scale_min"), label.get("scale_max")
        if lo is not None and hi is not None and lo >= hi:
            raise RowError("bad_value", f"scale_min {lo} is not below scale_max {hi}")
        if (lo is not None and label["mos"] < lo) or (hi is not None and label["mos"] > hi):
            raise RowError("bad_value", f"mos {label['mos']} outside the scale [{lo}, {hi}]")
        if label.get("std") is not None and label["std"] < 0:
            raise RowError("bad_value", f"mos_std {label['std']} is negative")
        if label.get("n_ratings") == 0:
            raise RowError("bad_value", "n_ratings is 0")
        cand.label = label
    cand.meta = meta or None
    return cand, is_url


def import_manifest(
    db_url: str,
    manifest: str | Path,
    *,
    probe: bool = True,
    dataset: str | None = None,
    split: str | None = None,
    path_column: str | None = None,
    base_dir: str | Path | None = None,
    prediction_version: str = "external",
    strict: bool = False,
    batch_size: int | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> IngestSummary:
    """Import a manifest into the pool (see the module docstring for the columns).

    With ``probe`` (default) local files are hashed and probed like ``add_paths``
    and a file that cannot be read fails its row; with ``probe=False`` rows are
    stored as metadata only (no file access; identity by ``uri``), which is what
    the 100k-row benchmark measures. URLs are never probed. Bad rows (bad MOS,
    missing path, bad split, broken JSON line, duplicate path) are recorded as
    ingest errors and the run goes on; duplicates of an earlier row are
    ``duplicate_row`` errors. Re-importing the same manifest changes nothing.

    Raises:
        PoolError: the manifest cannot be read at all (missing file, unknown type,
            no path column), or ``strict`` and some row failed.
    """
    check_split(split)
    path = Path(manifest)
    cols, rows = read_manifest(path)
    if path_column is not None:
        path_col = path_column.strip().lower()
        if path_col not in cols:
            raise PoolError(f"{path}: no column {path_column!r} (columns: {', '.join(cols) or 'none'})")
    else:
        path_col = next((c for c in PATH_COLUMNS if c in cols), "")
        if not path_col:
            raise PoolError(
                f"{path}: no path column; name one of {', '.join(PATH_COLUMNS)} "
                f"(columns: {', '.join(cols) or 'none'})"
            )
    base = os.path.abspath(base_dir) if base_dir is not None else str(path.absolute().parent)
    summary = IngestSummary()
    writer = BatchWriter(summary, prediction_version=prediction_version)
    urls: set[int] = set()
    seen: dict[str, str] = {}

    def items() -> Iterator[Candidate | Bad]:
        for item in rows:
            if len(item) == 3:
                yield item  # type: ignore[misc]
                continue
            src, values = item  # type: ignore[misc]
            try:
                cand, is_url = row_to_candidate(src, values, path_col=path_col, base=base, dataset=dataset, split=split)
            except RowError as e:
                yield (src, e.error_type, e.reason)
                continue
            first = seen.get(cand.uri)
            if first is not None:
                yield (src, "duplicate_row", f"same path as {first}")
                continue
            seen[cand.uri] = src
            if is_url:
                urls.add(id(cand))
            yield cand

    total = _count_rows(path)
    run_ingest(
        db_url, items(), total=total, summary=summary, writer=writer,
        probe_local=lambda c: probe and id(c) not in urls,
        batch_size=batch_size or (DEFAULT_BATCH if probe else 5000), workers=workers,
        progress=progress, label="importing", quick_skip=probe,
    )  # fmt: skip
    return _finish(summary, strict)


def _count_rows(path: Path) -> int:
    """Rows for the progress bar (lines for text formats, metadata for Parquet)."""
    if manifest_format(path) == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as f:
        n = sum(1 for _ in f)
    return max(0, n - 1) if manifest_format(path) in ("csv", "tsv") else n
