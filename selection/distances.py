"""Distances between videos: symmetric mean Chamfer over frame sets, and pooled-vector distances.

The Chamfer distance of MDS-VQA (method.md §3) between frame sets A (Ta x D) and
B (Tb x D) with Euclidean frame distances::

    d(A, B) = 1/2 * [ mean_i min_j |a_i - b_j| + mean_j min_i |b_j - a_i| ]

The batched form computes one matrix of squared distances per (query, chunk of
candidates) from ``|a|^2 + |b|^2 - 2ab`` (one matmul), takes the row and column
minima from that same matrix, and takes square roots only of the minima (the
square root is monotone). Frame sets of different lengths are padded to the
longest; padded frames are masked out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FrameBank", "PooledBank", "as_bank", "chamfer", "chamfer_block", "pooled_distances"]

# Working-set cap for one batched distance block (elements of the Ta x n x F matrix).
_BLOCK_ELEMENTS = 8_000_000


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric mean Chamfer distance between two frame sets (float64, one pair)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    np.maximum(d2, 0.0, out=d2)
    return 0.5 * (float(np.sqrt(d2.min(1)).mean()) + float(np.sqrt(d2.min(0)).mean()))


def chamfer_block(
    x: np.ndarray, sqx: np.ndarray, cx: np.ndarray, q: np.ndarray, sqq: np.ndarray, cq: np.ndarray
) -> np.ndarray:
    """Chamfer distances between every set of ``x`` (n, F, D) and every set of ``q`` (P, Fq, D): ``(n, P)``.

    ``sqx``/``sqq`` are the squared frame norms with +inf on padded frames, ``cx``/``cq`` the frame
    counts. One matmul per block of rows; row and column minima from the same matrix.
    """
    n, f, d = x.shape
    p, fq, _ = q.shape
    out = np.empty((n, p), dtype=np.float64)
    qflat = q.reshape(p * fq, d)
    sqq_flat = sqq.reshape(1, 1, p * fq)
    qpad = bool(np.isinf(sqq).any())
    xpad = bool(np.isinf(sqx).any())
    step = max(1, _BLOCK_ELEMENTS // max(1, f * p * fq))
    for s in range(0, n, step):
        e = min(n, s + step)
        d2 = sqx[s:e, :, None] + sqq_flat - 2.0 * (x[s:e].reshape(-1, d) @ qflat.T).reshape(e - s, f, p * fq)
        np.maximum(d2, 0.0, out=d2)
        d2 = d2.reshape(e - s, f, p, fq)
        q_min = np.sqrt(d2.min(axis=1))  # (n, P, Fq): each pick frame to its nearest candidate frame
        x_min = np.sqrt(d2.min(axis=3))  # (n, F, P)
        if qpad:
            q_min[~np.isfinite(q_min)] = 0.0
        if xpad:
            x_min[~np.isfinite(x_min)] = 0.0
        q_to_x = q_min.sum(axis=2) / cq[None, :]
        x_to_q = x_min.sum(axis=1) / cx[s:e, None]
        out[s:e] = 0.5 * (q_to_x + x_to_q)
    return out


@dataclass
class FrameBank:
    """Per-video frame sets, padded to ``(N, F, D)`` with a frame mask, for batched Chamfer distances.

    ``frames[i, :counts[i]]`` are video i's frames. Build with :meth:`from_list`.
    """

    frames: np.ndarray  # (N, F, D)
    counts: np.ndarray  # (N,) int
    sqnorm: np.ndarray  # (N, F), +inf on padded frames
    padded: bool

    kind = "chamfer"

    @classmethod
    def from_list(cls, sets: Sequence[np.ndarray] | np.ndarray, dtype: type = np.float64) -> FrameBank:
        if isinstance(sets, np.ndarray) and sets.ndim == 3:
            frames = np.ascontiguousarray(sets, dtype=dtype)
            counts = np.full(frames.shape[0], frames.shape[1], dtype=np.int64)
        else:
            if len(sets) == 0:
                raise ValueError("no frame sets")
            dims = {np.asarray(s).shape[-1] for s in sets}
            if len(dims) != 1:
                raise ValueError(f"frame sets differ in dimension: {sorted(dims)}")
            dim = dims.pop()
            counts = np.array([np.asarray(s).reshape(-1, dim).shape[0] for s in sets], dtype=np.int64)
            if (counts == 0).any():
                raise ValueError("a frame set is empty")
            frames = np.zeros((len(sets), int(counts.max()), dim), dtype=dtype)
            for i, s in enumerate(sets):
                frames[i, : counts[i]] = np.asarray(s, dtype=dtype).reshape(counts[i], -1)
        padded = bool((counts != frames.shape[1]).any())
        sq = np.einsum("nfd,nfd->nf", frames, frames)
        if padded:
            sq[np.arange(frames.shape[1])[None, :] >= counts[:, None]] = np.inf
        return cls(frames=frames, counts=counts, sqnorm=sq, padded=padded)

    def __len__(self) -> int:
        return self.frames.shape[0]

    @property
    def dim(self) -> int:
        return self.frames.shape[2]

    def max_distance(self) -> float:
        """An upper bound of any Chamfer distance in the bank: 2 x the largest frame norm."""
        finite = self.sqnorm[np.isfinite(self.sqnorm)]
        # Inflated slightly so that a norm rounded down in float32 still bounds the true one.
        return 2.0 * float(np.sqrt(finite.max())) * (1 + 1e-6) if finite.size else 0.0

    def subset(self, rows: np.ndarray) -> FrameBank:
        rows = np.asarray(rows)
        return FrameBank(self.frames[rows], self.counts[rows], self.sqnorm[rows], self.padded)

    def frame_set(self, i: int) -> np.ndarray:
        return self.frames[i, : self.counts[i]]

    def error_bounds(self, dmin: np.ndarray | float | None = None) -> np.ndarray | float:
        """Bound on |computed - exact| Chamfer distance in this bank's dtype.

        Each squared distance |a|^2 + |b|^2 - 2ab carries a rounding error of at most
        e = (D + 3) u (|a| + |b|)^2. A square root turns an error e on a computed d^2 = x
        into at most min(sqrt(e), e / sqrt(x)) on d; minima and means do not enlarge it, so
        the smallest per-frame minimum ``dmin`` of a Chamfer value bounds its error.
        """
        u = float(np.finfo(self.frames.dtype).eps) / 2
        m = self.max_distance() / 2
        e = (self.dim + 3) * u * (2 * m) ** 2 * 1.01
        slack = 64 * u * 2 * m  # float32 means over frames and the bound's own rounding
        if dmin is None:
            return float(np.sqrt(e) + slack)
        d = np.asarray(dmin, dtype=np.float64)
        return np.minimum(np.sqrt(e), e / np.maximum(d, 1e-30)) + slack

    def distances_from(self, i: int, *, with_min: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Chamfer distances from video ``i`` of the bank to every video of the bank, ``(N,)``."""
        return self.distances_to_set(self.frames[i, : self.counts[i]], with_min=with_min)

    def distances_to_set(
        self, a: np.ndarray, *, with_min: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Chamfer distances from the frame set ``a`` (Ta x D) to every video of the bank.

        ``with_min`` also returns, per video, the smallest per-frame minimum distance that
        entered its value (used to bound the rounding error of the result).
        """
        a = np.asarray(a, dtype=self.frames.dtype)
        ta = a.shape[0]
        sqa = np.einsum("td,td->t", a, a)
        n, f, d = self.frames.shape
        out = np.empty(n, dtype=np.float64)
        mins = np.empty(n, dtype=np.float64) if with_min else None
        step = max(1, _BLOCK_ELEMENTS // max(1, ta * f))
        flat = self.frames.reshape(n * f, d)
        for s in range(0, n, step):
            e = min(n, s + step)
            g = flat[s * f : e * f] @ a.T  # ((e-s)*F, Ta)
            d2 = self.sqnorm[s:e].reshape(-1, 1) + sqa[None, :] - 2.0 * g
            d2 = d2.reshape(e - s, f, ta)
            np.maximum(d2, 0.0, out=d2)  # +inf on padded rows survives
            a_min = np.sqrt(d2.min(axis=1))  # (n, Ta)
            a_to_b = a_min.mean(axis=1)
            b_min = np.sqrt(d2.min(axis=2))  # (n, F); +inf on padded frames
            if mins is not None:
                mins[s:e] = np.minimum(a_min.min(axis=1), b_min.min(axis=1))
            if self.padded:
                b_min[~np.isfinite(b_min)] = 0.0
                b_to_a = b_min.sum(axis=1) / self.counts[s:e]
            else:
                b_to_a = b_min.mean(axis=1)
            out[s:e] = 0.5 * (a_to_b + b_to_a)
        return (out, mins) if mins is not None else out

    def pooled(self) -> np.ndarray:
        """Mean frame vector per video, re-normalised to unit length where the frames are unit length."""
        m = self.frames.sum(axis=1) / self.counts[:, None]
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        return m / np.where(norms > 0, norms, 1.0)


@dataclass
class PooledBank:
    """One vector per video ``(N, d)`` with Euclidean or cosine distance (pooled, approximate mode)."""

    vectors: np.ndarray
    metric: str = "euclidean"

    kind = "pooled"

    def __post_init__(self) -> None:
        if self.metric not in ("euclidean", "cosine"):
            raise ValueError(f"metric must be 'euclidean' or 'cosine', not {self.metric!r}")
        self.vectors = np.ascontiguousarray(self.vectors)
        if self.vectors.dtype not in (np.float32, np.float64):
            self.vectors = self.vectors.astype(np.float32)
        if self.metric == "cosine":
            n = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            self.vectors = self.vectors / np.where(n > 0, n, 1)
        self.sqnorm = np.einsum("nd,nd->n", self.vectors, self.vectors)

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def max_distance(self) -> float:
        if self.metric == "cosine":
            return 2.0
        return 2.0 * float(np.sqrt(self.sqnorm.max())) * (1 + 1e-6) if len(self) else 0.0

    def subset(self, rows: np.ndarray) -> PooledBank:
        return PooledBank(self.vectors[np.asarray(rows)], self.metric)

    def distances_from(self, i: int) -> np.ndarray:
        return self._from_vector(self.vectors[i], float(self.sqnorm[i]))

    def distances_to_set(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=self.vectors.dtype).reshape(-1, self.dim)
        v = a.mean(axis=0)
        if self.metric == "cosine":
            v = v / max(float(np.linalg.norm(v)), 1e-12)
        return self._from_vector(v, float(v @ v))

    def _from_vector(self, v: np.ndarray, vsq: float) -> np.ndarray:
        dots = self.vectors @ v  # one pass over the N x d matrix
        if self.metric == "cosine":
            return 1.0 - dots.astype(np.float64)
        d2 = self.sqnorm + vsq - 2.0 * dots
        np.maximum(d2, 0.0, out=d2)
        return np.sqrt(d2, dtype=np.float64) if d2.dtype == np.float64 else np.sqrt(d2).astype(np.float64)


def pooled_distances(q: np.ndarray, x: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Distances from one vector ``q`` to every row of ``x`` (``euclidean`` or ``cosine`` = 1 - cos)."""
    return PooledBank(np.asarray(x), metric).distances_to_set(np.asarray(q).reshape(1, -1))


def as_bank(features: object, *, dtype: type = np.float64) -> FrameBank | PooledBank:
    """A distance bank from frame sets (list of ``(T, D)`` or ``(N, F, D)``), pooled ``(N, d)``, or a bank."""
    if isinstance(features, (FrameBank, PooledBank)):
        return features
    if isinstance(features, np.ndarray) and features.ndim == 2:
        return PooledBank(features.astype(dtype if dtype == np.float64 else np.float32, copy=False))
    return FrameBank.from_list(features, dtype=dtype)  # type: ignore[arg-type]
