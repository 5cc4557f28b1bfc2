"""VideoScore2: visual quality, text-to-video alignment, physical/common-sense consistency, 1–5 each (evaluators.md §5).

Input: the video at 2 fps (capped at ``max_frames``, 16 by default: training saw
≤ 10 frames, long UGC would overflow the context) and the text-to-video prompt
from ``meta["prompt"]``. Natural videos without a prompt get an empty prompt and
the result is flagged ``out_of_domain``; rank them by visual quality only.
Prompt: the official inference template, word for word. Parse (§5.6): on the text
after the last ``</think>`` (else the last 300 characters) the three dimension
scores, then a per-line ``(1) …: v`` fallback; each must lie in 1..5. Scalar:
visual quality (``scalar="visual_quality"``, default) or the mean of the three
(``scalar="mean"``). Error vs a human label: mean absolute error over the dimensions
present in the label.

Soft scores from digit probabilities (§5.6 step 5) are not computed: they need
per-token scores from ``generate`` / server ``logprobs``.
"""

from __future__ import annotations

import re
import statistics
from typing import Any, ClassVar

from mds.evaluators.backends.messages import Conversation, text_part, video_part
from mds.evaluators.base import EvalResult, LabelKind, LabelSpec, VideoInput
from mds.evaluators.chat import USABLE, ChatEvaluator, nfkc

# evaluators.md §5.3 (vs2_inference.py / model card), word for word; $t2v_prompt is substituted.
PROMPT_TEMPLATE = (
    "You are an expert for evaluating AI-generated videos from three dimensions:\n"
    "(1) visual quality – clarity, smoothness, artifacts;\n"
    "(2) text-to-video alignment – fidelity to the prompt;\n"
    "(3) physical/common-sense consistency – naturalness and physics plausibility.\n"
    "\n"
    "Video prompt: $t2v_prompt\n"
    "\n"
    "Please output in this format:\n"
    "visual quality: <v_score>;\n"
    "text-to-video alignment: <t_score>,\n"
    "physical/common-sense consistency: <p_score>"
)
DIMENSIONS = ("visual_quality", "t2v_alignment", "physical_consistency")
TAIL_CHARS = 300

