"""Strategy registry: built-ins, :func:`register_strategy`, and the ``mds.strategies`` entry points.

Adding a strategy takes one file::

    # my_package/farthest_hard.py
    from selection import Strategy, SelectionResult, register_strategy

    @register_strategy
    class FarthestHard(Strategy):
        name = "farthest-hard"
        needs_difficulty = True

        def select(self, problem, budget, *, seed=0):
            ...
            return SelectionResult(self.name, picks)

and, for a distribution, an entry point in its ``pyproject.toml``::

    [project.entry-points."mds.strategies"]
    farthest-hard = "my_package.farthest_hard:FarthestHard"

Built-ins and entry points are resolved lazily (by dotted path) on first use.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from mds.errors import SelectionError
from selection.strategies.base import Strategy

ENTRY_POINT_GROUP = "mds.strategies"

_BUILTIN: dict[str, str] = {
    "mds": "selection.strategies.greedy:MdsStrategy",
    "mds-pooled": "selection.strategies.greedy:PooledMdsStrategy",
    "random": "selection.strategies.baselines:RandomStrategy",
    "difficulty": "selection.strategies.baselines:DifficultyStrategy",
    "diversity": "selection.strategies.baselines:DiversityStrategy",
}
_REGISTERED: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator adding a :class:`Strategy` subclass under its ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)) or not cls.name:
        raise TypeError("register_strategy needs a Strategy subclass with a non-empty 'name'")
    _REGISTERED[cls.name] = cls
    return cls


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def list_strategies() -> list[str]:
    """Names of all known strategies (built-in, registered, entry points)."""
    return sorted({*_BUILTIN, *_REGISTERED, *_entry_points()})


def strategy_class(name: str) -> type[Strategy]:
    """The strategy class for ``name`` (one-line :class:`SelectionError` if unknown)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN:
        module, attr = _BUILTIN[name].split(":")
        cls = getattr(importlib.import_module(module), attr)
    else:
        eps = _entry_points()
        if name not in eps:
            raise SelectionError(f"unknown strategy {name!r}; known: {', '.join(list_strategies())}")
        cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise SelectionError(f"strategy {name!r} does not resolve to a Strategy subclass")
    return cls


def get_strategy(name: str, **options: Any) -> Strategy:
    """Instantiate a strategy with its options (unknown options are a one-line error)."""
    cls = strategy_class(name)
    try:
        return cls(**options)
    except TypeError as e:
        raise SelectionError(f"strategy {name!r}: {e}") from None
