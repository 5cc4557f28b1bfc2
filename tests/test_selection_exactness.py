"""The exact greedy against a plain transcription of the reference per-pair loop (method.md §3-4)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from selection import chamfer, select
from selection.distances import FrameBank


def reference_chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Bidirectional mean Chamfer: both T_a x T_b matrices, float64, as described."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    ab = cdist(a, b, "euclidean").min(axis=1).mean()
    ba = cdist(b, a, "euclidean").min(axis=1).mean()
    return float((ab + ba) / 2)


def reference_greedy(g: list[float], feats: list[np.ndarray], k: int, lam: float) -> list[int]:
    """First pick argmax g; running sums s_j; score_j = g_j + lam * s_j / k; argmax (first index)."""
    n = len(g)
    g_arr = np.array(g, dtype=np.float64)
    first = int(np.argmax(g_arr))
    selected = [first]
    s = np.zeros(n)
    for j in range(n):
        if j != first:
            s[j] = reference_chamfer(feats[first], feats[j])
    for step in range(1, k):
        scores = np.full(n, -np.inf)
        for j in range(n):
            if j not in selected:
                scores[j] = g_arr[j] + lam * s[j] / step
        new = int(np.argmax(scores))
        selected.append(new)
        for j in range(n):
            if j not in selected:
                s[j] += reference_chamfer(feats[new], feats[j])
    return selected


def synthetic(
    n: int, f: int | tuple[int, int], d: int, seed: int, dup: int = 0
) -> tuple[list[float], list[np.ndarray]]:
    """Clustered unit-norm frame sets (fp16-rounded like stored features) and quantised difficulties."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(2, n // 5), d))
    feats = []
    for _ in range(n):
        t = f if isinstance(f, int) else int(rng.integers(f[0], f[1] + 1))
        c = centres[rng.integers(len(centres))]
        x = c + 0.6 * rng.normal(size=(t, d))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        feats.append(x.astype(np.float16).astype(np.float32))
    # Duplicated videos create exact ties in the diversity term as well.
    for i in range(dup):
        feats[n - 1 - i] = feats[i].copy()
    g = list(rng.choice([2.0, 2.5, 2.8, 3.0, 3.5, 4.0], size=n, p=[0.5, 0.2, 0.1, 0.1, 0.05, 0.05]))
    for i in range(dup):
        g[n - 1 - i] = g[i]
    return g, feats


def test_batched_chamfer_matches_reference_pairs() -> None:
    _, feats = synthetic(12, (3, 9), 16, seed=3)
    bank = FrameBank.from_list(feats)
    for i in (0, 5, 11):
        d = bank.distances_from(i)
        ref = [reference_chamfer(feats[i], feats[j]) for j in range(len(feats))]
        np.testing.assert_allclose(d, ref, rtol=0, atol=1e-9)
        assert chamfer(feats[i], feats[3]) == pytest.approx(ref[3], abs=1e-12)
    assert d[11] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("n", "f", "d", "k", "lam", "seed", "dup"),
    [
        (40, 4, 8, 10, 0.25, 0, 0),
        (60, (2, 7), 16, 15, 0.25, 1, 4),
        (80, 6, 12, 20, 0.075, 2, 6),
        (50, 3, 32, 25, 1.0, 3, 5),
        (30, (1, 5), 8, 30, 0.25, 4, 3),  # K = N: every candidate, order matters
        (70, 5, 16, 12, 5.0, 5, 8),  # diversity dominates
        (45, 8, 8, 9, 0.0, 6, 4),  # lambda 0: ties in g resolved by input order
    ],
)
@pytest.mark.parametrize("lazy", [True, False])
def test_exact_mode_matches_reference_loop(n, f, d, k, lam, seed, dup, lazy) -> None:
    g, feats = synthetic(n, f, d, seed, dup)
    expected = reference_greedy(g, feats, k, lam)
    got = select("mds", k, difficulty=g, features=feats, lambda_=lam, dtype=np.float64, lazy=lazy)
    assert got.positions == expected
    assert got.params["lazy"] is lazy
    # Without the exact pruning the picks are the same too.
    got2 = select("mds", k, difficulty=g, features=feats, lambda_=lam, prune=False, lazy=lazy)
    assert got2.positions == expected
    # float32 storage (screened + verified, or lazily computed in float64): the same picks.
    got3 = select(
        "mds", k, difficulty=g, features=feats, lambda_=lam, dtype=np.float32, prune=False, lazy=lazy
    )
    assert got3.positions == expected
    if lam > 0 and k > 2:
        assert got3.params["verified_pairs"] > 0
    np.testing.assert_allclose(
        [p.diversity or 0 for p in got3.picks], [p.diversity or 0 for p in got.picks], atol=1e-9
    )