_MAIN = re.compile(
    r"visual quality\s*:\s*(\d+(?:\.\d+)?).*?text-to-video alignment\s*:\s*(\d+(?:\.\d+)?)"
    r".*?physical/common-sense consistency\s*:\s*(\d+(?:\.\d+)?)",
    re.IGNORECASE | re.DOTALL,
)
_ONE = {
    d: re.compile(rf"{name}\s*:\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
    for d, name in zip(
        DIMENSIONS, ("visual quality", "text-to-video alignment", "physical/common-sense consistency")
    )
}
_LINE = re.compile(r"\(\s*([123])\s*\)\s*[^:\n]*:\s*(\d+(?:\.\d+)?)")
# Human label key spellings accepted by ``error``.
LABEL_KEYS = {
    "visual_quality": ("visual_quality", "v", "vq", "v_score"),
    "t2v_alignment": ("t2v_alignment", "t", "ta", "t_score", "text_alignment"),
    "physical_consistency": ("physical_consistency", "p", "pc", "p_score"),
}


def build_prompt(t2v_prompt: str) -> str:
    return PROMPT_TEMPLATE.replace("$t2v_prompt", t2v_prompt)


def parse_videoscore2(raw: str) -> EvalResult:
    """Parse a VideoScore2 answer into three integer scores (evaluators.md §5.6)."""
    text = nfkc(raw)
    cut = text.rfind("</think>")
    region = text[cut + len("</think>") :] if cut >= 0 else text[-TAIL_CHARS:]
    think = re.search(r"<think>(.*?)</think>", text, re.DOTALL)
    reasoning = think.group(1).strip() if think else None
    scores: dict[str, float | None] = dict.fromkeys(DIMENSIONS)
    status = "ok"
    m = _MAIN.search(region)
    if m:
        for d, g in zip(DIMENSIONS, m.groups()):
            scores[d] = float(g)
    else:
        for d, rx in _ONE.items():
            hit = rx.findall(region)
            if hit:
                scores[d] = float(hit[-1])
        for num, val in _LINE.findall(region):
            scores[DIMENSIONS[int(num) - 1]] = scores[DIMENSIONS[int(num) - 1]] or float(val)
        status = "fallback"
    flags = []
    for d, v in scores.items():
        if v is not None and not 1 <= v <= 5:
            flags.append(f"{d}_out_of_range")
    present = {d: v for d, v in scores.items() if v is not None}
    parsed: dict[str, Any] = {**scores, "flags": flags}
    if not present:
        return EvalResult(
            None,
            "failed",
            parsed=parsed,
            raw_text=raw,
            reasoning=reasoning,
            error="no dimension scores after </think>",
        )
    if len(present) < len(DIMENSIONS):
        return EvalResult(
            None,
            "missing_dims",
            parsed=parsed,
            raw_text=raw,
            reasoning=reasoning,
            error=f"missing: {', '.join(d for d in DIMENSIONS if scores[d] is None)}",
        )
    if flags:
        status = "out_of_range"
    return EvalResult(None, status, pred_label=dict(scores), parsed=parsed, raw_text=raw, reasoning=reasoning)


class VideoScore2Evaluator(ChatEvaluator):
    """VideoScore2 (Qwen2.5-VL-7B): three 1–5 scores per video."""

    name = "videoscore2"
    label: ClassVar[LabelSpec] = LabelSpec(LabelKind.MULTIDIM, (1.0, 5.0), True, dimensions=DIMENSIONS)
    modality = "video+text"
    extra_options: ClassVar[dict[str, str]] = {
        "scalar": "ranking scalar: 'visual_quality' (default) or 'mean' of the three dimensions",
    }
    prompt_texts = (PROMPT_TEMPLATE,)

    def build_conversation(self, video: VideoInput) -> tuple[Conversation, dict[str, Any]]:
        from mds.video.frames import sample_frames

        cfg = self.sampling_config()
        frames = sample_frames(video.path, cfg)
        t2v = str((video.meta or {}).get("prompt", "") or "")
        conv: Conversation = [{"role": "user", "content": [video_part(frames), text_part(build_prompt(t2v))]}]
        preproc = {
            "sampling": cfg.as_dict(),
            "n_frames": len(frames.indices),
            "frame_indices": frames.indices,
            "min_pixels": self.opt("min_pixels"),
            "max_pixels": self.opt("max_pixels"),
            "out_of_domain": not t2v,
        }
        return conv, preproc

    def parse(self, raw: str) -> EvalResult:
        r = parse_videoscore2(raw)
        if r.parse_status in USABLE:
            r.pred_scalar = self.to_scalar(r)
        return r

    def to_scalar(self, result: EvalResult) -> float | None:
        dims = result.pred_label if isinstance(result.pred_label, dict) else None
        if not dims or any(dims.get(d) is None for d in DIMENSIONS):
            return None
        vals = {d: min(max(float(dims[d]), 1.0), 5.0) for d in DIMENSIONS}
        if self.opt("scalar", "visual_quality") == "mean":
            return statistics.fmean(vals.values())
        return vals["visual_quality"]

    def aggregate(self, samples: list[EvalResult]) -> EvalResult:
        usable = [s for s in samples if s.parse_status in USABLE and isinstance(s.pred_label, dict)]
        if len(usable) <= 1:
            return usable[0] if usable else samples[-1]
        best = usable[0]
        best.pred_label = {d: statistics.fmean(float(s.pred_label[d]) for s in usable) for d in DIMENSIONS}
        scalars = [self.to_scalar(s) for s in usable]
        best.pred_scalar = self.to_scalar(best)
        best.uncertainty = statistics.pvariance([x for x in scalars if x is not None])
        best.parsed = {**best.parsed, "sample_scores": [s.pred_label for s in usable]}
        return best

    def error(self, result: EvalResult, label: Any) -> float | None:
        """Mean ``|ŷ_d − y_d|`` over the dimensions in ``label`` (a dict, or one number = visual quality)."""
        pred = result.pred_label if isinstance(result.pred_label, dict) else None
        if pred is None or label is None:
            return None
        if isinstance(label, (int, float)):
            label = {"visual_quality": label}
        errs = []
        for d, keys in LABEL_KEYS.items():
            y = next((label[k] for k in keys if k in label and label[k] is not None), None)
            if y is not None and pred.get(d) is not None:
                errs.append(abs(float(pred[d]) - float(y)))
        return statistics.fmean(errs) if errs else None
