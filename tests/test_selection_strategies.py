"""Strategy contract: registry and plug-ins, baselines, pooled mode, budgets, determinism."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mds.errors import SelectionError
from selection import (
    SelectionResult,
    Strategy,
    default_lambda,
    get_strategy,
    list_strategies,
    register_strategy,
    resolve_budget,
    select,
)
from selection.distances import FrameBank, PooledBank, pooled_distances
from tests.test_selection_exactness import reference_chamfer, synthetic


def test_budget_parsing() -> None:
    assert resolve_budget(64, 1624) == 64
    assert resolve_budget("64", 1624) == 64
    assert resolve_budget("5%", 1624) == 81  # 81.2
    assert resolve_budget("5%", 10) == 1  # 0.5 rounds up, at least 1
    assert resolve_budget(0.1, 30) == 3
    for bad in ("0", "-3", "150%", "x", "1.5"):
        with pytest.raises(SelectionError):
            resolve_budget(bad, 100)


def test_default_lambda_per_encoder() -> None:
    assert default_lambda("open_clip:RN101:tag-openai:F8") == 0.25
    assert default_lambda("import:siglip2-giant") == 0.075
    assert default_lambda(None) == 0.25


@pytest.mark.parametrize("name", ["mds", "mds-pooled", "random", "difficulty", "diversity"])
def test_every_builtin_honours_the_contract(name: str) -> None:
    g, feats = synthetic(40, 4, 8, seed=1)
    ids = np.arange(1000, 1040)
    a = select(name, 7, ids=ids, difficulty=g, features=feats, seed=5)
    b = select(name, 7, ids=ids, difficulty=g, features=feats, seed=5)
    assert a.ids == b.ids  # deterministic under a seed
    assert len(a.ids) == len(set(a.ids)) == 7 and set(a.ids) <= set(ids.tolist())
    assert a.strategy == name
    for i, p in enumerate(a.picks):
        assert p.difficulty == g[p.position]
        assert p.extra["step"] == i
        assert (p.diversity is None) == (i == 0)  # mean distance to earlier picks, recorded for every strategy
    assert name in list_strategies()


def test_random_changes_with_seed_and_difficulty_is_stable_top_k() -> None:
    g = [2.0, 3.0, 3.0, 1.0, 3.0, 2.5]
    assert select("random", 3, difficulty=g, seed=1).ids != select("random", 3, difficulty=g, seed=2).ids
    r = select("difficulty", 4, difficulty=g)
    assert r.ids == [1, 2, 4, 5]  # ties in input order
    assert r.picks[-1].extra["margin"] == 0.5


def test_kcenter_maximises_min_distance() -> None:
    pts = np.array([[0.0, 0], [10, 0], [0, 10], [1, 0], [5, 5], [10, 10]])
    r = select("diversity", 4, features=pts, first="first")
    assert r.ids == [0, 5, 1, 2]
    assert r.picks[1].total == pytest.approx(np.sqrt(200))
    assert r.picks[2].extra["min_distance"] == pytest.approx(10.0)


def test_pooled_mode_and_distances() -> None:
    x = np.random.default_rng(0).normal(size=(20, 6))  # float64: no cancellation noise at d = 0
    d = pooled_distances(x[3], x)
    np.testing.assert_allclose(d, np.linalg.norm(x - x[3], axis=1), atol=1e-5)
    c = pooled_distances(x[3], x, metric="cosine")
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(c, 1 - xn @ xn[3], atol=1e-6)
    g, feats = synthetic(30, 4, 8, seed=2)
    bank = FrameBank.from_list(feats)
    r = select("mds-pooled", 5, difficulty=g, features=feats, lambda_=1.0)
    assert r.params["approximate"] and r.params["distance"] == "pooled"
    # The same greedy on the pooled vectors, checked by hand for the second pick.
    pooled = bank.pooled()
    first = int(np.argmax(g))
    d1 = np.linalg.norm(pooled - pooled[first], axis=1)
    tot = np.array(g) + d1
    tot[first] = -np.inf
    assert r.positions[:2] == [first, int(np.argmax(tot))]


def test_prefilter_is_labelled_approximate_and_exact_pruning_is_not() -> None:
    g, feats = synthetic(60, 4, 8, seed=4)
    exact = select("mds", 10, difficulty=g, features=feats)
    assert not exact.params["approximate"] and exact.params["evaluated"] < 60
    approx = select("mds", 10, difficulty=g, features=feats, prefilter_m=15)
    assert approx.params["approximate"] and approx.params["prefilter_m"] == 15
    top15 = set(np.argsort(-np.array(g), kind="stable")[:15].tolist())
    assert set(approx.positions) <= top15  # only the top-M by g were candidates
    assert exact.objective(0.25) is not None and approx.objective(0.25) is not None


def test_objective_from_audit_terms() -> None:
    g, feats = synthetic(12, 3, 8, seed=6)
    r = select("mds", 4, difficulty=g, features=feats, lambda_=0.5)
    pos = r.positions
    pair = [reference_chamfer(feats[a], feats[b]) for i, a in enumerate(pos) for b in pos[:i]]
    assert r.objective(0.5) == pytest.approx(np.mean([g[p] for p in pos]) + 0.5 * np.mean(pair), abs=1e-9)


def test_plugin_in_one_file_and_errors() -> None:
    @register_strategy
    class Last(Strategy):
        name = "test-last"

        def select(self, problem: Any, budget: int, *, seed: int = 0) -> SelectionResult:
            from selection import Pick

            self.check(problem, budget)
            pos = list(range(problem.n - 1, problem.n - 1 - budget, -1))
            return SelectionResult(self.name, [Pick(int(problem.ids[p]), p, None, None, None) for p in pos])

    assert "test-last" in list_strategies()
    assert select("test-last", 2, ids=[5, 6, 7]).ids == [7, 6]
    with pytest.raises(SelectionError, match="unknown strategy"):
        get_strategy("nope")
    with pytest.raises(SelectionError, match="has no lambda"):
        select("random", 2, ids=[1, 2, 3], lambda_=0.3)
    with pytest.raises(SelectionError, match="needs difficulty"):
        select("mds", 2, features=np.eye(3))
    with pytest.raises(SelectionError, match="needs embeddings"):
        select("diversity", 2, ids=[1, 2, 3])
    with pytest.raises(SelectionError, match="unique"):
        select("random", 1, ids=[1, 1])


def test_entry_point_group_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import selection.registry as reg

    ep = EntryPoint(name="ep-random", value="selection.strategies.baselines:RandomStrategy", group=reg.ENTRY_POINT_GROUP)
    monkeypatch.setattr(reg, "entry_points", lambda group: [ep] if group == reg.ENTRY_POINT_GROUP else [])
    assert "ep-random" in reg.list_strategies()
    assert reg.strategy_class("ep-random").__name__ == "RandomStrategy"


def test_context_shifts_kcenter_and_pooled_bank_subset() -> None:
    pts = np.array([[0.0, 0], [1, 0], [9, 0], [10, 0]])
    r = select("diversity", 1, features=pts[:3], context_features=pts[3:])
    assert r.ids == [0]  # farthest from the labelled point at x=10
    b = PooledBank(pts, "euclidean").subset(np.array([0, 3]))
    assert b.distances_from(0).tolist() == [0.0, 10.0]