def test_audit_terms_recompute_from_reference_distances() -> None:
    g, feats = synthetic(30, 5, 8, seed=9, dup=2)
    res = select("mds", 8, difficulty=g, features=feats, lambda_=0.25, ids=np.arange(100, 130))
    first = res.picks[0]
    assert first.diversity is None and first.total == first.difficulty == max(g)
    chosen: list[int] = []
    for p in res.picks:
        if chosen:
            mean_d = np.mean([reference_chamfer(feats[p.position], feats[c]) for c in chosen])
            assert p.diversity == pytest.approx(mean_d, abs=1e-9)
            assert p.total == pytest.approx(g[p.position] + 0.25 * mean_d, abs=1e-9)
            assert p.extra["margin"] >= 0
        assert p.video_id == 100 + p.position
        chosen.append(p.position)
    assert res.params["evaluated"] <= res.params["candidates"] == 30


def test_context_counts_as_selected() -> None:
    g, feats = synthetic(25, 4, 8, seed=11)
    ctx = feats[:3]
    cand, gc = feats[3:], g[3:]
    res = select("mds", 5, difficulty=gc, features=cand, context_features=ctx, lambda_=2.0)
    # Reference semantics with the context prepended as already-selected videos.
    sel: list[int] = []
    s = np.array([sum(reference_chamfer(c, x) for c in ctx) for x in cand])
    for step in range(5):
        scores = np.array(gc) + 2.0 * s / (3 + step)
        scores[sel] = -np.inf
        j = int(np.argmax(scores))
        sel.append(j)
        s += np.array([reference_chamfer(cand[j], x) for x in cand])
    assert res.positions == sel
    assert res.picks[0].diversity is not None


def test_verified_float32_on_near_ties() -> None:
    """Near-duplicate videos: diversity gaps far below float32 noise; screening must still pick exactly."""
    rng = np.random.default_rng(21)
    base = rng.normal(size=(8, 6, 16))
    feats = []
    for i in range(48):
        x = base[i % 8] + 2e-4 * rng.normal(size=(6, 16))
        feats.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    g = [3.0] * 48
    expected = reference_greedy(g, feats, 16, 0.25)
    got = select("mds", 16, difficulty=g, features=feats, lambda_=0.25, dtype=np.float32)
    assert got.positions == expected
    assert got.params["verified_pairs"] > 0


def reference_steps(
    g: list[float], feats: list[np.ndarray], k: int, lam: float, n_ctx: int = 0
) -> list[np.ndarray]:
    """Per step, the reference's full score vector (-inf for selected); the first ``n_ctx`` sets are context."""
    cand = feats[n_ctx:]
    g_arr = np.array(g, dtype=np.float64)
    s = np.array([sum(reference_chamfer(c, x) for c in feats[:n_ctx]) for x in cand], dtype=np.float64)
    selected: list[int] = []
    out = []
    for step in range(k):
        kk = n_ctx + step
        scores = g_arr + lam * s / kk if kk else g_arr.copy()
        scores[selected] = -np.inf
        out.append(scores)
        new = int(np.argmax(scores))
        selected.append(new)
        s += np.array([reference_chamfer(cand[new], x) for x in cand])
    return out


