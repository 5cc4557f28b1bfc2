"""Local Qwen2.5-VL / Qwen3-VL inference through transformers.

* :func:`load_vlm` loads ``(model, processor)`` from a local directory, the HF cache
  or a hub id (``HF_HUB_OFFLINE`` is respected: offline, only local files and the
  cache are used), bf16 + ``device_map`` on GPU, float32 on CPU, with an optional
  peft LoRA adapter.
* :func:`build_chat_inputs` / :func:`build_inputs` turn conversations (or frames +
  prompts) into a left-padded batch for ``generate`` or a forward pass. Frames come
  pre-sampled from :mod:`mds.video.frames`; the processor does not re-sample them,
  and the video metadata (fps, frame indices) is passed so Qwen3-VL prompt
  timestamps and Qwen2.5-VL ``second_per_grid_ts`` match the real clip.
* :class:`TransformersChatBackend` generates batched, seeded completions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mds.errors import EvaluatorError
from mds.evaluators.backends.messages import Completion, Conversation, GenParams, text_part, video_part

DEFAULT_VIDEO_FPS = 2.0  # assumed sampling rate of bare frame arrays without metadata


def resolve_model_ref(ref: str | os.PathLike) -> str:
    """``local-dir:/p`` / ``hf-hub:org/repo`` / a path / a hub id → what ``from_pretrained`` takes."""
    s = str(ref)
    if s.startswith("local-dir:"):
        p = Path(s[len("local-dir:") :]).expanduser()
        if not p.is_dir():
            raise EvaluatorError(f"model directory not found: {p}")
        return str(p)
    if s.startswith("hf-hub:"):
        return s[len("hf-hub:") :]
    p = Path(s).expanduser()
    if p.exists():
        return str(p)
    if s.startswith(("/", ".", "~")):
        raise EvaluatorError(f"model directory not found: {p}")
    return s


def _pick_device(device: str | None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_vlm(
    model_path: str | os.PathLike,
    *,
    adapter: str | os.PathLike | None = None,
    dtype: Any = None,
    device: str | None = None,
    revision: str | None = None,
) -> tuple[Any, Any]:
    """Load a Qwen-VL-family checkpoint and its processor; returns ``(model, processor)`` in eval mode.

    ``dtype`` defaults to bfloat16 on CUDA (with ``device_map="auto"``) and float32 on CPU.
    ``adapter`` is a peft adapter directory (``adapter_config.json`` + weights) put on top.
    """
    from mds._compat import ensure_torchvision

    ensure_torchvision()
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    ref = resolve_model_ref(model_path)
    device = _pick_device(device)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    if revision:
        kwargs["revision"] = revision
    if device.startswith("cuda"):
        kwargs["device_map"] = "auto" if device == "cuda" else device
    try:
        processor = (
            AutoProcessor.from_pretrained(ref, revision=revision)
            if revision
            else AutoProcessor.from_pretrained(ref)
        )
        model = AutoModelForImageTextToText.from_pretrained(ref, **kwargs)
    except OSError as e:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (HF_HUB_OFFLINE=1: only local directories and the HF cache are used)" if offline else ""
        raise EvaluatorError(f"cannot load model {ref!r}{hint}: {str(e).splitlines()[0]}") from None
    if not device.startswith("cuda"):
        model = model.to(device)
    if adapter is not None:
        from peft import PeftModel

        apath = resolve_model_ref(adapter)
        if not (Path(apath) / "adapter_config.json").is_file():
            raise EvaluatorError(f"not a peft adapter directory (no adapter_config.json): {apath}")
        model = PeftModel.from_pretrained(model, apath)
    model.eval()
    tok = getattr(processor, "tokenizer", None)
    if tok is not None:
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
    return model, processor


# -- inputs -------------------------------------------------------------------------------------------


def _video_metadata(part: dict[str, Any]) -> tuple[np.ndarray, Any]:
    from transformers.video_utils import VideoMetadata

    v = part["video"]
    if hasattr(v, "frames") and hasattr(v, "indices"):  # SampledFrames
        fps = v.fps or part.get("fps") or DEFAULT_VIDEO_FPS
        total = v.total_frames or len(v.indices)
        md = VideoMetadata(
            total_num_frames=total,
            fps=float(fps),
            width=int(v.frames.shape[2]),
            height=int(v.frames.shape[1]),
            duration=total / float(fps),
            frames_indices=list(v.indices),
        )
        return v.frames, md
    arr = np.asarray(v)
    fps = float(part.get("fps") or DEFAULT_VIDEO_FPS)
    t = int(arr.shape[0])
    md = VideoMetadata(
        total_num_frames=t,
        fps=fps,
        width=int(arr.shape[2]),
        height=int(arr.shape[1]),
        duration=t / fps,
        frames_indices=list(range(t)),
    )
    return arr, md


def _supports(processor_part: Any, key: str) -> bool:
    valid = getattr(processor_part, "valid_kwargs", None)
    return key in getattr(valid, "__annotations__", {})


def build_chat_inputs(
    processor: Any,
    conversations: Sequence[Conversation],
    *,
    add_generation_prompt: bool = True,
    add_vision_id: bool = False,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    image_min_pixels: int | None = None,
    image_max_pixels: int | None = None,
    cap_pixels_per_frame: bool = True,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> Any:
    """A left-padded batch (``BatchFeature``, CPU tensors) for a list of neutral conversations.

    ``min_pixels`` / ``max_pixels`` are the per-frame video pixel budget (Qwen's
    ``size={"shortest_edge", "longest_edge"}``); ``image_*`` the same for images.
    ``cap_pixels_per_frame`` applies the reference (qwen-vl-utils) total-video cap
    where the installed transformers supports it.
    """
    texts: list[str] = []
    images: list[np.ndarray] = []
    videos: list[np.ndarray] = []
    metas: list[Any] = []
    for conv in conversations:
        msgs = []
        for m in conv:
            content = m["content"]
            if isinstance(content, str):
                msgs.append({"role": m["role"], "content": content})
                continue
            parts = []
            for p in content:
                if p["type"] == "text":
                    parts.append({"type": "text", "text": p["text"]})
                elif p["type"] == "image":
                    images.append(np.asarray(p["image"]))
                    parts.append({"type": "image"})
                elif p["type"] == "video":
                    arr, md = _video_metadata(p)
                    videos.append(arr)
                    metas.append(md)
                    parts.append({"type": "video"})
                else:
                    raise EvaluatorError(f"unknown message part type {p['type']!r}")
            msgs.append({"role": m["role"], "content": parts})
        texts.append(
            processor.apply_chat_template(
                msgs,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                add_vision_id=add_vision_id,
                **(chat_template_kwargs or {}),
            )
        )
    kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
    if images:
        kwargs["images"] = images
        if image_min_pixels or image_max_pixels:
            ip = processor.image_processor
            size = dict(getattr(ip, "size", {}) or {})
            if image_min_pixels:
                size["shortest_edge"] = image_min_pixels
            if image_max_pixels:
                size["longest_edge"] = image_max_pixels
            kwargs["images_kwargs"] = {"size": size}
    if videos:
        kwargs["videos"] = videos
        vk: dict[str, Any] = {"do_sample_frames": False, "video_metadata": metas}
        vp = processor.video_processor
        if min_pixels or max_pixels:
            size = dict(getattr(vp, "size", {}) or {})
            if min_pixels:
                size["shortest_edge"] = min_pixels
            if max_pixels:
                size["longest_edge"] = max_pixels
            vk["size"] = size
        if _supports(vp, "cap_pixels_per_frame"):
            vk["cap_pixels_per_frame"] = cap_pixels_per_frame
        kwargs["videos_kwargs"] = vk
    tok = processor.tokenizer
    tok.padding_side = "left"
    batch = processor(**kwargs)
    if videos and "second_per_grid_ts" in batch:
        import torch

        tps = getattr(processor.video_processor, "temporal_patch_size", 2)
        batch["second_per_grid_ts"] = torch.tensor(
            [tps / md.sampled_fps for md in metas], dtype=torch.float32
        )
    return batch


def build_inputs(
    processor: Any,
    frames_list: Sequence[Any],
    prompts: Sequence[str],
    *,
    system: str | None = None,
    fps: float | Sequence[float | None] | None = None,
    **kwargs: Any,
) -> Any:
    """Batch of one-video prompts: ``frames_list[i]`` (SampledFrames or ``(T,H,W,3)`` uint8) + ``prompts[i]``.

    Left padded; extra keyword arguments go to :func:`build_chat_inputs`
    (``add_vision_id``, ``min_pixels``, ``max_pixels``, ``add_generation_prompt`` …).
    ``fps`` is the sampling rate of bare arrays (SampledFrames carry their own).
    """
    if len(frames_list) != len(prompts):
        raise ValueError("build_inputs: frames_list and prompts must have the same length")
    fps_list = list(fps) if isinstance(fps, (list, tuple)) else [fps] * len(prompts)
    convs: list[Conversation] = []
    for frames, prompt, f in zip(frames_list, prompts, fps_list):
        conv: Conversation = []
        if system is not None:
            conv.append({"role": "system", "content": system})
        conv.append({"role": "user", "content": [video_part(frames, f), text_part(prompt)]})
        convs.append(conv)
    return build_chat_inputs(processor, convs, **kwargs)


# -- generation -----------------------------------------------------------------------------------------


class TransformersChatBackend:
    """Batched, seeded generation with a local VLM (loaded lazily on first use)."""

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        adapter: str | os.PathLike | None = None,
        dtype: str | None = None,
        device: str | None = None,
        batch_size: int = 4,
        add_vision_id: bool = False,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        image_min_pixels: int | None = None,
        image_max_pixels: int | None = None,
        loaded: tuple[Any, Any] | None = None,
    ) -> None:
        self.model_ref = str(model)
        self.adapter = str(adapter) if adapter else None
        self.dtype = dtype
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.input_options = {
            "add_vision_id": add_vision_id,
            "min_pixels": min_pixels,
            "max_pixels": max_pixels,
            "image_min_pixels": image_min_pixels,
            "image_max_pixels": image_max_pixels,
        }
        self._loaded = loaded

    @property
    def model_id(self) -> str:
        return self.model_ref + (f"+{self.adapter}" if self.adapter else "")

    def load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            self._loaded = load_vlm(
                self.model_ref, adapter=self.adapter, dtype=self.dtype, device=self.device
            )
        return self._loaded

    def describe(self) -> dict[str, Any]:
        import transformers

        model, _ = self.load()
        gc = getattr(model, "generation_config", None)
        return {
            "backend": "transformers",
            "model": self.model_ref,
            "adapter": self.adapter,
            "dtype": str(next(model.parameters()).dtype),
            "transformers": transformers.__version__,
            "checkpoint_generation_config": {
                k: getattr(gc, k, None) for k in ("do_sample", "temperature", "top_k", "top_p")
            }
            if gc is not None
            else {},
        }

    def generate(
        self, conversations: Sequence[Conversation], params: GenParams, *, n: int = 1
    ) -> list[list[Completion]]:
        import torch

        model, processor = self.load()
        tok = processor.tokenizer
        device = next(model.parameters()).device
        out: list[list[Completion]] = []
        n_ret = n if params.do_sample else 1
        for start in range(0, len(conversations), self.batch_size):
            chunk = conversations[start : start + self.batch_size]
            batch = build_chat_inputs(processor, chunk, **self.input_options).to(device)
            gen_kwargs: dict[str, Any] = {
                "max_new_tokens": params.max_new_tokens,
                "do_sample": params.do_sample,
                "num_return_sequences": n_ret,
                "pad_token_id": tok.pad_token_id,
            }
            if params.do_sample:
                for k in ("temperature", "top_k", "top_p"):
                    if getattr(params, k) is not None:
                        gen_kwargs[k] = getattr(params, k)
            else:
                gen_kwargs.update(temperature=None, top_k=None, top_p=None)
            if params.stop:
                gen_kwargs.update(stop_strings=list(params.stop), tokenizer=tok)
            torch.manual_seed(params.seed + start)
            with torch.inference_mode():
                seqs = model.generate(**batch, **gen_kwargs)
            new = seqs[:, batch["input_ids"].shape[1] :]
            eos = set(_as_list(getattr(model.generation_config, "eos_token_id", None)) + [tok.eos_token_id])
            texts = tok.batch_decode(new, skip_special_tokens=True)
            for i in range(len(chunk)):
                comps = []
                for j in range(n_ret):
                    row = new[i * n_ret + j].tolist()
                    ended = any(t in eos for t in row)
                    comps.append(
                        Completion(
                            text=texts[i * n_ret + j],
                            finish_reason="stop" if ended or len(row) < params.max_new_tokens else "length",
                        )
                    )
                if n_ret < n:  # greedy: every sample is the same answer
                    comps = comps * n
                out.append(comps)
        return out


def _as_list(x: Any) -> list[int]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [int(x)]
