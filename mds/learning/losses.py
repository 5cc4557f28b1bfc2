"""Pairwise ranking objective of MDS-VQA (method.md §2.2, §5).

Thurstone Case V: ``p_hat = Phi((s_i - s_j) / sqrt(2))``; fidelity loss
``1 - sqrt(p * p_hat) - sqrt((1 - p) * (1 - p_hat))``. Pairs are formed inside a
micro-batch and only between items of the same group (dataset / rating scale).
"""

from __future__ import annotations

import math

import torch

EPS = 1e-6


def normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def pair_targets(t: torch.Tensor, ties: float) -> torch.Tensor:
    """``p_ij``: 1 if t_i > t_j, 0 if <, ``ties`` if equal (1.0 for failure labels, 0.5 for MOS)."""
    d = t[:, None] - t[None, :]
    return (d > 0).float() + ties * (d == 0).float()


def fidelity_loss(
    scores: torch.Tensor,
    targets: torch.Tensor,
    groups: torch.Tensor | None = None,
    *,
    ties: float = 1.0,
) -> torch.Tensor:
    """Mean fidelity loss over ordered pairs ``i != j`` of the batch (same group only).

    Returns a zero that keeps the graph when the batch has no valid pair.
    """
    s = scores.reshape(-1)
    t = targets.reshape(-1).to(s.dtype)
    p_hat = normal_cdf((s[:, None] - s[None, :]) / math.sqrt(2.0 + EPS))
    p = pair_targets(t, ties)
    loss = 1.0 - torch.sqrt(p * p_hat + EPS) - torch.sqrt((1.0 - p) * (1.0 - p_hat) + EPS)
    mask = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
    if groups is not None:
        g = groups.reshape(-1)
        mask &= g[:, None] == g[None, :]
    if not bool(mask.any()):
        return s.sum() * 0.0
    return loss[mask].mean()
