"""Local transformers backend with tiny random Qwen2.5-VL / Qwen3-VL saved and loaded through ``from_pretrained``.

Random models generate garbage text: the honest expectation is ``parse_status`` failed
(or truncated) with the raw text stored and no score.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mds.evaluators import create_evaluator
from mds.evaluators.backends.messages import GenParams, image_part, text_part, video_part
from mds.evaluators.base import VideoInput
from tests.fixtures.tiny_models import tiny_qwen3vl_dir, tiny_qwen25vl_dir  # noqa: F401  (fixtures)

TINY = {"max_new_tokens": 6, "min_pixels": 56 * 56, "max_pixels": 112 * 112, "batch_size": 2}
BAD_STATUSES = ("failed", "truncated", "missing_dims")


def _video(clip_dir: Path, i: int, **meta) -> VideoInput:  # noqa: ANN003
    return VideoInput(
        path=str(clip_dir / f"clip{i}.mp4"),
        video_id=i + 1,
        meta=meta,
        width=96,
        height=64,
        fps=16.0,
        duration_s=1.0,
        frame_count=16,
    )


@pytest.fixture(params=["qwen2.5-vl", "qwen3-vl"])
def tiny_dir(request: pytest.FixtureRequest, tiny_qwen25vl_dir: Path, tiny_qwen3vl_dir: Path) -> Path:  # noqa: F811
    return tiny_qwen25vl_dir if request.param == "qwen2.5-vl" else tiny_qwen3vl_dir


def test_load_vlm_real_path(tiny_dir: Path) -> None:
    import torch

    from mds.evaluators.backends.transformers_vlm import load_vlm

    model, processor = load_vlm(tiny_dir)
    assert next(model.parameters()).dtype == torch.float32 and not model.training
    assert processor.tokenizer.padding_side == "left"
    model2, _ = load_vlm(f"local-dir:{tiny_dir}")
    assert type(model2) is type(model)


def test_load_errors_are_one_line(tmp_path: Path) -> None:
    from mds.errors import EvaluatorError
    from mds.evaluators.backends.transformers_vlm import load_vlm

    with pytest.raises(EvaluatorError, match="not found"):
        load_vlm(tmp_path / "nope")
    with pytest.raises(EvaluatorError, match="cannot load model 'no-such-org/no-such-model'.*HF_HUB_OFFLINE"):
        load_vlm("no-such-org/no-such-model")


def test_build_inputs_batched_left_padded(tiny_dir: Path, clip_dir: Path) -> None:
    from mds.evaluators.backends.transformers_vlm import build_inputs, load_vlm
    from mds.video.frames import SamplingConfig, sample_frames

    _, processor = load_vlm(tiny_dir)
    f8 = sample_frames(clip_dir / "clip0.mp4", SamplingConfig(num_frames=8))
    f4 = sample_frames(clip_dir / "clip1.mp4", SamplingConfig(num_frames=4))
    batch = build_inputs(processor, [f8, f4], ["rate it", "a much longer prompt for the second video"])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape[0] == 2 and batch["video_grid_thw"].shape == (2, 3)
    assert batch["video_grid_thw"][:, 0].tolist() == [4, 2]  # temporal patches of 2 frames
    assert mask[:, -1].tolist() == [1, 1] and 0 in mask.flatten().tolist()  # left padding on the shorter one
    for row in mask.tolist():
        assert row == sorted(row)  # zeros (padding) only at the start
    if "second_per_grid_ts" in batch:  # Qwen2.5-VL: 2 frames per patch over the real sampling interval
        assert batch["second_per_grid_ts"].tolist() == pytest.approx([2 / 8.0, 2 / 4.0])
    else:  # Qwen3-VL: timestamps of the real frames in the prompt
        text = processor.tokenizer.decode(ids[0])
        assert "seconds>" in text


def test_generation_is_seeded(tiny_dir: Path, clip_dir: Path) -> None:
    from mds.evaluators.backends.transformers_vlm import TransformersChatBackend
    from mds.video.frames import SamplingConfig, sample_frames

    be = TransformersChatBackend(tiny_dir, batch_size=2, min_pixels=56 * 56, max_pixels=112 * 112)
    sf = sample_frames(clip_dir / "clip0.mp4", SamplingConfig(num_frames=4))
    convs = [
        [{"role": "user", "content": [video_part(sf), text_part("q")]}],
        [{"role": "user", "content": [image_part(sf.frames[0]), image_part(sf.frames[1]), text_part("q")]}],
    ]
    a = be.generate(convs, GenParams(max_new_tokens=8, seed=3), n=2)
    b = be.generate(convs, GenParams(max_new_tokens=8, seed=3), n=2)
    c = be.generate(convs, GenParams(max_new_tokens=8, seed=4), n=2)
    texts = lambda out: [x.text for cs in out for x in cs]  # noqa: E731
    assert len(a) == 2 and all(len(cs) == 2 for cs in a)
    assert texts(a) == texts(b) and texts(a) != texts(c)
    assert all(x.finish_reason in ("stop", "length") for cs in a for x in cs)
    assert be.describe()["checkpoint_generation_config"]["top_k"] == 50


def test_lora_adapter_loads_through_peft(tiny_qwen25vl_dir: Path, tmp_path: Path, clip_dir: Path) -> None:  # noqa: F811
    import torch
    from peft import LoraConfig, get_peft_model

    from mds.evaluators.backends.transformers_vlm import build_inputs, load_vlm
    from mds.video.frames import SamplingConfig, sample_frames

    base, processor = load_vlm(tiny_qwen25vl_dir)
    torch.manual_seed(0)
    peft_model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    sf = sample_frames(clip_dir / "clip2.mp4", SamplingConfig(num_frames=4))
    batch = build_inputs(processor, [sf], ["q"])
    with torch.no_grad():
        want = peft_model(**batch).logits
    plain, _ = load_vlm(tiny_qwen25vl_dir)
    loaded, _ = load_vlm(tiny_qwen25vl_dir, adapter=tmp_path / "adapter")
    with torch.no_grad():
        got = loaded(**batch).logits
        base_logits = plain(**batch).logits
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, base_logits, atol=1e-4)  # the adapter changes the model


@pytest.mark.parametrize("name", ["vqr1", "videoscore2", "short-drama"])
def test_single_video_adapters_on_tiny_qwen25(name: str, tiny_qwen25vl_dir: Path, clip_dir: Path) -> None:  # noqa: F811
    opts = dict(TINY, model=str(tiny_qwen25vl_dir), resample=1)
    if name == "short-drama":
        opts["num_frames"] = 4
    ev = create_evaluator(name, **opts)
    res = ev.predict(
        [
            _video(clip_dir, 0, prompt="a square"),
            _video(clip_dir, 1),
            VideoInput(path=str(clip_dir / "missing.mp4"), video_id=99),
        ]
    )
    assert len(res) == 3
    for r in res[:2]:
        assert r.parse_status in BAD_STATUSES, r.raw_text
        assert r.pred_scalar is None and r.raw_text and r.n_samples == 2
        assert r.gen_params["max_new_tokens"] == 6 and r.preproc["n_frames"] >= 2
        backend = r.gen_params["backend"]
        assert backend["backend"] == "transformers" and backend["checkpoint_generation_config"]["top_k"] == 50
    assert res[2].parse_status == "error" and res[2].video_id == 99


def test_medea_on_tiny_qwen3(tiny_qwen3vl_dir: Path, clip_dir: Path) -> None:  # noqa: F811
    ev = create_evaluator("medea", backend="transformers", model=str(tiny_qwen3vl_dir), short_side=64, **TINY)
    (r,) = ev.predict([_video(clip_dir, 0, title="t", tags=["a", "b"])])
    assert r.parse_status in BAD_STATUSES and r.raw_text is not None and r.pred_scalar is None
    assert len(r.preproc["keyframe_indices"]) == 7


def test_vrthinker_loop_on_tiny_qwen25(tiny_qwen25vl_dir: Path, clip_dir: Path) -> None:  # noqa: F811
    ev = create_evaluator("vrthinker", model=str(tiny_qwen25vl_dir), image_side=56, max_turns=2, **TINY)
    (r,) = ev.predict_pairs([(_video(clip_dir, 0), _video(clip_dir, 1))])
    assert r.parse_status in BAD_STATUSES and r.pred_scalar is None
    assert r.raw_text.startswith("=== assistant ===") and (r.video_id, r.pair_video_id) == (1, 2)


def test_a_real_looking_answer_parses_with_the_same_adapter(tiny_qwen25vl_dir: Path) -> None:  # noqa: F811
    ev = create_evaluator("vqr1", model=str(tiny_qwen25vl_dir))
    r = ev.parse("<think>The frames are sharp.</think><answer>4.12</answer>")
    assert r.parse_status == "ok" and r.pred_scalar == 4.12


def test_multi_turn_tool_conversation_builds_and_generates(tiny_dir: Path, clip_dir: Path) -> None:
    """The VR-Thinker message layout (system, 8 images, assistant turn, 6 more images) on the real processor."""
    from mds.evaluators.backends.transformers_vlm import TransformersChatBackend, build_chat_inputs
    from mds.evaluators.vrthinker import SYSTEM_PROMPT, TOOL_RESPONSE_TEMPLATE, VRThinkerEvaluator

    ev = VRThinkerEvaluator(model=str(tiny_dir), image_side=56)
    state = ev.build_pair(_video(clip_dir, 0), _video(clip_dir, 1))
    state.conv.append({"role": "assistant", "content": '<tool_call>{"name": "select_frames"}</tool_call>'})
    extra = state.frames[0].get([0, 64, 127]) + state.frames[1].get([0, 64, 127])
    reply = TOOL_RESPONSE_TEMPLATE.format(n=3, indices=[0, 64, 127])
    state.conv.append(
        {
            "role": "user",
            "content": [*({"type": "image", "image": im} for im in extra), {"type": "text", "text": reply}],
        }
    )
    be = TransformersChatBackend(tiny_dir, max_pixels=112 * 112, min_pixels=56 * 56)
    model, processor = be.load()
    batch = build_chat_inputs(processor, [state.conv], image_max_pixels=112 * 112, image_min_pixels=56 * 56)
    assert batch["image_grid_thw"].shape[0] == 14
    text = processor.tokenizer.decode(batch["input_ids"][0])
    assert text.startswith("<|im_start|>system\n" + SYSTEM_PROMPT[:40]) and "Retrieved 3 frame pairs" in text
    out = be.generate([state.conv], GenParams(do_sample=False, max_new_tokens=3))
    assert len(out) == 1 and out[0][0].finish_reason in ("stop", "length")
