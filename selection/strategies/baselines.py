"""Baseline strategies: random (seeded), difficulty-only top-K, diversity-only k-center greedy.

Each records the same audit terms as MDS where the inputs allow: difficulty (when
scores are given) and the mean distance to the earlier picks (when embeddings are
given), so baselines can be compared pick by pick.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from selection.strategies.base import (
    Pick,
    SelectionProblem,
    SelectionResult,
    Strategy,
    difficulty_ranks,
    first_max,
)
from selection.strategies.greedy import default_tie_tol


def _audited(
    problem: SelectionProblem, positions: list[int], totals: list[float | None], extra: list[dict[str, Any]]
) -> list[Pick]:
    """Picks with difficulty and mean distance to earlier picks (plus context) filled in where possible."""
    g = problem.difficulty
    ranks = difficulty_ranks(g) if g is not None else None
    bank = problem.bank
    n_ctx = len(problem.context_ids)
    s = k = None
    if bank is not None:
        s = np.zeros(len(bank))
        for c in range(problem.n, problem.n + n_ctx):
            s += bank.distances_from(c)
        k = n_ctx
    out = []
    for order, p in enumerate(positions):
        div = float(s[p] / k) if s is not None and k else None
        e = {"step": order, **extra[order]}
        if ranks is not None:
            e["rank_difficulty"] = int(ranks[p])
        out.append(Pick(int(problem.ids[p]), p, float(g[p]) if g is not None else None, div, totals[order], e))
        if s is not None and order + 1 < len(positions):
            s += bank.distances_from(p)
            k += 1
    return out


class RandomStrategy(Strategy):
    """Uniform random sample of the candidates (numpy ``default_rng(seed)``), in draw order."""

    name = "random"

    def select(self, problem: SelectionProblem, budget: int, *, seed: int = 0) -> SelectionResult:
        self.check(problem, budget)
        positions = [int(i) for i in np.random.default_rng(seed).permutation(problem.n)[:budget]]
        picks = _audited(problem, positions, [None] * budget, [{} for _ in positions])
        return SelectionResult(self.name, picks, {"seed": seed})


class DifficultyStrategy(Strategy):
    """Top-K by difficulty g; equal scores keep the input order (stable sort)."""

    name = "difficulty"
    needs_difficulty = True

    def select(self, problem: SelectionProblem, budget: int, *, seed: int = 0) -> SelectionResult:
        self.check(problem, budget)
        g = problem.difficulty
        assert g is not None
        order = np.argsort(-g, kind="stable")
        positions = [int(i) for i in order[:budget]]
        nxt = float(g[order[budget]]) if budget < problem.n else None
        extra = [{"margin": float(g[p]) - nxt} if nxt is not None else {} for p in positions]
        picks = _audited(problem, positions, [float(g[p]) for p in positions], extra)
        return SelectionResult(self.name, picks, {})


class DiversityStrategy(Strategy):
    """k-center greedy (core-set): each pick maximises the minimum distance to the selected set.

    The selected set starts with the context videos when given; otherwise the
    first pick is drawn with ``default_rng(seed)`` (``first="random"``) or is the
    first candidate (``first="first"``). Ties: lowest position. ``total`` is the
    min distance at pick time; ``diversity`` the mean distance, as for MDS.
    """

    name = "diversity"
    needs_features = True

    def __init__(self, *, first: str = "random", tie_tol: float | None = None) -> None:
        if first not in ("random", "first"):
            raise ValueError(f"first must be 'random' or 'first', not {first!r}")
        self.first = first
        self.tie_tol = tie_tol

    def params(self) -> dict[str, Any]:
        return {"first": self.first, "tie_tol": self.tie_tol}

    def select(self, problem: SelectionProblem, budget: int, *, seed: int = 0) -> SelectionResult:
        self.check(problem, budget)
        bank = problem.bank
        assert bank is not None
        tol = self.tie_tol if self.tie_tol is not None else default_tie_tol(bank)
        n = problem.n
        mind = np.full(n, np.inf)
        for c in range(n, n + len(problem.context_ids)):
            mind = np.minimum(mind, bank.distances_from(c)[:n])
        alive = np.ones(n, dtype=bool)
        positions: list[int] = []
        totals: list[float | None] = []
        extra: list[dict[str, Any]] = []
        for step in range(budget):
            if step == 0 and not len(problem.context_ids):
                j = int(np.random.default_rng(seed).integers(n)) if self.first == "random" else 0
                totals.append(None)
                extra.append({"min_distance": None})
            else:
                score = np.where(alive, mind, -np.inf)
                j, ties = first_max(score, tol)
                totals.append(float(mind[j]))
                extra.append({"min_distance": float(mind[j]), "ties": ties})
            positions.append(j)
            alive[j] = False
            if step + 1 < budget:
                mind = np.minimum(mind, bank.distances_from(j)[:n])
        picks = _audited(problem, positions, totals, extra)
        return SelectionResult(self.name, picks, {**self.params(), "tie_tol": tol, "seed": seed})
