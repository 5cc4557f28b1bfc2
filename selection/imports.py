"""Import difficulty scores and embeddings computed elsewhere, keyed by video name or path.

Names match ``Video.name``, the video's path, its file name, or its file name
without the extension. Unknown or ambiguous names are reported, not fatal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select

from mds.db.engine import session_scope
from mds.db.models import DifficultyScore, Video
from mds.errors import ParseError, SelectionError


@dataclass
class ImportReport:
    label: str
    imported: int = 0
    unknown: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"label": self.label, "imported": self.imported, "unknown": len(self.unknown),
                "ambiguous": len(self.ambiguous), "unknown_examples": self.unknown[:10]}


def _stem(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def name_index(db_url: str) -> dict[str, int | None]:
    """Lookup from every accepted spelling of a video to its id (``None`` when ambiguous)."""
    out: dict[str, int | None] = {}

    def put(k: str, vid: int) -> None:
        if k in out and out[k] != vid:
            out[k] = None
        else:
            out[k] = vid

    with session_scope(db_url) as s:
        for vid, name, uri in s.execute(select(Video.id, Video.name, Video.uri)):
            for k in {name, uri, uri.rsplit("/", 1)[-1], _stem(uri), _stem(name)}:
                put(k, vid)
    return out


def _resolve(names: Iterable[str], index: dict[str, int | None], report: ImportReport) -> dict[str, int]:
    found: dict[str, int] = {}
    for n in names:
        vid = index.get(n, index.get(_stem(n), -1))
        if vid is None:
            report.ambiguous.append(n)
        elif vid == -1:
            report.unknown.append(n)
        else:
            found[n] = vid
    return found


def import_scores(db_url: str, path: str | Path, *, predictor: str, checkpoint_id: int | None = None) -> ImportReport:
    """Store scores from a file as ``DifficultyScore(predictor="import:<predictor>")`` (upsert)."""
    from mds.metrics import read_scores

    label = predictor if predictor.startswith("import:") else f"import:{predictor}"
    scores = read_scores(path)
    report = ImportReport(label)
    ids = _resolve(scores, name_index(db_url), report)
    with session_scope(db_url) as s:
        existing = {r.video_id: r for r in s.scalars(select(DifficultyScore).where(DifficultyScore.predictor == label))}
        for name, vid in ids.items():
            r = existing.get(vid) or DifficultyScore(video_id=vid, predictor=label)
            r.score = float(scores[name])
            r.checkpoint_id = checkpoint_id
            r.extra = {"source": str(path), "name": name}
            s.add(r)
            existing[vid] = r
    report.imported = len(ids)
    return report


def read_embeddings(path: str | Path, names: str | Path | None = None) -> dict[str, np.ndarray]:
    """``{name: (T, D) or (D,) array}`` from npz / npy (+ names file) / Parquet / JSON or a folder of npz.

    npz: ``names`` + ``features`` arrays, or one array per name, or the per-video
    cache layout ``features`` + ``video_name``. A folder: every ``*.npz`` in it.
    """
    p = Path(path)
    if p.is_dir():
        out: dict[str, np.ndarray] = {}
        for f in sorted(p.glob("*.npz")):
            out.update(read_embeddings(f))
        if not out:
            raise ParseError(f"{p}: no .npz files")
        return out
    if not p.is_file():
        raise ParseError(f"{p}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                keys = set(z.files)
                if {"features", "video_name"} <= keys:
                    return {str(z["video_name"]): z["features"]}
                if {"names", "features"} <= keys:
                    return dict(zip((str(n) for n in z["names"]), z["features"]))
                return {k: z[k] for k in z.files}
        if suffix == ".npy":
            if names is None:
                raise ParseError(f"{p}: a .npy file needs --names (one video name per row)")
            arr = np.load(p, allow_pickle=False)
            lst = [ln.split()[0] for ln in Path(names).read_text().splitlines() if ln.strip()]
            if len(lst) != len(arr):
                raise ParseError(f"{p}: {len(arr)} rows but {len(lst)} names")
            return dict(zip(lst, arr))
        if suffix in (".parquet", ".pq"):
            import pandas as pd

            df = pd.read_parquet(p)
            cols = {c.lower(): c for c in df.columns}
            ncol = next((cols[c] for c in ("name", "video", "path", "id") if c in cols), df.columns[0])
            ecol = next((cols[c] for c in ("embedding", "features", "vector") if c in cols), None)
            if ecol is None:
                return {str(n): row.to_numpy(np.float32) for n, (_, row) in zip(df[ncol], df.drop(columns=[ncol]).iterrows())}
            return {str(n): np.asarray(np.stack(list(v)) if np.ndim(v[0]) else v, dtype=np.float32)
                    for n, v in zip(df[ncol], df[ecol])}
        if suffix == ".json":
            obj = json.loads(p.read_text())
            if not isinstance(obj, dict):
                raise ParseError(f"{p}: expected {{name: vector or list of vectors}}")
            return {str(k): np.asarray(v, dtype=np.float32) for k, v in obj.items()}
    except (ValueError, KeyError, OSError) as e:
        raise ParseError(f"{p}: cannot read embeddings: {e}") from None
    raise ParseError(f"{p}: unsupported embedding file (use .npz, .npy, .parquet, .json or a folder of .npz)")


def import_embeddings(db_url: str, path: str | Path, *, encoder: str, data_dir: str | Path,
                      names: str | Path | None = None, normalise: bool = False) -> ImportReport:
    """Store vectors from a file under encoder key ``encoder`` (frames + pooled FAISS index + records)."""
    from selection.embeddings.embed import _write_records
    from selection.embeddings.store import EmbeddingStore, pool_vectors

    data = read_embeddings(path, names)
    report = ImportReport(encoder)
    ids = _resolve(data, name_index(db_url), report)
    if not ids:
        return report
    sets = []
    for n in ids:
        a = np.asarray(data[n], dtype=np.float32)
        a = a.reshape(1, -1) if a.ndim == 1 else a.reshape(-1, a.shape[-1])
        if not np.isfinite(a).all():
            raise ParseError(f"{path}: non-finite values in the vectors of {n!r}")
        if normalise:
            a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        sets.append(a)
    dims = {a.shape[1] for a in sets}
    if len(dims) != 1:
        raise SelectionError(f"{path}: vectors of different dimensions {sorted(dims)}")
    store = EmbeddingStore(data_dir, encoder, dim=dims.pop())
    locs = store.append(sets)
    vids = list(ids.values())
    _write_records(db_url, encoder, store.dim,
                   [(vid, loc, {"source": f"import:{path}"}) for vid, loc in zip(vids, locs)], [])
    store.add_pooled(vids, np.stack([pool_vectors(a) for a in sets]))
    report.imported = len(vids)
    return report
