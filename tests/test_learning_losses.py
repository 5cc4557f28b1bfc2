"""The pairwise Thurstone / fidelity objective and single-dataset micro-batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mds.learning.losses import fidelity_loss, normal_cdf, pair_targets
from mds.learning.trainer import batch_plan, split_indices


def test_thurstone_probability() -> None:
    assert float(normal_cdf(torch.tensor(0.0))) == pytest.approx(0.5)
    # p_hat(x, y) = Phi((s_x - s_y) / sqrt(2)): a one-point gap gives Phi(0.7071) = 0.7602
    s = torch.tensor([3.0, 2.0])
    p_hat = normal_cdf((s[0] - s[1]) / math.sqrt(2.0))
    assert float(p_hat) == pytest.approx(0.760250, abs=1e-5)


def test_fidelity_loss_value_matches_formula() -> None:
    s = torch.tensor([3.0, 2.0])
    t = torch.tensor([0.9, 0.1])  # i has the larger error: p_01 = 1, p_10 = 0
    p_hat = 0.760250
    expected = 1 - math.sqrt(p_hat + 1e-6) - math.sqrt(1e-6)  # both ordered pairs give the same value
    assert float(fidelity_loss(s, t)) == pytest.approx(expected, abs=1e-4)


def test_loss_prefers_the_right_order_and_ties_go_to_one() -> None:
    t = torch.tensor([0.1, 0.5, 0.9])
    right = fidelity_loss(torch.tensor([1.0, 3.0, 5.0]), t)
    wrong = fidelity_loss(torch.tensor([5.0, 3.0, 1.0]), t)
    assert float(right) < float(wrong)
    p = pair_targets(torch.tensor([1.0, 1.0, 2.0]), ties=1.0)
    assert p[0, 1] == 1 and p[1, 0] == 1 and p[0, 2] == 0 and p[2, 0] == 1
    assert pair_targets(torch.tensor([1.0, 1.0]), ties=0.5)[0, 1] == 0.5


def test_pairs_never_cross_groups() -> None:
    s = torch.tensor([1.0, 5.0, 1.0, 5.0], requires_grad=True)
    t = torch.tensor([0.0, 1.0, 1.0, 0.0])
    # Within each group the order is right; across groups it would be wrong - and must not count.
    within = fidelity_loss(s, t, torch.tensor([0, 0, 1, 1])).detach()
    within2 = fidelity_loss(s[:2], t[:2]).detach()
    assert float(within) == pytest.approx((float(within2) + float(fidelity_loss(s[2:], t[2:]).detach())) / 2)
    lone = fidelity_loss(s[:2], t[:2], torch.tensor([0, 1]))
    assert float(lone.detach()) == 0.0
    lone.backward()  # a batch without pairs still back-propagates (zero gradient)


def test_batch_plan_single_dataset_deterministic_and_complete() -> None:
    groups = np.array([0] * 37 + [1] * 9)
    idx = np.arange(46)
    plan = batch_plan(groups, idx, 8, seed=3, epoch=0)
    assert all(len(set(groups[b].tolist())) == 1 for b in plan)
    assert sorted(np.concatenate(plan).tolist()) == idx.tolist()
    assert all(len(b) >= 2 for b in plan)
    again = batch_plan(groups, idx, 8, seed=3, epoch=0)
    assert all((a == b).all() for a, b in zip(plan, again, strict=True))
    other = batch_plan(groups, idx, 8, seed=3, epoch=1)
    assert any((a.shape != b.shape) or (a != b).any() for a, b in zip(plan, other, strict=False))
    # The small dataset is not left to the end: its batches are interleaved.
    firsts = [groups[b[0]] for b in plan[:4]]
    assert 1 in firsts


def test_split_is_stratified_and_seeded() -> None:
    groups = np.array(["a"] * 50 + ["b"] * 20)
    tr, va = split_indices(70, groups, 0.2, seed=0)
    assert len(va) == 14 and set(tr) | set(va) == set(range(70)) and not set(tr) & set(va)
    assert (groups[va] == "b").sum() == 4
    _tr2, va2 = split_indices(70, groups, 0.2, seed=0)
    assert (va == va2).all()
