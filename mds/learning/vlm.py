"""VLM path (Qwen2.5-VL / Qwen3-VL): the failure predictor and the fine-tuning adapter on a vision-language model.

* g: LoRA adapters on every linear layer of the language model (the vision tower
  stays frozen, as in method.md §2.3) plus a scalar head on the mean-pooled last
  hidden states of the difficulty prompt, trained with the same pairwise
  Thurstone/fidelity loss and training loop as the CPU path (a differentiable
  alternative to the reference's REINFORCE, method.md §2.2 / §8).
* Fine-tuning: a LoRA adapter trained to answer the scoring prompt with
  ``<answer>{normalised MOS:.2f}</answer>`` (language-model loss on the answer
  tokens only), single-dataset micro-batches. The reference's GRPO objective is
  not reproduced here.

Models load through :func:`mds.evaluators.backends.transformers_vlm.load_vlm`
and inputs are built by its ``build_inputs`` from frames of the shared sampler.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mds.learning.trainer import TrainConfig, TrainResult, split_indices, train_pairwise

LLM_LINEAR_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
VLM_FAILURE_CONFIG = "failure.json"
HEAD_FILE = "head.safetensors"
FT_CONFIG = "finetune.json"


def _prompts() -> tuple[str, str]:
    from mds.evaluators.vqr1 import PROMPT_DIFFICULTY, PROMPT_NON_THINKING

    return PROMPT_DIFFICULTY, PROMPT_NON_THINKING


def _text_hidden_size(model: nn.Module) -> int:
    cfg = model.config
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else getattr(cfg, "text_config", cfg)
    return int(text.hidden_size)


def add_lora(model: nn.Module, *, r: int = 8, alpha: int = 16, dropout: float = 0.0,
             targets: str | Sequence[str] = LLM_LINEAR_TARGETS) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none",
                     target_modules=targets if isinstance(targets, str) else list(targets))
    return get_peft_model(model, cfg)


@dataclass
class VlmInputConfig:
    min_pixels: int | None = None
    max_pixels: int | None = None
    fps: float | None = None

    def kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in (("min_pixels", self.min_pixels), ("max_pixels", self.max_pixels)) if v}


class VlmFailurePredictor(nn.Module):
    """g(x) = 1 + 4 sigmoid(w . mean-pooled last hidden state(prompt + video))."""

    def __init__(self, model: nn.Module, processor: Any, *, prompt: str | None = None,
                 inputs: VlmInputConfig | None = None) -> None:
        super().__init__()
        self.model = model
        self.processor = processor
        self.prompt = prompt or _prompts()[0]
        self.inputs = inputs or VlmInputConfig()
        self.head = nn.Linear(_text_hidden_size(model), 1)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def pooled(self, frames_list: Sequence[np.ndarray]) -> torch.Tensor:
        from mds.evaluators.backends.transformers_vlm import build_inputs

        batch = build_inputs(self.processor, list(frames_list), [self.prompt] * len(frames_list),
                             fps=self.inputs.fps, **self.inputs.kwargs())
        dev = next(self.head.parameters()).device
        batch = {k: (v.to(dev) if hasattr(v, "to") else v) for k, v in batch.items()}
        out = self.model(**batch, output_hidden_states=True)
        h = out.hidden_states[-1].float()
        mask = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
        return (h * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, frames_list: Sequence[np.ndarray]) -> torch.Tensor:
        return 1.0 + 4.0 * torch.sigmoid(self.head(self.pooled(frames_list)).squeeze(-1))


@dataclass
class VlmTrainOutput:
    net: nn.Module
    result: TrainResult
    config: dict[str, Any] = field(default_factory=dict)


def fit_vlm_failure_predictor(
    model_path: str | Path,
    frames: Sequence[np.ndarray],
    errors: np.ndarray,
    groups: Sequence[Any] | None = None,
    *,
    lora_r: int = 8,
    lora_alpha: int = 16,
    epochs: int = 10,
    lr: float = 1e-4,
    batch_size: int = 8,
    val_frac: float = 0.0,
    patience: int = 0,
    seed: int = 0,
    inputs: VlmInputConfig | None = None,
    state_dir: str | Path | None = None,
    on_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> VlmTrainOutput:
    """Train g on a VLM base: LoRA on the language model + head, pairwise fidelity loss on ``errors``."""
    from mds.evaluators.backends.transformers_vlm import load_vlm

    torch.manual_seed(seed)
    model, processor = load_vlm(model_path)
    for p in model.parameters():
        p.requires_grad_(False)
    model = add_lora(model, r=lora_r, alpha=lora_alpha)
    net = VlmFailurePredictor(model, processor, inputs=inputs)
    e = np.asarray(errors, dtype=np.float32)
    grp = np.asarray(groups) if groups is not None else np.zeros(len(e), dtype=np.int64)
    tr, va = split_indices(len(e), grp, val_frac, seed)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed, ties=1.0)
    res = train_pairwise(net, lambda idx: net([frames[i] for i in idx]), e, grp, tr, va, cfg,
                         state_dir=state_dir, on_epoch=on_epoch, on_step=on_step)
    config = {"mode": "vlm-lora", "base_model": str(model_path), "lora_r": lora_r, "lora_alpha": lora_alpha,
              "targets": LLM_LINEAR_TARGETS, "prompt": net.prompt, "inputs": net.inputs.__dict__,
              "train": cfg.as_dict()}
    return VlmTrainOutput(net, res, config)


def predict_vlm_difficulty(net: VlmFailurePredictor, frames: Sequence[np.ndarray], batch_size: int = 4) -> np.ndarray:
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(frames), batch_size):
            out.append(net(list(frames[i : i + batch_size])).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def save_vlm_failure_predictor(out: VlmTrainOutput, directory: str | Path) -> Path:
    """peft adapter (``adapter_config.json`` + ``adapter_model.safetensors``) + head + ``failure.json``."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out.net.model.save_pretrained(str(d))
    save_file({k: v.detach().contiguous() for k, v in out.net.head.state_dict().items()}, str(d / HEAD_FILE))
    (d / VLM_FAILURE_CONFIG).write_text(json.dumps(out.config, indent=2, default=str), encoding="utf-8")
    return d


