"""Array-level learning API (no database): base model, failure predictor g, fine-tuning.

Everything is seeded and deterministic on CPU. Typical oracle-replay use::

    base = train_base(X_src, mos_src, groups_src)
    err = np.abs(predict_quality(base, X_src) - mos_src)
    g = fit_failure_predictor(base, X_src, err, groups_src)
    difficulty = predict_difficulty(g, X_pool)
    ft = finetune_base(base, X_lab, mos_lab, groups_lab)
    quality = predict_quality(ft, X_test)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mds.learning.trainer import TrainConfig, TrainResult, split_indices, train_pairwise
from mds.quality.model import LORA_TARGETS, QualityNet, QualityNetConfig, predict_scores

DIFFICULTY_RANGE = (1.0, 5.0)


def minmax_normalise(
    mos: np.ndarray, groups: Sequence[Any] | np.ndarray | None = None, target: tuple[float, float] = (1.0, 5.0)
) -> tuple[np.ndarray, dict[Any, tuple[float, float]]]:
    """Min-max normalise MOS per group onto ``target`` (method.md §2.1); returns ``(values, ranges)``."""
    mos = np.asarray(mos, dtype=np.float64)
    groups = np.asarray(groups if groups is not None else np.zeros(len(mos), dtype=int))
    out = np.empty_like(mos)
    ranges: dict[Any, tuple[float, float]] = {}
    lo_t, hi_t = target
    for g in sorted(set(groups.tolist()), key=str):
        m = groups == g
        lo, hi = float(mos[m].min()), float(mos[m].max())
        ranges[g] = (lo, hi)
        out[m] = (mos[m] - lo) / (hi - lo) * (hi_t - lo_t) + lo_t if hi > lo else (lo_t + hi_t) / 2
    return out, ranges


@contextmanager
def small_model_threads() -> Iterator[None]:
    """One intra-op thread while training/running the tiny CPU models.

    Their matrices are so small that thread hand-off dominates: on a busy 2-core
    machine one thread is >10x faster than two.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _groups(groups: Sequence[Any] | np.ndarray | None, n: int) -> np.ndarray:
    return np.asarray(groups) if groups is not None else np.zeros(n, dtype=np.int64)


# --- base model -------------------------------------------------------------------------------


@small_model_threads()
def train_base(
    features: np.ndarray,
    mos: np.ndarray,
    groups: Sequence[Any] | np.ndarray | None = None,
    *,
    hidden: tuple[int, int] = (64, 32),
    epochs: int = 150,
    lr: float = 3e-3,
    batch_size: int = 32,
    reg_weight: float = 1.0,
    rank_weight: float = 1.0,
    weight_decay: float = 1e-3,
    val_frac: float = 0.15,
    patience: int = 30,
    seed: int = 0,
    feature_key: str = "",
    feature_names: Sequence[str] = (),
    on_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
) -> QualityNet:
    """Train the CPU default quality model on MOS already on its 1-5 scale (see :func:`minmax_normalise`).

    Objective: pairwise fidelity within a dataset plus MSE regression; early stopping by
    validation SRCC.
    """
    X = np.asarray(features, dtype=np.float32)
    y = np.asarray(mos, dtype=np.float32)
    grp = _groups(groups, len(X))
    torch.manual_seed(seed)
    model = QualityNet(
        QualityNetConfig(in_dim=X.shape[1], hidden=tuple(hidden), feature_key=feature_key,
                         feature_names=list(feature_names))
    )
    model.set_normalisation(X)
    Xt = torch.as_tensor(X)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience,
                      seed=seed, ties=0.5, rank_weight=rank_weight, reg_weight=reg_weight)
    tr, va = split_indices(len(X), grp, val_frac, seed)
    train_pairwise(model, lambda idx: model(Xt[idx]), y, grp, tr, va, cfg, on_epoch=on_epoch)
    return model


@small_model_threads()
def predict_quality(model: nn.Module, features: np.ndarray) -> np.ndarray:
    """Predicted MOS (1-5) of a base or fine-tuned quality model."""
    return predict_scores(model, np.asarray(features, dtype=np.float32)).astype(np.float64)


