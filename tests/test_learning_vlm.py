"""VLM path end to end on a tiny random Qwen2.5-VL: g (LoRA + head on pooled states) and the fine-tune adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fixtures.tiny_models import tiny_qwen25vl_dir  # noqa: F401  (session fixture)


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    from mds.video.frames import SamplingConfig, sample_frames
    from tests.fixtures.clips import write_clip

    d = tmp_path_factory.mktemp("vlm-clips")
    out = []
    for i in range(6):
        p = write_clip(d / f"c{i}.mp4", seed=i, n=16)
        out.append(sample_frames(p, SamplingConfig(num_frames=4)).frames)  # real decoded frames
    return out


def _lora_b_norm(model: torch.nn.Module) -> float:
    return float(sum(p.detach().abs().sum() for n, p in model.named_parameters() if "lora_B" in n))


def test_failure_predictor_train_save_reload(tiny_qwen25vl_dir: Path, frames: list[np.ndarray], tmp_path: Path) -> None:  # noqa: F811
    from mds.learning.vlm import (
        fit_vlm_failure_predictor,
        load_vlm_failure_predictor,
        predict_vlm_difficulty,
        save_vlm_failure_predictor,
    )

    errors = np.array([0.1, 0.5, 0.9, 0.2, 1.2, 0.3])
    out = fit_vlm_failure_predictor(tiny_qwen25vl_dir, frames, errors, epochs=2, batch_size=3, lr=1e-3)
    assert out.result.steps == 4
    names = [n for n, p in out.net.named_parameters() if p.requires_grad]
    assert any("language_model" in n and "lora_A" in n for n in names)
    assert not any("visual" in n for n in names)  # vision tower frozen, as in the reference adapter
    assert {n.split(".")[-1] for n in names if "lora" not in n} == {"weight", "bias"}  # + the head
    assert _lora_b_norm(out.net) > 0  # the adapters moved away from their zero init
    s1 = predict_vlm_difficulty(out.net, frames)
    assert ((s1 > 1) & (s1 < 5)).all() and len(np.unique(s1)) == len(s1)
    d = save_vlm_failure_predictor(out, tmp_path / "g")
    assert {"adapter_config.json", "adapter_model.safetensors", "head.safetensors", "failure.json"} <= {
        p.name for p in d.iterdir()}
    net = load_vlm_failure_predictor(d)  # base through load_vlm, adapter through peft
    np.testing.assert_array_equal(predict_vlm_difficulty(net, frames), s1)


def test_finetune_adapter_train_save_reload(tiny_qwen25vl_dir: Path, frames: list[np.ndarray], tmp_path: Path) -> None:  # noqa: F811
    from mds.evaluators.backends.transformers_vlm import build_inputs, load_vlm
    from mds.learning.vlm import _prompts, finetune_vlm, save_vlm_adapter

    mos = np.array([1.5, 2.5, 3.5, 4.5, 2.0, 3.0])
    out = finetune_vlm(tiny_qwen25vl_dir, frames, mos, groups=["a", "a", "a", "b", "b", "b"], epochs=2,
                       batch_size=3, lr=5e-3)
    hist = out.result.history
    assert len(hist) == 2 and hist[1]["loss"] < hist[0]["loss"]  # the answer loss goes down
    model = out.net
    model.eval()
    batch = build_inputs(model.processor, frames[:2], [_prompts()[1]] * 2)
    with torch.no_grad():
        logits = model(**batch).logits
    d = save_vlm_adapter(out, tmp_path / "ft")
    reloaded, processor = load_vlm(tiny_qwen25vl_dir, adapter=d)
    with torch.no_grad():
        logits2 = reloaded(**build_inputs(processor, frames[:2], [_prompts()[1]] * 2)).logits
    assert torch.equal(logits, logits2)
    plain, _ = load_vlm(tiny_qwen25vl_dir)
    with torch.no_grad():
        assert not torch.equal(plain(**batch).logits, logits)  # the adapter changes the model
