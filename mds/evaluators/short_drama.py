"""Short-drama quality MLLM (WWW 2026): the opening episodes of a drama → an integer 1–5 (evaluators.md §3).

No weights, prompt or output format of this model are public. The prompt below is
the documented **placeholder** (§3.3) and the two answer formats it asks for
(``answer_format="json"``: ``{"think", "answer"}``; ``"tagged"``: ``<caption>``,
``<comments>``, ``<think>``, ``<answer>\\boxed{k}</answer>``) are the claimed,
unverified ones. Replace both (and bump ``impl_version``) once the authors publish
them; point ``model`` at the checkpoint.

Input: video only; ``meta["episodes"]`` (a list of files) spreads ``num_frames``
over the episodes in order, otherwise the video itself is sampled. Parse (§3.6):
JSON on the outermost ``{…}`` (code fences stripped) → ``answer``; else the last
``<answer>`` block; inside, ``\\boxed{k}`` then a lone digit 1–5. Float answers are
rounded and flagged; 0, 6, 10-point answers are ``out_of_range`` with no scalar.
Error vs a label: ``|ŷ − y|`` (0–4). The released labels are engagement bins, not
opinion scores; keep the label sources apart.
"""

from __future__ import annotations

import json
import re
import statistics
from typing import Any, ClassVar

from mds.evaluators.backends.messages import Conversation, text_part, video_part
from mds.evaluators.base import EvalResult, LabelKind, LabelSpec, VideoInput
from mds.evaluators.chat import USABLE, ChatEvaluator, nfkc

# PLACEHOLDER (evaluators.md §3.3) until the authors publish the real prompt.
PROMPT_BASE = (
    "Given the opening episodes of this short drama, assess its overall quality from visual presentation and "
    "narrative appeal as audiences would perceive it. Output an integer score 1–5."
)
FORMAT_JSON = "Respond as JSON with keys think and answer"
FORMAT_TAGGED = (
    "First describe the video in <caption>, predict audience comments in <comments>, reason in <think>, then give "
    "the final score as \\boxed{k} inside <answer>."
)

_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.IGNORECASE)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL | re.IGNORECASE)
_BOXED_ANY = re.compile(r"\\?boxed\{\s*([-+]?\d+(?:\.\d+)?)\s*\}")
_BOXED = re.compile(r"\\boxed\{\s*([1-5])(?:\.0+)?\s*\}")
_DIGIT = re.compile(r"(?<!\d)([1-5])(?!\d)")
_NUMBER = re.compile(r"(?<![\d.])([-+]?\d+(?:\.\d+)?)")
_SECTION = {
    k: re.compile(rf"<{k}>(.*?)</{k}>", re.DOTALL | re.IGNORECASE) for k in ("caption", "comments", "think")
}


def build_prompt(answer_format: str = "tagged") -> str:
    if answer_format not in ("json", "tagged"):
        raise ValueError("answer_format must be 'json' or 'tagged'")
    return f"{PROMPT_BASE} {FORMAT_JSON if answer_format == 'json' else FORMAT_TAGGED}"


def _score_from_answer(ans: Any) -> tuple[float | None, list[str]]:
    """(score, flags) from a JSON ``answer`` value or the inside of an ``<answer>`` block."""
    flags: list[str] = []
    if isinstance(ans, bool):
        return None, ["bad_answer_type"]
    if isinstance(ans, (int, float)):
        return float(ans), flags
    s = nfkc(str(ans))
    boxed = _BOXED_ANY.findall(s)
    if len(boxed) > 1:
        flags.append("multiple_boxed")
    if boxed:
        return float(boxed[-1]), flags
    m = _DIGIT.search(s)
    if m and not _NUMBER.fullmatch(s.strip()):
        return float(m.group(1)), flags
    m = _NUMBER.search(s)
    return (float(m.group(1)), flags) if m else (None, flags)