def crossfit_predictions(
    features: np.ndarray,
    mos: np.ndarray,
    groups: Sequence[Any] | np.ndarray | None = None,
    *,
    folds: int = 5,
    seed: int = 0,
    fold_of: np.ndarray | None = None,
    **base_options: Any,
) -> np.ndarray:
    """Out-of-fold predictions of the base architecture: each video is predicted by a model
    (:func:`train_base` with ``base_options``) trained on the other folds, never on itself.

    ``|crossfit − MOS|`` is an out-of-sample error, the honest supervision of g on the set
    the base model itself was trained on (its in-sample errors only measure fit).
    Folds are seeded and stratified by group, unless ``fold_of`` gives each video's fold
    (any labels, e.g. a distortion kind or a content id, to hold out whole groups).
    """
    X = np.asarray(features, dtype=np.float32)
    y = np.asarray(mos, dtype=np.float64)
    grp = _groups(groups, len(X))
    if fold_of is None:
        if folds < 2 or len(X) < 2 * folds:
            raise ValueError(f"cross-fitting needs folds >= 2 and at least {2 * folds} videos")
        rng = np.random.default_rng(seed)
        fold_of = np.empty(len(X), dtype=np.int64)
        for g in sorted(set(grp.tolist()), key=str):
            idx = np.flatnonzero(grp == g)
            fold_of[idx[rng.permutation(len(idx))]] = np.arange(len(idx)) % folds
    fold_of = np.asarray(fold_of)
    out = np.empty(len(X), dtype=np.float64)
    for k, f in enumerate(sorted(set(fold_of.tolist()), key=str)):
        te, tr = fold_of == f, fold_of != f
        m = train_base(X[tr], y[tr], grp[tr], seed=seed + 1 + k, **base_options)
        out[te] = predict_quality(m, X[te])
    return out