def load_vlm_failure_predictor(directory: str | Path, *, base_model: str | Path | None = None) -> VlmFailurePredictor:
    """Reload g: the base VLM through ``load_vlm`` with the adapter, then the head."""
    from safetensors.torch import load_file

    from mds.evaluators.backends.transformers_vlm import load_vlm

    d = Path(directory)
    cfg = json.loads((d / VLM_FAILURE_CONFIG).read_text(encoding="utf-8"))
    model, processor = load_vlm(base_model or cfg["base_model"], adapter=d)
    net = VlmFailurePredictor(model, processor, prompt=cfg["prompt"], inputs=VlmInputConfig(**cfg["inputs"]))
    net.head.load_state_dict(load_file(str(d / HEAD_FILE)))
    net.eval()
    return net


# --- fine-tuning -----------------------------------------------------------------------------------


def answer_text(mos_norm: float) -> str:
    return f"<answer>{mos_norm:.2f}</answer>"


def _sft_loss(model: nn.Module, processor: Any, frames: np.ndarray, prompt: str, answer: str,
              inputs: VlmInputConfig) -> torch.Tensor:
    """LM loss on the answer tokens appended after the generation prompt (one sample)."""
    from mds.evaluators.backends.transformers_vlm import build_inputs

    batch = build_inputs(processor, [frames], [prompt], fps=inputs.fps, **inputs.kwargs())
    tok = processor.tokenizer
    eos = tok.eos_token or ""
    ans = torch.tensor([tok(answer + eos, add_special_tokens=False)["input_ids"]], dtype=batch["input_ids"].dtype)
    batch = dict(batch)
    n_prompt = batch["input_ids"].shape[1]
    batch["input_ids"] = torch.cat([batch["input_ids"], ans], dim=1)
    batch["attention_mask"] = torch.cat([batch["attention_mask"], torch.ones_like(ans)], dim=1)
    if "mm_token_type_ids" in batch:
        batch["mm_token_type_ids"] = torch.cat([batch["mm_token_type_ids"], torch.zeros_like(ans)], dim=1)
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, n_prompt:] = ans
    dev = next(p for p in model.parameters()).device
    batch = {k: (v.to(dev) if hasattr(v, "to") else v) for k, v in batch.items()}
    return model(**batch, labels=labels.to(dev)).loss


def finetune_vlm(
    model_path: str | Path,
    frames: Sequence[np.ndarray],
    mos_norm: np.ndarray,
    groups: Sequence[Any] | None = None,
    *,
    prompt: str | None = None,
    lora_r: int = 8,
    lora_alpha: int = 16,
    epochs: int = 2,
    lr: float = 1e-4,
    batch_size: int = 4,
    seed: int = 0,
    inputs: VlmInputConfig | None = None,
    state_dir: str | Path | None = None,
    on_step: Callable[[int], None] | None = None,
) -> VlmTrainOutput:
    """LoRA fine-tuning of a VLM scorer on labels (MOS on 1-5 per dataset); single-dataset micro-batches."""
    from mds.evaluators.backends.transformers_vlm import load_vlm

    torch.manual_seed(seed)
    inputs = inputs or VlmInputConfig()
    prompt = prompt or _prompts()[1]
    model, processor = load_vlm(model_path)
    for p in model.parameters():
        p.requires_grad_(False)
    model = add_lora(model, r=lora_r, alpha=lora_alpha)
    y = np.asarray(mos_norm, dtype=np.float32)
    grp = np.asarray(groups) if groups is not None else np.zeros(len(y), dtype=np.int64)

    def loss_fn(idx: np.ndarray) -> torch.Tensor:
        losses = [_sft_loss(model, processor, frames[i], prompt, answer_text(float(y[i])), inputs) for i in idx]
        return torch.stack(losses).mean()

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=0, seed=seed)
    res = train_pairwise(model, lambda idx: torch.zeros(len(idx)), y, grp, np.arange(len(y)), np.zeros(0, np.int64),
                         cfg, state_dir=state_dir, on_step=on_step, loss_fn=loss_fn)
    config = {"mode": "vlm-sft", "base_model": str(model_path), "prompt": prompt, "lora_r": lora_r,
              "lora_alpha": lora_alpha, "targets": LLM_LINEAR_TARGETS, "train": cfg.as_dict(),
              "inputs": inputs.__dict__}
    model.processor = processor  # type: ignore[attr-defined]
    return VlmTrainOutput(model, res, config)


def save_vlm_adapter(out: VlmTrainOutput, directory: str | Path) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out.net.save_pretrained(str(d))
    (d / FT_CONFIG).write_text(json.dumps(out.config, indent=2, default=str), encoding="utf-8")
    return d