def assert_audit_matches_reference(res, steps: list[np.ndarray], tol: float) -> None:
    """Pick, diversity, total, ties, runner-up and margin of every step, from the reference's scores."""
    for p, scores in zip(res.picks, steps):
        best = scores.max()
        assert p.position == int(np.flatnonzero(scores >= best - tol)[0])
        assert p.total == pytest.approx(scores[p.position], abs=1e-9)
        assert p.extra["ties"] == int((scores >= best - tol).sum())
        rest = scores.copy()
        rest[p.position] = -np.inf
        if np.isfinite(rest).any():
            # The runner-up is the best of the rest, with the pick's tie rule (lowest position within tol).
            assert p.extra["runner_up"] == int(np.flatnonzero(rest >= rest.max() - tol)[0])
            assert p.extra["margin"] == pytest.approx(scores[p.position] - rest.max(), abs=1e-9)
        else:
            assert p.extra["runner_up"] is None and p.extra["margin"] is None


@pytest.mark.parametrize(
    ("n", "f", "k", "lam", "seed", "dup", "levels"),
    [
        (40, 4, 12, 0.25, 30, 10, [3.0]),  # all g equal, many duplicated videos: exact ties everywhere
        (50, (2, 6), 20, 25.0, 31, 6, None),  # lambda large: diversity dominates
        (36, 5, 10, 0.0, 32, 6, [2.0, 3.0]),  # lambda 0: g ties resolved by input order
        (24, (1, 4), 24, 0.25, 33, 4, None),  # K = N
        (24, 3, 23, 1.0, 34, 3, None),  # K = N - 1
        (40, 4, 15, -0.5, 35, 4, None),  # negative lambda: similarity preferred (bounds flip)
    ],
)
def test_lazy_path_exact_under_stress(n, f, k, lam, seed, dup, levels) -> None:
    g, feats = synthetic(n, f, 8, seed, dup)
    if levels is not None:
        g = [levels[i % len(levels)] for i in range(n)]
        for i in range(dup):
            g[n - 1 - i] = g[i]
    expected = reference_greedy(g, feats, k, lam)
    steps = reference_steps(g, feats, k, lam)
    lazy = select("mds", k, difficulty=g, features=feats, lambda_=lam, dtype=np.float32, lazy=True)
    full = select("mds", k, difficulty=g, features=feats, lambda_=lam, dtype=np.float64, lazy=False)
    assert lazy.positions == full.positions == expected
    assert_audit_matches_reference(lazy, steps, lazy.params["tie_tol"])
    for a, b in zip(lazy.picks, full.picks):
        assert a.extra["ties"] == b.extra["ties"] and a.extra["runner_up"] == b.extra["runner_up"]
        assert a.extra["rank_difficulty"] == b.extra["rank_difficulty"]
        assert (a.diversity is None) == (b.diversity is None)
        assert a.total == pytest.approx(b.total, abs=1e-9)
        assert a.extra["margin"] == pytest.approx(b.extra["margin"], abs=1e-9)


@pytest.mark.parametrize("cache", [True, False])
def test_lazy_path_with_context_and_padding(cache: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not cache:  # candidates' float64 copies made per use instead of kept
        monkeypatch.setattr("selection.strategies.greedy._LAZY_CACHE_BYTES", 0)
    g, feats = synthetic(34, (2, 7), 8, seed=36, dup=3)
    ctx, cand, gc = feats[:4], feats[4:], g[4:]
    res = select("mds", 9, difficulty=gc, features=cand, context_features=ctx, lambda_=0.5, lazy=True)
    steps = reference_steps(gc, feats, 9, 0.5, n_ctx=4)
    assert res.positions == [int(np.argmax(s)) for s in steps]
    assert_audit_matches_reference(res, steps, res.params["tie_tol"])


def test_lazy_path_skips_candidates_that_cannot_win() -> None:
    """Quantised g with clear gaps: most distances are never computed, the picks stay the reference's."""
    g, feats = synthetic(120, 4, 16, seed=37)
    g = [5.0 - 0.5 * (i % 6) for i in range(120)]  # six levels 0.5 apart, 20 videos each
    expected = reference_greedy(g, feats, 30, 0.1)
    res = select("mds", 30, difficulty=g, features=feats, lambda_=0.1, prune=False, lazy=True)
    assert res.positions == expected
    full_pairs = sum(120 - 1 - s for s in range(29))  # every pick against every remaining candidate
    assert 0 < res.params["lazy_pairs"] < full_pairs / 3
