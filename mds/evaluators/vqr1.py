"""VisualQuality-R1 (VQR1), the MDS-VQA base model: one video → a quality score 1–5 (evaluators.md §1).

Input: the video at 2 fps (4–768 frames, even count), Qwen per-frame pixel budget
128·28²–768·28² (qwen-vl-utils defaults), chat template with ``add_vision_id``.
Prompt: the fixed English question, "thinking" (template A) or "non-thinking" (A′).
Output: ``<think>…</think><answer>3.80</answer>``. Parse (§1.6): the last
``<answer>`` block, the first number inside it; no block → a keyword fallback near
the end (``fallback``); outside [1, 5] → ``out_of_range`` (clipped only for ranking).
Error vs a human label: ``|ŷ − MOS₁₋₅|``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from mds.evaluators.backends.messages import Conversation, text_part, video_part
from mds.evaluators.base import EvalResult, LabelKind, LabelSpec, VideoInput
from mds.evaluators.chat import ChatEvaluator

# evaluators.md §1.3 A (thinking) — word for word.
PROMPT_THINKING = (
    "You are doing the video quality assessment task. Here is the question: What is your overall rating on the "
    "quality of this video? The rating should be a float between 1 and 5, rounded to two decimal places, with 1 "
    "representing very poor quality and 5 representing excellent quality. First output the thinking process in "
    "<think> </think> tags and then output the final answer with only one score in <answer> </answer> tags."
)
# §1.3 A′ (non-thinking): the same question + the VQR1 README's answer-only instruction.
PROMPT_NON_THINKING = (
    "You are doing the video quality assessment task. Here is the question: What is your overall rating on the "
    "quality of this video? The rating should be a float between 1 and 5, rounded to two decimal places, with 1 "
    "representing very poor quality and 5 representing excellent quality. Please only output the final answer "
    "with only one score in <answer> </answer> tags."
)
# §1.3 B: the MDS-VQA failure predictor's difficulty question (used by the failure predictor, not here).
PROMPT_DIFFICULTY = (
    "You are doing the video quality assessment task. Here is the question: Assess how difficult it is to "
    "evaluate this video's quality for video quality assessment. The difficulty rating should be a float between "
    "1 and 5, rounded to two decimal places, with 1 representing very easy to evaluate and 5 representing very "
    "difficult to evaluate. Please only output the final answer with only one score in <answer> </answer> tags."
)

_ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL | re.IGNORECASE)
_THINK = re.compile(r"<think>\s*(.*?)\s*</think>", re.DOTALL | re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_FALLBACK = re.compile(r"(?:score|rating|answer)[^0-9]{0,20}([1-5](?:\.\d+)?)", re.IGNORECASE)
FALLBACK_TAIL = 300  # characters at the end of the text searched by the fallback


def parse_score_answer(raw: str, lo: float = 1.0, hi: float = 5.0) -> EvalResult:
    """Parse a ``<think>…</think><answer>x</answer>`` answer (evaluators.md §1.6)."""
    text = raw or ""
    thinks = _THINK.findall(text)
    reasoning = thinks[-1] if thinks else None
    answers = _ANSWER.findall(text)
    parsed: dict[str, Any] = {"n_answer_blocks": len(answers)}
    if answers:
        m = _NUMBER.search(answers[-1])
        if m is None:
            return EvalResult(
                None,
                "failed",
                parsed=parsed,
                raw_text=raw,
                reasoning=reasoning,
                error="no number inside the last <answer> block",
            )
        score, status = float(m.group(0)), "ok"
        parsed["answer"] = answers[-1]
    else:
        hits = list(_FALLBACK.finditer(text[-FALLBACK_TAIL:]))
        if not hits:
            return EvalResult(
                None,
                "failed",
                parsed=parsed,
                raw_text=raw,
                reasoning=reasoning,
                error="no <answer> block and no score near the end",
            )
        score, status = float(hits[-1].group(1)), "fallback"
    parsed["score"] = score
    if not lo <= score <= hi:
        status = "out_of_range"
    return EvalResult(
        None,
        status,
        pred_scalar=min(max(score, lo), hi),
        pred_label=score,
        parsed=parsed,
        raw_text=raw,
        reasoning=reasoning,
    )


class VQR1Evaluator(ChatEvaluator):
    """VisualQuality-R1 / MDS-VQA base model (Qwen2.5-VL): scalar quality 1–5."""

    name = "vqr1"
    label: ClassVar[LabelSpec] = LabelSpec(LabelKind.SCALAR, (1.0, 5.0), True)
    modality = "video"
    extra_options: ClassVar[dict[str, str]] = {"thinking": "thinking prompt (A) or answer-only prompt (A′)"}
    prompt_texts = (PROMPT_THINKING, PROMPT_NON_THINKING)

    @property
    def prompt(self) -> str:
        return PROMPT_THINKING if self.opt("thinking", True) else PROMPT_NON_THINKING

    def build_conversation(self, video: VideoInput) -> tuple[Conversation, dict[str, Any]]:
        from mds.video.frames import sample_frames

        cfg = self.sampling_config()
        frames = sample_frames(video.path, cfg)
        conv: Conversation = [{"role": "user", "content": [video_part(frames), text_part(self.prompt)]}]
        preproc = {
            "sampling": cfg.as_dict(),
            "n_frames": len(frames.indices),
            "frame_indices": frames.indices,
            "min_pixels": self.opt("min_pixels"),
            "max_pixels": self.opt("max_pixels"),
            "prompt": "thinking" if self.opt("thinking", True) else "non-thinking",
        }
        return conv, preproc

    def parse(self, raw: str) -> EvalResult:
        return parse_score_answer(raw, *self.label.score_range)  # type: ignore[misc]

    def error(self, result: EvalResult, label: Any) -> float | None:
        """``|ŷ − MOS|``; ``label`` is the MOS already normalised to [1, 5] (method.md)."""
        if result.pred_scalar is None or label is None:
            return None
        return abs(float(result.pred_scalar) - float(label))
