"""In-memory selection on arrays and ids (notebooks, ``mds simulate``); no database involved."""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mds.errors import SelectionError
from selection.distances import FrameBank, PooledBank, as_bank
from selection.registry import get_strategy
from selection.strategies.base import SelectionProblem, SelectionResult, Strategy

__all__ = ["make_strategy", "resolve_budget", "select"]


def resolve_budget(budget: float | str, n_candidates: int) -> int:
    """A budget as a count (``64``, ``"64"``) or a fraction of the candidates (``"5%"``, ``0.05``).

    Fractions round to the nearest count (halves up), at least 1.
    """
    spec = str(budget).strip()
    try:
        if spec.endswith("%"):
            frac = float(spec[:-1]) / 100.0
        elif isinstance(budget, float) or "." in spec:
            frac = float(spec)
            if frac >= 1:
                raise SelectionError(f"budget {spec!r}: a fraction must be below 1 (or give a count / 'P%')")
        else:
            k = int(spec)
            if k < 1:
                raise SelectionError(f"budget must be at least 1, got {k}")
            return k
    except ValueError:
        raise SelectionError(f"budget {spec!r} is not a count or a percentage like '5%'") from None
    if not 0 < frac <= 1:
        raise SelectionError(f"budget {spec!r} must be a fraction in (0, 100%]")
    return max(1, math.floor(frac * n_candidates + 0.5))


def make_strategy(
    strategy: str | Strategy, *, lambda_: float | None = None, encoder: str | None = None, **options: Any
) -> Strategy:
    """A strategy instance; ``lambda_`` / ``encoder`` are passed only to strategies that take them."""
    if isinstance(strategy, Strategy):
        return strategy
    from selection.registry import strategy_class

    cls = strategy_class(strategy)
    accepted = inspect.signature(cls.__init__).parameters if cls.__init__ is not object.__init__ else {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    for key, value in (("lambda_", lambda_), ("encoder", encoder)):
        if value is not None and (key in accepted or takes_any):
            options[key] = value
        elif value is not None and key == "lambda_":
            raise SelectionError(f"strategy {strategy!r} has no lambda")
    return get_strategy(strategy, **options)


def _stack(cands: Any, ctx: Any) -> Any:
    if ctx is None:
        return cands
    same_kind = isinstance(cands, np.ndarray) and isinstance(ctx, np.ndarray) and cands.ndim == ctx.ndim
    if same_kind and (cands.ndim == 2 or cands.shape[1] == ctx.shape[1]):
        return np.concatenate([cands, ctx])
    return [*list(cands), *list(ctx)]


def select(
    strategy: str | Strategy,
    budget: float | str,
    *,
    ids: Sequence[int] | np.ndarray | None = None,
    difficulty: Sequence[float] | np.ndarray | None = None,
    features: Any = None,
    context_features: Any = None,
    context_ids: Sequence[int] | None = None,
    lambda_: float | None = None,
    encoder: str | None = None,
    seed: int = 0,
    dtype: type = np.float32,
    **options: Any,
) -> SelectionResult:
    """Select ``budget`` of the candidates with ``strategy``.

    ``features``: per-video frame sets (a list of ``(T, D)`` arrays or an ``(N, F, D)``
    array), pooled vectors ``(N, d)``, or a prepared bank. ``ids`` default to
    ``0..N-1`` and define the input order used for tie-breaking.
    ``context_features`` are already-labelled videos counted as selected in the
    diversity term. Frame distances are screened in ``dtype`` (float32 by default) and the
    close contenders of every step are re-checked in float64, so ``mds`` picks are exact
    either way; pooled vectors are used in float32 unless given as float64.
    """
    strat = make_strategy(strategy, lambda_=lambda_, encoder=encoder, **options)
    n = None
    for arr in (ids, difficulty, features):
        if arr is not None and not isinstance(arr, (FrameBank, PooledBank)):
            n = len(arr)
            break
    if n is None and features is not None:
        n = len(features) - (len(context_features) if context_features is not None else 0)
    if n is None:
        raise SelectionError("give at least one of ids, difficulty or features")
    cand_ids = np.arange(n) if ids is None else np.asarray(ids)
    bank: FrameBank | PooledBank | None = None
    n_ctx = 0
    if features is not None:
        if isinstance(features, (FrameBank, PooledBank)):
            bank = features
            n_ctx = len(bank) - n
        else:
            n_ctx = len(context_features) if context_features is not None else 0
            bank = as_bank(_stack(features, context_features), dtype=dtype)
    ctx_ids = np.asarray(context_ids if context_ids is not None else -np.arange(1, n_ctx + 1), dtype=np.int64)
    try:
        problem = SelectionProblem(ids=cand_ids, difficulty=difficulty, bank=bank, context_ids=ctx_ids)
    except ValueError as e:
        raise SelectionError(str(e)) from None
    k = resolve_budget(budget, problem.n)
    return strat.select(problem, k, seed=seed)
