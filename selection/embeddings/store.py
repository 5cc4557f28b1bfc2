"""On-disk vector store for one encoder key: append-only float16 shards plus a FAISS index of pooled vectors.

Layout under ``<data_dir>/embeddings/<slug of encoder key>/``:

* ``meta.json``: encoder key, dimension, dtype;
* ``frames-00000.f16``, ...: raw row-major float16 frame vectors (``rows x dim``),
  appended and fsync'ed before any database record points at them, so a crash
  leaves at most unreferenced rows; memory-mapped for reading;
* ``pooled.faiss``: ``IndexIDMap2(IndexFlatIP)`` of one L2-normalised mean vector
  per video, ids = ``video_id``; rewritten atomically.

One writer at a time (an advisory lock file guards appends).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mds.errors import SelectionError

SHARD_BYTES = 1 << 30
DTYPE = np.float16


def store_dir(data_dir: str | Path, encoder_key: str) -> Path:
    """Directory of the store for ``encoder_key`` (readable slug + short hash of the full key)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_key).strip("_")[:80]
    digest = hashlib.sha256(encoder_key.encode()).hexdigest()[:10]
    return Path(data_dir) / "embeddings" / f"{slug}-{digest}"


def pool_vectors(frames: np.ndarray) -> np.ndarray:
    """Mean of the (unit) frame vectors, re-normalised."""
    m = np.asarray(frames, dtype=np.float32).mean(axis=0)
    n = float(np.linalg.norm(m))
    return m / n if n > 0 else m


class EmbeddingStore:
    """Frame vectors of one encoder key, addressed by ``(location, offset, n_frames)``."""

    def __init__(self, data_dir: str | Path, encoder_key: str, dim: int | None = None) -> None:
        self.encoder_key = encoder_key
        self.root = store_dir(data_dir, encoder_key)
        meta_path = self.root / "meta.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            if meta.get("encoder") != encoder_key:
                raise SelectionError(f"{self.root}: holds {meta.get('encoder')!r}, not {encoder_key!r}")
            if dim is not None and int(meta["dim"]) != dim:
                raise SelectionError(f"encoder {encoder_key!r}: stored dim {meta['dim']}, got vectors of dim {dim}")
            self.dim = int(meta["dim"])
        elif dim is None:
            raise SelectionError(f"no embeddings stored for encoder {encoder_key!r}")
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = meta_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"encoder": encoder_key, "dim": dim, "dtype": "float16", "format": 1}))
            os.replace(tmp, meta_path)
            self.dim = dim
        self._maps: dict[str, np.memmap] = {}

    @property
    def row_bytes(self) -> int:
        return self.dim * np.dtype(DTYPE).itemsize

    @property
    def index_path(self) -> Path:
        return self.root / "pooled.faiss"

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _current_shard(self) -> Path:
        shards = sorted(self.root.glob("frames-*.f16"))
        if shards and shards[-1].stat().st_size < SHARD_BYTES:
            return shards[-1]
        return self.root / f"frames-{len(shards):05d}.f16"

    def append(self, sets: Sequence[np.ndarray]) -> list[tuple[str, int, int]]:
        """Write frame sets durably; returns ``(location, row offset, n_frames)`` per set."""
        arrays = [np.ascontiguousarray(np.asarray(s, dtype=DTYPE).reshape(-1, self.dim)) for s in sets]
        with self._lock():
            shard = self._current_shard()
            with open(shard, "ab") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size % self.row_bytes:  # a torn row from a crash: nothing references it
                    fh.truncate(size - size % self.row_bytes)
                    size = fh.seek(0, os.SEEK_END)
                row = size // self.row_bytes
                out = []
                for a in arrays:
                    fh.write(a.tobytes())
                    out.append((shard.name, row, a.shape[0]))
                    row += a.shape[0]
                fh.flush()
                os.fsync(fh.fileno())
        self._maps.pop(shard.name, None)
        return out

    def _map(self, location: str) -> np.memmap:
        m = self._maps.get(location)
        if m is None:
            path = self.root / location
            if not path.is_file():
                raise SelectionError(f"embedding shard missing: {path}")
            rows = path.stat().st_size // self.row_bytes
            m = np.memmap(path, dtype=DTYPE, mode="r", shape=(rows, self.dim))
            self._maps[location] = m
        return m

    def read(self, location: str, offset: int, n_frames: int) -> np.ndarray:
        """The float16 frame vectors of one video (a memory-mapped view)."""
        m = self._map(location)
        if offset + n_frames > m.shape[0]:
            self._maps.pop(location, None)
            m = self._map(location)
            if offset + n_frames > m.shape[0]:
                raise SelectionError(f"{self.root / location}: rows {offset}+{n_frames} beyond the file")
        return m[offset : offset + n_frames]

    # --- pooled FAISS index ---------------------------------------------------------------------

    def load_index(self):
        import faiss

        if self.index_path.is_file():
            return faiss.read_index(str(self.index_path))
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def indexed_ids(self) -> np.ndarray:
        import faiss

        index = self.load_index()
        return faiss.vector_to_array(index.id_map).astype(np.int64) if index.ntotal else np.zeros(0, np.int64)

    def add_pooled(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add (or replace) pooled vectors and write the index atomically."""
        import faiss

        if len(ids) == 0:
            return
        ids_arr = np.asarray(ids, dtype=np.int64)
        vecs = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(len(ids_arr), self.dim))
        with self._lock():
            index = self.load_index()
            if index.ntotal:
                index.remove_ids(ids_arr)
            index.add_with_ids(vecs, ids_arr)
            tmp = self.index_path.with_suffix(".tmp")
            faiss.write_index(index, str(tmp))
            os.replace(tmp, self.index_path)

    def pooled(self, ids: Sequence[int]) -> np.ndarray:
        """Pooled vectors ``(n, dim)`` float32 for ``ids`` from the FAISS index (missing ids: an error)."""
        import faiss

        index = self.load_index()
        if not index.ntotal:
            raise SelectionError(f"encoder {self.encoder_key!r}: the pooled index is empty")
        have = faiss.vector_to_array(index.id_map).astype(np.int64)
        allv = index.index.reconstruct_n(0, index.ntotal)
        pos = {int(v): i for i, v in enumerate(have)}
        missing = [i for i in ids if int(i) not in pos]
        if missing:
            raise SelectionError(f"{len(missing)} videos have no pooled vector for {self.encoder_key!r}")
        return allv[[pos[int(i)] for i in ids]]

    def search(self, vectors: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Inner-product kNN over the pooled index (on a GPU when faiss has one): ``(scores, video_ids)``."""
        import faiss

        index = self.load_index()
        if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:  # faiss-gpu build
            index = faiss.index_cpu_to_all_gpus(index)
        return index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
