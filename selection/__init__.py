"""Selection engine: embeddings, distances, strategies (MDS-VQA greedy and baselines), rounds.

Light at import; the public names resolve lazily::

    from selection import select, select_round, list_strategies, register_strategy, Strategy
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "select": "selection.api",
    "resolve_budget": "selection.api",
    "make_strategy": "selection.api",
    "select_round": "selection.rounds",
    "CandidateFilter": "selection.rounds",
    "load_problem": "selection.rounds",
    "list_strategies": "selection.registry",
    "get_strategy": "selection.registry",
    "register_strategy": "selection.registry",
    "Strategy": "selection.strategies.base",
    "SelectionProblem": "selection.strategies.base",
    "SelectionResult": "selection.strategies.base",
    "Pick": "selection.strategies.base",
    "default_lambda": "selection.strategies.greedy",
    "chamfer": "selection.distances",
    "FrameBank": "selection.distances",
    "PooledBank": "selection.distances",
    "embed_pool": "selection.embeddings.embed",
    "EncoderSpec": "selection.embeddings.encoder",
    "EmbeddingStore": "selection.embeddings.store",
    "import_scores": "selection.imports",
    "import_embeddings": "selection.imports",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'selection' has no attribute {name!r}")
