"""MDS-VQA greedy selection (method.md §4), exact, with an O(N) running distance sum.

Reference: Zou et al., "MDS-VQA: Model-Informed Data Selection for Video Quality
Assessment", CVPR 2026 (arXiv 2603.11525).

1. First pick: the highest difficulty g.
2. Then, at each step, maximise ``g_j + lambda * s_j / k``, where ``s_j`` is the sum
   of distances from candidate j to the k videos selected so far.
3. After each pick, one batched pass adds the new pick's distances to ``s``.

Tie-breaking: totals within ``tie_tol`` of the maximum are ties; the lowest
position in the input order wins (the reference's numpy ``argmax`` behaviour). The audit's
runner-up is chosen among the rest by the same rule; its margin is to the best of the rest.

Exact pruning (on by default): at step k < K at least K + 1 - k unselected
candidates have ``g >= G_(K+1)`` (the (K+1)-th largest g), and the diversity term
lies in ``[0, lambda * Dmax]`` with ``Dmax = 2 * max frame norm``. A candidate with
``g + lambda * Dmax < G_(K+1)`` can therefore never be picked nor be the runner-up,
so it is dropped before any distance is computed. The picks are identical.

Lazy evaluation (on by default for frame banks): candidate j keeps a running sum
``s_j`` over the first ``c_j`` picks only. Its exact total at step k is
``g_j + lambda * S_j / k`` with ``S_j <= s_j + (k - c_j) * Dmax``, an upper bound
``U_j``. Each step catches up (in float64, one batched block per distinct lag) the
candidates in descending ``U`` order until no other candidate's bound reaches the
second-best exact total minus ``tie_tol`` (hence nor the best), so the pick,
its ties, the runner-up and the margin are those of the full float64 computation.
With quantised g most candidates are never caught up. Note that this is not the
submodular "lazy greedy" (whose bounds can be wrong here): ``U_j`` is a true bound.

``context`` rows (already labelled videos counted as selected, optional) start
the running sum, so even the first pick maximises ``g + lambda * mean distance``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from selection.distances import FrameBank, PooledBank, chamfer_block
from selection.strategies.base import (
    Pick,
    SelectionProblem,
    SelectionResult,
    Strategy,
    difficulty_ranks,
    first_max,
)

# Largest float64 copy of the candidates' frames the lazy path keeps (beyond it: converted per use).
_LAZY_CACHE_BYTES = 1 << 30

CLIP_LAMBDA = 0.25
SIGLIP_LAMBDA = 0.075


def default_lambda(encoder: str | None) -> float:
    """lambda per encoder (method.md §4): 0.075 for SigLIP features (not normalised), else 0.25 (CLIP)."""
    return SIGLIP_LAMBDA if encoder and "siglip" in encoder.lower() else CLIP_LAMBDA


def default_tie_tol(bank: FrameBank | PooledBank | None) -> float:
    """Ties within numerical noise: 1e-9 for float64 (and verified float32 frame) distances, 1e-6 otherwise."""
    if bank is None:
        return 0.0
    if isinstance(bank, FrameBank) or bank.vectors.dtype == np.float64:
        return 1e-9
    return 1e-6


def greedy_mds(
    g: np.ndarray,
    bank: FrameBank | PooledBank,
    budget: int,
    lambda_: float,
    *,
    n_context: int = 0,
    tie_tol: float = 1e-9,
    prune: bool = True,
    prefilter_m: int | None = None,
    verify: bool = True,
    lazy: bool = True,
) -> tuple[list[int], list[dict[str, Any]], dict[str, Any]]:
    """Greedy MDS-VQA on positions ``0..len(g)-1`` of ``bank`` (context rows follow the candidates).

    With a float32 frame bank and ``verify``, float32 distances only screen: every
    candidate whose screened total is within twice the rounding-error bound of the
    best gets its exact float64 running sum (caught up lazily, pair by pair), and
    the pick is made on exact totals, so the picks equal the float64 ones.

    With ``lazy`` (frame banks only) distances are computed on demand in float64
    against upper bounds (see the module docstring); ``verify`` then does not apply.

    Returns the picked positions, per-pick audit terms and run info (pruning counts).
    """
    n = g.shape[0]
    keep = np.arange(n)
    info: dict[str, Any] = {"candidates": n}
    if prefilter_m is not None and prefilter_m < n:
        # Approximate: only the top-M by g (stable: input order on ties) stay candidates.
        keep = np.sort(np.argsort(-g, kind="stable")[: max(prefilter_m, budget)])
        info["prefilter_m"] = int(prefilter_m)
    if prune and lambda_ >= 0 and budget < keep.size:
        g_keep = np.sort(g[keep])[::-1]
        threshold = g_keep[budget] - lambda_ * bank.max_distance() - tie_tol  # G_(K+1) - lambda*Dmax
        keep = keep[g[keep] >= threshold]
    info["evaluated"] = int(keep.size)
    rows = np.concatenate([keep, np.arange(n, n + n_context)])
    work = bank.subset(rows) if rows.size != len(bank) else bank
    gk = g[keep]
    m = keep.size
    ranks = difficulty_ranks(g)[keep]
    info["lazy"] = bool(lazy and isinstance(work, FrameBank))
    if info["lazy"]:
        picks, audit = _greedy_lazy(gk, work, budget, lambda_, n_context, tie_tol, info)
        for j, a in zip(picks, audit):
            r = a.pop("runner_up_position")
            a["rank_difficulty"] = int(ranks[j])
            a["ties"] = a.pop("ties")
            a["runner_up_position"] = int(keep[r]) if r is not None else None
            a["margin"] = a.pop("margin")
        return [int(keep[j]) for j in picks], audit, info

    screen = verify and isinstance(work, FrameBank) and work.frames.dtype != np.float64
    s = np.zeros(len(work), dtype=np.float64)
    err = np.zeros(len(work), dtype=np.float64)  # per candidate: bound on |screened - exact| mean distance

    def add_distances(row: int) -> None:
        nonlocal s, err
        if screen:
            d, dmin = work.distances_from(row, with_min=True)
            np.maximum(err, work.error_bounds(dmin), out=err)
        else:
            d = work.distances_from(row)
        s += d

    for c in range(m, m + n_context):
        add_distances(c)
    k = n_context
    alive = np.ones(m, dtype=bool)
    picks: list[int] = []
    audit: list[dict[str, Any]] = []
    info["verified_pairs"] = 0
    s64 = np.zeros(m)
    counted = np.zeros(m, dtype=np.int64)
    n_sel = 0
    if screen:
        # float64 copies of the selected frame sets (context first, then picks), in order
        assert isinstance(work, FrameBank)
        cap, f = n_context + budget, work.frames.shape[1]
        sel = FrameBank(
            np.zeros((cap, f, work.dim)), np.ones(cap, dtype=np.int64), np.full((cap, f), np.inf), True
        )

    def push(row: int) -> None:
        nonlocal n_sel
        if screen:
            c = int(work.counts[row])
            x = work.frames[row, :c].astype(np.float64)
            sel.frames[n_sel, :c] = x
            sel.counts[n_sel] = c
            sel.sqnorm[n_sel, :c] = np.einsum("td,td->t", x, x)
        n_sel += 1

    def exact_sum(j: int) -> float:
        r0 = int(counted[j])
        if r0 < n_sel:
            view = FrameBank(sel.frames[r0:n_sel], sel.counts[r0:n_sel], sel.sqnorm[r0:n_sel], True)
            s64[j] += float(view.distances_to_set(work.frame_set(j).astype(np.float64)).sum())
            info["verified_pairs"] += n_sel - r0
            counted[j] = n_sel
        return s64[j]

    for c in range(m, m + n_context):
        push(c)

    for step in range(budget):
        div = s[:m] / k if k else None
        total = gk + lambda_ * div if div is not None else gk.copy()
        total = np.where(alive, total, -np.inf)
        if screen and k:
            # Only candidates whose upper bound reaches the best lower bound can be the exact argmax.
            eb = lambda_ * err[:m]
            best_low = np.max(np.where(alive, total - eb, -np.inf))
            close = np.flatnonzero(alive & (total + eb >= best_low - tie_tol))
            exact = np.array([gk[c] + lambda_ * exact_sum(int(c)) / k for c in close])
            total[close] = exact
            div = div.copy()
            div[close] = s64[close] / k
        j, ties = first_max(total, tie_tol)
        r, margin = _runner_up(total, j, tie_tol)
        audit.append(
            {
                "difficulty": float(gk[j]),
                "diversity": float(div[j]) if div is not None else None,
                "total": float(total[j]),
                "rank_difficulty": int(ranks[j]),
                "ties": ties,
                "runner_up_position": int(keep[r]) if r is not None else None,
                "margin": margin,
            }
        )
        picks.append(int(keep[j]))
        alive[j] = False
        push(j)
        if step + 1 < budget:
            add_distances(j)
            k += 1
    return picks, audit, info


def _runner_up(total: np.ndarray, j: int, tie_tol: float) -> tuple[int | None, float | None]:
    """The best of the rest (same tie rule as the pick: lowest position within ``tie_tol``) and the margin."""
    rest = total.copy()
    rest[j] = -np.inf
    if not np.isfinite(rest).any():
        return None, None
    r, _ = first_max(rest, tie_tol)
    return r, float(total[j] - rest.max())


def _greedy_lazy(
    gk: np.ndarray,
    work: FrameBank,
    budget: int,
    lambda_: float,
    n_context: int,
    tie_tol: float,
    info: dict[str, Any],
) -> tuple[list[int], list[dict[str, Any]]]:
    """Lazy exact greedy on candidate rows ``0..m-1`` of ``work`` (context rows follow). Float64 distances."""
    m = gk.shape[0]
    f, dim = work.frames.shape[1], work.dim
    cap = n_context + budget
    # float64 copies of the selected frame sets (context first, then picks), in order
    sel = np.zeros((cap, f, dim))
    sel_counts = np.zeros(cap, dtype=np.int64)
    sel_sq = np.full((cap, f), np.inf)
    n_sel = 0

    def push(row: int) -> None:
        nonlocal n_sel
        c = int(work.counts[row])
        sel[n_sel, :c] = work.frames[row, :c]
        sel_counts[n_sel] = c
        x = sel[n_sel, :c]
        sel_sq[n_sel, :c] = np.einsum("td,td->t", x, x)
        n_sel += 1

    for row in range(m, m + n_context):
        push(row)
    s = np.zeros(m)  # partial sums over the first ``counted`` selected sets
    counted = np.zeros(m, dtype=np.int64)
    alive = np.ones(m, dtype=bool)
    # Per unseen pick, the bound of one distance: Dmax when lambda >= 0, else 0 (a lower bound of d).
    per_pick = work.max_distance() if lambda_ >= 0 else 0.0
    batch, first_batch = 32, 4
    pairs = 0

    # float64 copies of the candidates' frames, converted on first use (kept when they fit the cache cap)
    native = work.frames.dtype == np.float64
    cached = native or m * f * dim * 8 <= _LAZY_CACHE_BYTES
    x64 = work.frames if native else np.empty((m, f, dim)) if cached else None
    sq64 = work.sqnorm if native else np.empty((m, f)) if cached else None
    converted = np.full(m, native)

    def to64(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = work.frames[rows].astype(np.float64)
        sq = np.einsum("nfd,nfd->nf", x, x)
        if work.padded:
            sq[np.arange(f)[None, :] >= work.counts[rows][:, None]] = np.inf
        return x, sq

    def catch_up(idx: np.ndarray, k: int) -> None:
        nonlocal pairs
        if cached:
            new = idx[~converted[idx]]
            if new.size:
                x64[new], sq64[new] = to64(new)
                converted[new] = True
        lag = counted[idx]
        # One block per distinct lag: those candidates miss the same picks lag..k-1.
        for lo in np.unique(lag):
            rows = idx[lag == lo]
            x, sq = (x64[rows], sq64[rows]) if cached else to64(rows)
            d = chamfer_block(x, sq, work.counts[rows], sel[lo:k], sel_sq[lo:k], sel_counts[lo:k])
            s[rows] += d.sum(axis=1) if k - lo > 1 else d[:, 0]
            pairs += d.size
        counted[idx] = k

    picks: list[int] = []
    audit: list[dict[str, Any]] = []
    k = n_context
    for step in range(budget):
        if k == 0:
            total = np.where(alive, gk, -np.inf)
        else:
            while True:
                exact = alive & (counted == k)
                total = np.where(exact, gk + lambda_ * (s / k), -np.inf)
                lagging = np.flatnonzero(alive & (counted < k))
                if lagging.size == 0:
                    break
                second = float(np.partition(total, m - 2)[m - 2]) if m >= 2 else -np.inf
                # Candidates that could be the pick or the runner-up (within tie_tol of the best / second).
                thr = second - tie_tol
                thr -= 1e-12 * max(1.0, abs(thr))  # rounding slack of the bound itself
                bound = gk[lagging] + lambda_ * ((s[lagging] + (k - counted[lagging]) * per_pick) / k)
                reach = bound >= thr
                if not reach.any():
                    break
                cand, cb = lagging[reach], bound[reach]
                if np.isfinite(thr) and cand.size <= 4 * batch:
                    catch_up(cand, k)
                else:
                    # Highest bounds first; a few suffice to set the threshold that excludes the rest.
                    order = np.argsort(-cb, kind="stable")[: batch if np.isfinite(thr) else first_batch]
                    catch_up(np.sort(cand[order]), k)
        j, ties = first_max(total, tie_tol)
        r, margin = _runner_up(total, j, tie_tol)
        audit.append(
            {
                "difficulty": float(gk[j]),
                "diversity": float(s[j] / k) if k else None,
                "total": float(total[j]),
                "ties": ties,
                "runner_up_position": r,
                "margin": margin,
            }
        )
        picks.append(int(j))
        alive[j] = False
        push(j)
        if step + 1 < budget:
            k += 1
    info["verified_pairs"] = pairs
    info["lazy_pairs"] = pairs
    return picks, audit


def _picks(problem: SelectionProblem, positions: list[int], audit: list[dict[str, Any]]) -> list[Pick]:
    out = []
    for order, (p, a) in enumerate(zip(positions, audit)):
        extra = {k: v for k, v in a.items() if k not in ("difficulty", "diversity", "total")}
        rp = extra.pop("runner_up_position", None)
        extra["runner_up"] = int(problem.ids[rp]) if rp is not None else None
        extra["step"] = order
        out.append(Pick(int(problem.ids[p]), p, a["difficulty"], a["diversity"], a["total"], extra))
    return out


class MdsStrategy(Strategy):
    """Exact MDS-VQA greedy on per-frame Chamfer distances (difficulty + lambda * mean distance).

    Options: ``lambda_`` (default: per encoder, 0.25 for CLIP), ``tie_tol``,
    ``prune`` (exact candidate pruning, default on), ``verify`` (float32 screening
    with float64 re-checks of close contenders, default on; exact), ``lazy`` (distances
    on demand against upper bounds, default on; exact, float64), ``prefilter_m``
    (approximate: keep only the top-M by g; off by default).
    """

    name = "mds"
    needs_difficulty = True
    needs_features = True
    feature_kind = "frames"

    def __init__(
        self,
        *,
        lambda_: float | None = None,
        encoder: str | None = None,
        tie_tol: float | None = None,
        prune: bool = True,
        prefilter_m: int | None = None,
        verify: bool = True,
        lazy: bool = True,
    ) -> None:
        self.lambda_ = float(lambda_) if lambda_ is not None else default_lambda(encoder)
        self.verify = verify
        self.lazy = lazy
        self.tie_tol = tie_tol
        self.prune = prune
        self.prefilter_m = prefilter_m
        if prefilter_m is not None:
            self.approximate = True

    def params(self) -> dict[str, Any]:
        return {
            "lambda": self.lambda_,
            "tie_tol": self.tie_tol,
            "prune": self.prune,
            "prefilter_m": self.prefilter_m,
            "verify": self.verify,
            "lazy": self.lazy,
            "distance": self.feature_kind,
            "approximate": self.approximate,
        }

    def _bank(self, problem: SelectionProblem) -> FrameBank | PooledBank:
        assert problem.bank is not None
        return problem.bank

    def select(self, problem: SelectionProblem, budget: int, *, seed: int = 0) -> SelectionResult:
        self.check(problem, budget)
        assert problem.difficulty is not None
        bank = self._bank(problem)
        tol = self.tie_tol if self.tie_tol is not None else default_tie_tol(bank)
        positions, audit, info = greedy_mds(
            problem.difficulty,
            bank,
            budget,
            self.lambda_,
            n_context=len(problem.context_ids),
            tie_tol=tol,
            prune=self.prune,
            prefilter_m=self.prefilter_m,
            verify=self.verify,
            lazy=self.lazy,
        )
        params = {**self.params(), "tie_tol": tol, **info, "context": len(problem.context_ids)}
        return SelectionResult(self.name, _picks(problem, positions, audit), params)


class PooledMdsStrategy(MdsStrategy):
    """Approximate MDS-VQA: the same greedy on one pooled vector per video (Euclidean or cosine).

    Each pick costs one matrix-vector pass over the N x d pooled matrix instead of
    a Chamfer pass over all frames. Not the paper's distance: use it for large pools.
    Option ``metric``: ``euclidean`` (default; on unit vectors a monotone map of cosine) or ``cosine``.
    """

    name = "mds-pooled"
    feature_kind = "pooled"
    approximate = True

    def __init__(self, *, metric: str = "euclidean", **options: Any) -> None:
        super().__init__(**options)
        self.metric = metric
        self.approximate = True

    def params(self) -> dict[str, Any]:
        return {**super().params(), "metric": self.metric}

    def _bank(self, problem: SelectionProblem) -> FrameBank | PooledBank:
        bank = problem.bank
        assert bank is not None
        if isinstance(bank, FrameBank):
            return PooledBank(bank.pooled(), self.metric)
        if bank.metric != self.metric:
            return PooledBank(bank.vectors, self.metric)
        return bank