def parse_short_drama(raw: str) -> EvalResult:
    """Parse a JSON ``{think, answer}`` or tagged ``<answer>\\boxed{k}</answer>`` answer (evaluators.md §3.6)."""
    text = nfkc(raw or "")
    parsed: dict[str, Any] = {}
    reasoning = None
    score: float | None = None
    flags: list[str] = []
    fmt = None
    body = _FENCE.sub("", text.strip())
    obj = _OBJECT.search(body)
    if obj and (body.startswith("{") or '"answer"' in obj.group(0)):
        try:
            data = json.loads(obj.group(0))
        except json.JSONDecodeError:
            try:  # the common slip of trailing commas
                data = json.loads(_TRAILING_COMMA.sub(r"\1", obj.group(0)))
                flags.append("json_repaired")
            except json.JSONDecodeError:
                flags.append("invalid_json")
                data = None
        if isinstance(data, dict) and "answer" in data:
            fmt = "json"
            reasoning = str(data.get("think")) if data.get("think") is not None else None
            score, f = _score_from_answer(data["answer"])
            flags += f
    if fmt is None:
        answers = _ANSWER.findall(text)
        if answers:
            fmt = "tagged"
            if len(answers) > 1:
                flags.append("multiple_answers")
            score, f = _score_from_answer(answers[-1])
            flags += f
        elif "<answer>" in text.lower():
            flags.append("missing_answer_end")
        for k, rx in _SECTION.items():
            hits = rx.findall(text)
            if hits:
                parsed[k] = hits[-1].strip()
        reasoning = parsed.get("think", reasoning)
    parsed.update({"format": fmt, "flags": flags, "raw_score": score})
    if score is None:
        status = "truncated" if "missing_answer_end" in flags else "failed"
        return EvalResult(
            None,
            status,
            parsed=parsed,
            raw_text=raw,
            reasoning=reasoning,
            error="no score found in a JSON answer or an <answer> block",
        )
    if score != int(score):
        flags.append("float_rounded")
    k = int(round(score))
    if not 1 <= k <= 5:
        return EvalResult(
            None,
            "out_of_range",
            pred_label=k,
            parsed=parsed,
            raw_text=raw,
            reasoning=reasoning,
            error=f"score {score:g} outside 1..5",
        )
    parsed["score"] = k
    return EvalResult(
        None, "ok", pred_scalar=float(k), pred_label=k, parsed=parsed, raw_text=raw, reasoning=reasoning
    )


class ShortDramaEvaluator(ChatEvaluator):
    """Short-drama quality MLLM (Qwen2.5-VL-7B; weights unpublished): ordinal 1–5. Placeholder prompt."""

    name = "short-drama"
    label: ClassVar[LabelSpec] = LabelSpec(LabelKind.ORDINAL, (1.0, 5.0), True)
    modality = "video"
    extra_options: ClassVar[dict[str, str]] = {
        "answer_format": "'tagged' (<answer>\\boxed{k}</answer>) or 'json'"
    }
    prompt_texts = (PROMPT_BASE, FORMAT_JSON, FORMAT_TAGGED)

    def build_conversation(self, video: VideoInput) -> tuple[Conversation, dict[str, Any]]:
        import numpy as np

        from mds.video.frames import sample_frames

        episodes = list((video.meta or {}).get("episodes") or [video.path])
        total = int(self.opt("num_frames", 32))
        per = [total // len(episodes) + (1 if i < total % len(episodes) else 0) for i in range(len(episodes))]
        chunks, used = [], []
        for path, n in zip(episodes, per):
            if n <= 0:
                continue
            sf = sample_frames(path, self.sampling_config(num_frames=n, fps=None))
            chunks.append(
                sf.frames
                if sf.frames.shape[1:] == (chunks[0].shape[1:] if chunks else sf.frames.shape[1:])
                else _resize_like(sf.frames, chunks[0])
            )
            used.append({"path": str(path), "frame_indices": sf.indices})
        frames = np.concatenate(chunks)
        if len(frames) % 2:
            frames = frames[:-1] if len(frames) > 1 else np.concatenate([frames, frames])
        # Frames spread over several episodes have no single fps; 2 fps is the Qwen default timing.
        conv: Conversation = [
            {
                "role": "user",
                "content": [
                    video_part(frames, fps=2.0),
                    text_part(build_prompt(self.opt("answer_format", "tagged"))),
                ],
            }
        ]
        preproc = {
            "episodes": used,
            "n_frames": int(len(frames)),
            "max_pixels": self.opt("max_pixels"),
            "prompt": "placeholder (evaluators.md §3.3)",
        }
        return conv, preproc

    def parse(self, raw: str) -> EvalResult:
        return parse_short_drama(raw)

    def aggregate(self, samples: list[EvalResult]) -> EvalResult:
        usable = [s for s in samples if s.parse_status in USABLE and s.pred_scalar is not None]
        if len(usable) <= 1:
            return usable[0] if usable else samples[-1]
        best = usable[0]
        vals = [float(s.pred_scalar) for s in usable]  # type: ignore[arg-type]
        best.pred_scalar = statistics.fmean(vals)  # expected score breaks ties for ranking
        best.pred_label = int(round(statistics.median(vals)))
        best.uncertainty = statistics.pvariance(vals)
        best.parsed = {**best.parsed, "sample_scores": vals}
        return best

    def error(self, result: EvalResult, label: Any) -> float | None:
        """``|ŷ − y|`` on the 1–5 scale."""
        if result.pred_label is None or label is None or result.parse_status not in USABLE:
            return None
        return abs(float(result.pred_label) - float(label))


def _resize_like(frames: Any, ref: Any) -> Any:
    import numpy as np
    from PIL import Image

    h, w = ref.shape[1:3]
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h))) for f in frames])
