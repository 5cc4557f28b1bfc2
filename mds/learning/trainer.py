"""One training loop for every learner: pairwise fidelity (+ optional regression), resumable.

Items are indexed ``0..n-1``; the caller supplies ``score_fn(idx) -> (B,)`` tensor
(a feature MLP, a LoRA-wrapped quality model or a VLM with pooled hidden states).
Micro-batches hold items of one group only (one dataset, hence one rating
scale); each epoch's batch plan depends only on ``(seed, epoch)``, so a run that
is interrupted and resumed from its saved state follows exactly the same path as
an uninterrupted one.

The training state (trainable parameters, optimiser, epoch, position in the
epoch, best validation state, RNG) is written atomically to ``state_dir`` at the
end of each epoch and every ``save_every_steps`` steps.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mds.learning.losses import fidelity_loss

STATE_FILE = "train_state.pt"


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.0
    patience: int = 10  # epochs without validation improvement before stopping (0 = never stop early)
    seed: int = 0
    ties: float = 1.0  # pair target for equal labels (1.0: failure labels, as in the paper; 0.5: MOS)
    rank_weight: float = 1.0
    reg_weight: float = 0.0  # weight of an MSE term on the regression target (0 = pure ranking)
    grad_clip: float = 1.0
    save_every_steps: int = 0  # 0 = save the training state at epoch ends only
    higher_is_better_val: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class TrainResult:
    best_val: float | None
    best_epoch: int
    epochs_run: int
    steps: int
    resumed: bool
    history: list[dict[str, float]] = field(default_factory=list)


def batch_plan(groups: np.ndarray, train_idx: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Micro-batches of one group each; the group of the next batch is drawn uniformly among
    groups with batches left (method.md §5), so small datasets are not drowned out."""
    rng = np.random.default_rng([seed, epoch])
    per_group: list[list[np.ndarray]] = []
    for g in sorted(set(groups[train_idx].tolist())):
        idx = train_idx[groups[train_idx] == g]
        idx = idx[rng.permutation(len(idx))]
        chunks = [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
        if len(chunks) > 1 and len(chunks[-1]) < 2:  # a lone item has no pair: join it to the previous batch
            chunks[-2] = np.concatenate([chunks[-2], chunks[-1]])
            chunks.pop()
        per_group.append(chunks)
    plan: list[np.ndarray] = []
    while any(per_group):
        live = [i for i, c in enumerate(per_group) if c]
        plan.append(per_group[live[int(rng.integers(len(live)))]].pop(0))
    return plan


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _trainable(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


def _load_trainable(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(module.named_parameters())
    with torch.no_grad():
        for n, v in state.items():
            params[n].copy_(v)


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_pairwise(
    module: nn.Module,
    score_fn: Callable[[np.ndarray], torch.Tensor],
    targets: np.ndarray,
    groups: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    config: TrainConfig,
    *,
    reg_targets: np.ndarray | None = None,
    state_dir: str | Path | None = None,
    on_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    val_score_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    loss_fn: Callable[[np.ndarray], torch.Tensor] | None = None,
) -> TrainResult:
    """Train the trainable parameters of ``module``; leaves it holding the best validation state.

    ``targets`` rank the items (errors for g, MOS for fine-tuning); ``reg_targets``
    (default ``targets``) feed the optional MSE term. ``loss_fn(idx)`` replaces the
    ranking objective altogether (e.g. a language-model loss). With ``state_dir`` an
    existing state of the same configuration is resumed.
    """
    targets = np.asarray(targets, dtype=np.float32)
    reg = np.asarray(reg_targets if reg_targets is not None else targets, dtype=np.float32)
    gcodes = np.unique(np.asarray(groups), return_inverse=True)[1].astype(np.int64)
    train_idx = np.asarray(train_idx, dtype=np.int64)
    val_idx = np.asarray(val_idx, dtype=np.int64)
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the module has no trainable parameters")
    torch.manual_seed(config.seed)
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    state_path = Path(state_dir) / STATE_FILE if state_dir else None

    epoch, pos, step = 0, 0, 0
    best_val, best_epoch, best_state, bad = None, -1, _trainable(module), 0
    history: list[dict[str, float]] = []
    resumed = False
    if state_path is not None and state_path.is_file():
        st = torch.load(state_path, weights_only=False)
        if st.get("config_digest") == config.digest() and st.get("n_items") == len(targets):
            _load_trainable(module, st["params"])
            opt.load_state_dict(st["optimizer"])
            epoch, pos, step = st["epoch"], st["pos"], st["step"]
            best_val, best_epoch, best_state, bad = st["best_val"], st["best_epoch"], st["best_state"], st["bad"]
            history = st["history"]
            torch.set_rng_state(st["torch_rng"])
            resumed = True

    def save_state() -> None:
        if state_path is None:
            return
        _atomic_save(
            {
                "config_digest": config.digest(),
                "n_items": len(targets),
                "params": _trainable(module),
                "optimizer": opt.state_dict(),
                "epoch": epoch,
                "pos": pos,
                "step": step,
                "best_val": best_val,
                "best_epoch": best_epoch,
                "best_state": best_state,
                "bad": bad,
                "history": history,
                "torch_rng": torch.get_rng_state(),
            },
            state_path,
        )

    def evaluate() -> float | None:
        if len(val_idx) < 3:
            return None
        module.eval()
        with torch.no_grad():
            if val_score_fn is not None:
                s = val_score_fn(val_idx)
            else:
                s = score_fn(val_idx).detach().cpu().numpy()
        module.train()
        v = spearman(np.asarray(s, dtype=np.float64), targets[val_idx])
        return None if np.isnan(v) else v

    stopped = False
    module.train()
    while epoch < config.epochs and not stopped:
        plan = batch_plan(gcodes, train_idx, config.batch_size, config.seed, epoch)
        losses: list[float] = []
        while pos < len(plan):
            idx = plan[pos]
            if loss_fn is not None:
                loss = loss_fn(idx)
            else:
                s = score_fn(idx)
                t = torch.as_tensor(targets[idx])
                g = torch.as_tensor(gcodes[idx])
                loss = config.rank_weight * fidelity_loss(s, t, g, ties=config.ties)
                if config.reg_weight > 0:
                    loss = loss + config.reg_weight * torch.mean((s - torch.as_tensor(reg[idx])) ** 2)
            opt.zero_grad()
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
            pos += 1
            step += 1
            if config.save_every_steps and step % config.save_every_steps == 0 and pos < len(plan):
                save_state()
            if on_step is not None:
                on_step(step)
        val = evaluate()
        rec = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan")}
        if val is not None:
            rec["val_spearman"] = val
            if best_val is None or val > best_val + 1e-6:
                best_val, best_epoch, best_state, bad = val, epoch, _trainable(module), 0
            else:
                bad += 1
                if config.patience and bad >= config.patience:
                    stopped = True
        else:
            best_epoch, best_state = epoch, _trainable(module)
        history.append(rec)
        epoch += 1
        pos = 0
        save_state()
        if on_epoch is not None:
            on_epoch(epoch, config.epochs, rec)
    _load_trainable(module, best_state)
    module.eval()
    return TrainResult(best_val, best_epoch, epoch, step, resumed, history)


def split_indices(
    n: int, groups: np.ndarray, val_frac: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train/validation split stratified by group."""
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for g in sorted(set(np.asarray(groups).tolist())):
        idx = np.flatnonzero(np.asarray(groups) == g)
        idx = idx[rng.permutation(len(idx))]
        k = round(len(idx) * val_frac) if len(idx) >= 10 else 0
        va.append(idx[:k])
        tr.append(idx[k:])
    return np.sort(np.concatenate(tr)), np.sort(np.concatenate(va)) if va else np.zeros(0, np.int64)