def group_folds(labels: Sequence[Any] | np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold per video that keeps every group (e.g. a content id) whole: ``folds`` folds,
    assigned by a seeded shuffle of the sorted distinct labels (stable across processes)."""
    labels = np.asarray(labels)
    distinct = sorted(set(labels.tolist()), key=str)
    if folds < 2 or len(distinct) < folds:
        raise ValueError(f"holding out groups needs folds >= 2 and at least {max(folds, 2)} distinct groups")
    order = np.random.default_rng(seed).permutation(len(distinct))
    fold_of_group = {distinct[j]: i % folds for i, j in enumerate(order)}
    return np.array([fold_of_group[v] for v in labels.tolist()], dtype=np.int64)


def _quality_core(model: nn.Module) -> QualityNet:
    """The QualityNet inside a (possibly peft-wrapped) model."""
    m = model
    while not isinstance(m, QualityNet):
        if hasattr(m, "get_base_model"):
            m = m.get_base_model()
        elif hasattr(m, "model"):
            m = m.model
        else:
            raise TypeError(f"not a quality model: {type(model).__name__}")
    return m


def lora_wrap(model: nn.Module, *, r: int = 8, alpha: int = 16, dropout: float = 0.0,
              targets: Sequence[str] = LORA_TARGETS) -> nn.Module:
    """A peft LoRA-wrapped copy of ``model`` (the original is left untouched); only adapters train."""
    from mds._compat import ensure_torchvision

    ensure_torchvision()
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets), bias="none")
    return get_peft_model(copy.deepcopy(model), cfg)


# --- failure predictor ------------------------------------------------------------------------


class FailureHead(nn.Module):
    """g = ``lo + (hi - lo) * sigmoid(w . h(x))`` on the hidden features ``h`` of a backbone."""

    def __init__(self, backbone: nn.Module, hidden_dim: int, hidden_fn: Callable[[nn.Module, Any], torch.Tensor]):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_dim, 1)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)
        self._hidden_fn = hidden_fn

    def forward(self, x: Any) -> torch.Tensor:
        lo, hi = DIFFICULTY_RANGE
        h = self._hidden_fn(self.backbone, x)
        return lo + (hi - lo) * torch.sigmoid(self.head(h).squeeze(-1))


def _quality_hidden(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return _quality_core(backbone).hidden(x)


@dataclass
class FailureModel:
    """An in-memory failure predictor. ``mode``: ``lora`` (LoRA on the base + head) or ``features``
    (a small ranking MLP on feature vectors, for bases mds cannot run)."""

    mode: str
    net: nn.Module
    config: dict[str, Any] = field(default_factory=dict)
    result: TrainResult | None = None

    def predict(self, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        return predict_difficulty(self, features, batch_size)


def build_failure_net(base: QualityNet | None, in_dim: int, *, mode: str, lora_r: int = 8, lora_alpha: int = 16,
                      hidden: tuple[int, int] = (64, 32), seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if mode == "lora":
        if base is None:
            raise ValueError("mode 'lora' needs a base model")
        backbone = lora_wrap(base, r=lora_r, alpha=lora_alpha, targets=("fc1", "fc2"))
        core = _quality_core(backbone)
        core.drop.p = 0.0
        return FailureHead(backbone, core.hidden_dim, _quality_hidden)
    if mode == "features":
        net = QualityNet(QualityNetConfig(in_dim=in_dim, hidden=hidden, score_range=DIFFICULTY_RANGE, dropout=0.0))
        return net
    raise ValueError(f"unknown failure-predictor mode {mode!r}")


@small_model_threads()
def fit_failure_predictor(
    base: QualityNet | None,
    features: np.ndarray,
    errors: np.ndarray,
    groups: Sequence[Any] | np.ndarray | None = None,
    *,
    mode: str | None = None,
    epochs: int = 60,
    lr: float = 5e-3,
    batch_size: int = 16,
    lora_r: int = 8,
    lora_alpha: int = 16,
    val_frac: float = 0.2,
    patience: int = 12,
    seed: int = 0,
    state_dir: str | Path | None = None,
    on_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> FailureModel:
    """Train g on the base model's errors with the pairwise fidelity loss (ties -> 1, pairs within a group).

    ``base`` given: LoRA adapters on its ``fc1``/``fc2`` + a scalar head on its hidden
    features (base frozen). ``base=None``: a ranking MLP on ``features`` (embeddings or
    imported vectors). Early stopping on a seeded validation split by Spearman(g, error).
    """
    mode = mode or ("lora" if base is not None else "features")
    X = np.asarray(features, dtype=np.float32)
    e = np.asarray(errors, dtype=np.float32)
    grp = _groups(groups, len(X))
    net = build_failure_net(base, X.shape[1], mode=mode, lora_r=lora_r, lora_alpha=lora_alpha, seed=seed)
    if mode == "features":
        net.set_normalisation(X)
    Xt = torch.as_tensor(X)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed, ties=1.0)
    tr, va = split_indices(len(X), grp, val_frac, seed)
    res = train_pairwise(net, lambda idx: net(Xt[idx]), e, grp, tr, va, cfg, state_dir=state_dir,
                         on_epoch=on_epoch, on_step=on_step)
    config = {"mode": mode, "lora_r": lora_r, "lora_alpha": lora_alpha, "in_dim": int(X.shape[1]),
              "train": cfg.as_dict(), "val_frac": val_frac, "n_train": len(tr), "n_val": len(va)}
    return FailureModel(mode=mode, net=net, config=config, result=res)


@small_model_threads()
def predict_difficulty(g: FailureModel | nn.Module, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Continuous difficulty scores in [1, 5] (higher = the base model is more likely wrong)."""
    net = g.net if isinstance(g, FailureModel) else g
    return predict_scores(net, np.asarray(features, dtype=np.float32), batch_size).astype(np.float64)


# --- active fine-tuning -----------------------------------------------------------------------


@small_model_threads()
def finetune_base(
    base: nn.Module,
    features: np.ndarray,
    mos: np.ndarray,
    groups: Sequence[Any] | np.ndarray | None = None,
    *,
    epochs: int = 40,
    lr: float = 3e-3,
    batch_size: int = 16,
    lora_r: int = 4,
    lora_alpha: int = 8,
    reg_weight: float = 1.0,
    val_frac: float = 0.0,
    patience: int = 0,
    seed: int = 0,
    state_dir: str | Path | None = None,
    on_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> nn.Module:
    """LoRA fine-tuning of a quality model on labels from several datasets (MOS on 1-5 per dataset).

    Micro-batches never mix datasets; objective: pairwise fidelity (ties 0.5) plus
    ``reg_weight`` x MSE. Returns the peft-wrapped model (the input is not modified).
    """
    X = np.asarray(features, dtype=np.float32)
    y = np.asarray(mos, dtype=np.float32)
    grp = _groups(groups, len(X))
    torch.manual_seed(seed)
    model = lora_wrap(base, r=lora_r, alpha=lora_alpha)
    _quality_core(model).drop.p = 0.0
    Xt = torch.as_tensor(X)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed, ties=0.5,
                      reg_weight=reg_weight)
    tr, va = split_indices(len(X), grp, val_frac, seed)
    res = train_pairwise(model, lambda idx: model(Xt[idx]), y, grp, tr, va, cfg, state_dir=state_dir,
                         on_epoch=on_epoch, on_step=on_step)
    model.train_result = res  # type: ignore[attr-defined]
    return model


def merge_finetuned(model: nn.Module) -> QualityNet:
    """A plain QualityNet with the LoRA update merged in (a base for the next round)."""
    m = copy.deepcopy(model)
    if hasattr(m, "merge_and_unload"):
        m = m.merge_and_unload()
    return _quality_core(m)
