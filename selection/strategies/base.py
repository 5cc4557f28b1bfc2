"""The strategy interface: a problem (candidates, difficulty, distances) in, audited picks out.

Positions index the candidate list (input order: ascending ``video_id`` unless the
caller gives another order); results carry ``video_id``s. Context rows (already
labelled videos that count as selected in the diversity term) follow the
candidates in the distance bank and are never picked.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from selection.distances import FrameBank, PooledBank

__all__ = ["Pick", "SelectionProblem", "SelectionResult", "Strategy"]


@dataclass
class Pick:
    """One selected video with the terms that explain the choice."""

    video_id: int
    position: int  # index into the candidate list
    difficulty: float | None  # g(x)
    diversity: float | None  # mean distance to the already selected set (unscaled); None on an empty set
    total: float | None  # the strategy's objective at pick time (MDS: g + lambda * diversity)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "difficulty": self.difficulty,
            "diversity": self.diversity,
            "total": self.total,
            **self.extra,
        }


@dataclass
class SelectionProblem:
    """Candidates in input order, optional difficulty g, optional distance bank.

    ``bank`` rows ``0..n-1`` are the candidates; rows ``n..`` are context videos
    (``context_ids``) that count as already selected in the diversity term.
    """

    ids: np.ndarray
    difficulty: np.ndarray | None = None
    bank: FrameBank | PooledBank | None = None
    context_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64).ravel()
        if len(np.unique(self.ids)) != len(self.ids):
            raise ValueError("candidate ids must be unique")
        self.context_ids = np.asarray(self.context_ids, dtype=np.int64).ravel()
        if self.difficulty is not None:
            self.difficulty = np.asarray(self.difficulty, dtype=np.float64).ravel()
            if self.difficulty.shape[0] != len(self.ids):
                raise ValueError(f"{len(self.ids)} candidates but {self.difficulty.shape[0]} difficulty scores")
            if not np.isfinite(self.difficulty).all():
                raise ValueError("difficulty scores must be finite")
        if self.bank is not None and len(self.bank) != len(self.ids) + len(self.context_ids):
            raise ValueError(
                f"distance bank has {len(self.bank)} rows, expected {len(self.ids)} candidates"
                f" + {len(self.context_ids)} context videos"
            )

    @property
    def n(self) -> int:
        return len(self.ids)


@dataclass
class SelectionResult:
    """Picks in selection order plus the parameters that produced them."""

    strategy: str
    picks: list[Pick]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> list[int]:
        return [p.video_id for p in self.picks]

    @property
    def positions(self) -> list[int]:
        return [p.position for p in self.picks]

    def objective(self, lambda_: float) -> float | None:
        """MDS-VQA objective of the set: mean g + lambda * mean pairwise distance (from the audit terms)."""
        g = [p.difficulty for p in self.picks]
        if not g or any(x is None for x in g):
            return None
        k = len(self.picks)
        # sum over picks of (k_i * mean distance to the i earlier picks) = sum of pairwise distances
        pair_sum = sum((p.diversity or 0.0) * i for i, p in enumerate(self.picks))
        mean_pair = pair_sum / (k * (k - 1) / 2) if k > 1 else 0.0
        return float(np.mean(g)) + lambda_ * mean_pair


class Strategy(ABC):
    """Base class of selection strategies. Subclasses set ``name`` and implement :meth:`select`.

    Options are keyword arguments of ``__init__`` and must be JSON-serialisable
    (they are stored in the round's config snapshot through :meth:`params`).
    """

    name: ClassVar[str] = ""
    needs_difficulty: ClassVar[bool] = False
    needs_features: ClassVar[bool] = False
    feature_kind: ClassVar[str] = "frames"  # "frames" (per-frame sets) or "pooled" (one vector per video)
    approximate: ClassVar[bool] = False

    def params(self) -> dict[str, Any]:
        """The options that determine the result (for the config snapshot)."""
        return {}

    @abstractmethod
    def select(self, problem: SelectionProblem, budget: int, *, seed: int = 0) -> SelectionResult:
        """Pick ``budget`` candidates of ``problem``."""

    def check(self, problem: SelectionProblem, budget: int) -> None:
        """Validate once before selecting (used by :func:`selection.select`)."""
        from mds.errors import SelectionError

        if budget < 1:
            raise SelectionError(f"budget must be at least 1, got {budget}")
        if budget > problem.n:
            raise SelectionError(f"budget {budget} exceeds the {problem.n} candidates")
        if self.needs_difficulty and problem.difficulty is None:
            raise SelectionError(f"strategy {self.name!r} needs difficulty scores")
        if self.needs_features and problem.bank is None:
            raise SelectionError(f"strategy {self.name!r} needs embeddings")


def first_max(values: np.ndarray, tie_tol: float) -> tuple[int, int]:
    """Index of the maximum, lowest index among values within ``tie_tol`` of it; and the tie count."""
    best = values.max()
    tied = np.flatnonzero(values >= best - tie_tol)
    return int(tied[0]), int(tied.size)


def difficulty_ranks(g: np.ndarray) -> np.ndarray:
    """1-based competition rank by difficulty (1 = hardest; equal scores share a rank)."""
    order = np.sort(g)[::-1]
    return (np.searchsorted(-order, -g, side="left") + 1).astype(np.int64)
