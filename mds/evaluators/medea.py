"""MEDEA (CASTER task): will this UGC get a supportive comment section? Binary 支持 / 非明确支持 (evaluators.md §2).

Input: 1 cover + 7 keyframes (8 images) and the Bilibili-style metadata (title,
tags, ASR, level-1/level-2 category, duration, resolution, vertical) in one
Chinese prompt; the text is split at each ``<image>`` placeholder and the images
interleaved in order (segments whitespace-stripped, empty ones dropped), as the
reference client does. Served by a vLLM OpenAI-compatible server (default backend
``openai``, served name ``MEDEA``); a local Qwen3-VL works through the transformers
backend as well.

Output: a Social-CoT ``<think>`` block with ≥ 15 simulated comments
``【…】(支持评论n)`` / ``【…】(反对评论n)``, a summary with ``z = boxed{…}``,
``</think>``, then the label. Parse (§2.6) on NFKC-normalised text: label after the
last ``</think>`` (``非明确支持`` checked before ``支持``), z from the last
``boxed{}``, comment recount, summary counts, recomputed z* = (X−Y)/√(X+Y), flags.
Scalar for ranking: z (or P̂(支持) over samples with ``scalar="p_support"``).
Error vs a human label: ``1[ŷ ≠ y]``.

MEDEA measures predicted community resonance, not perceptual quality; keep its
labels apart from MOS labels.
"""

from __future__ import annotations

import math
import re
import statistics
from typing import Any, ClassVar

from mds.evaluators.backends.messages import Conversation, image_part, text_part
from mds.evaluators.base import EvalResult, LabelKind, LabelSpec, VideoInput
from mds.evaluators.chat import USABLE, ChatEvaluator, nfkc

# evaluators.md §2.3, word for word (full-width punctuation kept). The "### 输入数据" block keeps its
# {placeholders} literally; only the <当前任务> block (MEDEA_TASK_TEMPLATE) is filled in.
MEDEA_INSTRUCTIONS = (
    "<任务定义>\n"
    "你是一个B站内容分析专家。请综合给定稿件的视觉特征和文本内容，然后根据视频内容推测评论区针对该视频创作质量可能出现的评论（至少15条）及其倾向，最后总结评论区的总倾向并直接输出结果。\n"
    "\n"
    "### 输入数据\n"
    "1. 封面: 稿件的封面图像\n"
    "2. 关键帧: 7张视频的关键帧图像\n"
    "3. 标题: {title}\n"
    "4. 标签: {tag}\n"
    "5. ASR: {asr}\n"
    "6. 一级分区: {new_tid_name}\n"
    "7. 二级分区: {new_sub_tid_name}\n"
    "8. 时长: {duration}\n"
    "9. 分辨率: {resolution}\n"
    "10. 是否竖屏: {vertical}\n"
    "\n"
    "### 评论区总倾向判断准则\n"
    "1. 模拟的评论必须至少有15条，不能重复，并且明确出现在思考过程中\n"
    "2. 假设在模拟的评论中，支持类评论共X条，反对类评论共Y条\n"
    "3. 计算 Sigma-标准化差额（Skellam z 分数）z = (X - Y) / sqrt(X + Y)\n"
    '4. 如果 z ≥ 1.5 则评论区总倾向为"支持"，否则为"非明确支持"\n'
    '5. 在输出时，z值必须用boxed{}包裹，例如"z = boxed{-2}"\n'
    "6. 总结时的支持类评论数和反对类评论数需要和思考过程中模拟的评论数严格匹配，不能随意虚构\n"
    "\n"
    "<当前任务>\n"
)
MEDEA_TASK_TEMPLATE = (
    "封面: <image>\n"
    "关键帧: <image><image><image><image><image><image><image>\n"
    '标题: "{title}"\n'
    '标签: "{tag}"\n'
    'ASR: "{asr}"\n'
    '一级分区: "{new_tid_name}"\n'
    '二级分区: "{new_sub_tid_name}"\n'
    '时长: "{duration}"\n'
    '分辨率: "{resolution}"\n'
    '是否竖屏: "{vertical}"\n'
    "\n"
    "请直接输出结果（支持/非明确支持），不要包含任何额外解释。"
)
IMAGE_PLACEHOLDER = "<image>"
N_KEYFRAMES = 7
Z_THRESHOLD = 1.5
MIN_COMMENTS = 15

POSITIVE = "支持"
NEGATIVE = "非明确支持"
# Human / training label spellings → 1 (High-Quality, 支持) or 0 (Low-Quality, 非明确支持).
LABEL_MAP: dict[Any, int] = {
    "支持": 1,
    "high-quality": 1,
    "high": 1,
    "positive": 1,
    "true": 1,
    "1": 1,
    "非明确支持": 0,
    "反对": 0,
    "不支持": 0,
    "low-quality": 0,
    "low": 0,
    "negative": 0,
    "false": 0,
    "0": 0,
}

_LABEL = re.compile(r"^(非明确支持|支持|反对|不支持)")
_BOXED = re.compile(r"\\?boxed\{\s*([-+]?\d+(?:\.\d+)?)\s*\}")
_SUPPORT = re.compile(r"【(.*?)】\s*[（(]\s*支持评论\s*\d+\s*[)）]", re.DOTALL)
_OPPOSE = re.compile(r"【(.*?)】\s*[（(]\s*反对评论\s*\d+\s*[)）]", re.DOTALL)
_SUM_SUPPORT = re.compile(r"支持类评论共\s*(\d+)\s*条")
_SUM_OPPOSE = re.compile(r"反对类评论共\s*(\d+)\s*条")
_STRIP = "*「」“”\"'。. \t\r\n`#"


def build_prompt(fields: dict[str, str]) -> str:
    """The full prompt with the ``<当前任务>`` block filled from ``fields`` (keys as in the template)."""
    return MEDEA_INSTRUCTIONS + MEDEA_TASK_TEMPLATE.format(**fields)


def prompt_fields(video: VideoInput, width: int | None = None, height: int | None = None) -> dict[str, str]:
    """Template fields from a video's metadata (``title``, ``tags``, ``asr``, ``category``, ``subcategory``)."""
    meta = video.meta or {}
    tags = meta.get("tags", meta.get("tag", ""))
    if isinstance(tags, (list, tuple)):
        tags = ",".join(str(t) for t in tags)
    w, h = video.width or width, video.height or height
    dur = video.duration_s
    return {
        "title": str(meta.get("title", video.name or "")),
        "tag": str(tags or ""),
        "asr": str(meta.get("asr", "") or ""),
        "new_tid_name": str(meta.get("category", meta.get("new_tid_name", "")) or ""),
        "new_sub_tid_name": str(meta.get("subcategory", meta.get("new_sub_tid_name", "")) or ""),
        "duration": str(meta.get("duration", f"{int(round(dur))}秒" if dur is not None else "")),
        "resolution": str(meta.get("resolution", f"{w}x{h}" if w and h else "")),
        "vertical": str(meta.get("vertical", ("是" if h > w else "否") if w and h else "")),
    }


def interleave(prompt: str, images: list[Any]) -> list[dict[str, Any]]:
    """Split ``prompt`` at ``<image>`` and interleave ``images`` (stripped segments, empty ones dropped)."""
    segments = prompt.split(IMAGE_PLACEHOLDER)
    if len(segments) - 1 != len(images):
        raise ValueError(f"prompt has {len(segments) - 1} <image> placeholders for {len(images)} images")
    parts: list[dict[str, Any]] = []
    for i, seg in enumerate(segments):
        seg = seg.strip()
        if seg:
            parts.append(text_part(seg))
        if i < len(images):
            parts.append(image_part(images[i]))
    return parts


def parse_medea(raw: str, reasoning: str | None = None) -> EvalResult:
    """Parse a MEDEA answer (evaluators.md §2.6). ``reasoning``: server-split chain of thought, if any."""
    text = nfkc(raw)
    flags: list[str] = []
    if reasoning is not None:
        think, answer = nfkc(reasoning), text
    else:
        cut = text.rfind("</think>")
        if cut < 0:
            flags.append("missing_think_end")
            think, answer = text, ""
        else:
            think, answer = text[:cut], text[cut + len("</think>") :]
    think = re.sub(r"^\s*<think>", "", think).strip()
    first = answer.strip().strip(_STRIP).splitlines()[0].strip(_STRIP) if answer.strip(_STRIP) else ""
    m = _LABEL.match(first)
    label = m.group(1) if m else None

    zs = _BOXED.findall(think) or (_BOXED.findall(answer) if answer else [])
    z = float(zs[-1]) if zs else None
    support = _SUPPORT.findall(think)
    oppose = _OPPOSE.findall(think)
    x, y = len(support), len(oppose)
    s_sup, s_opp = _SUM_SUPPORT.findall(think), _SUM_OPPOSE.findall(think)
    summary = (int(s_sup[-1]), int(s_opp[-1])) if s_sup and s_opp else None
    z_star = (x - y) / math.sqrt(x + y) if x + y > 0 else None
    if x + y < MIN_COMMENTS:
        flags.append("few_comments")
    if summary is not None and summary != (x, y):
        flags.append("summary_count_mismatch")
    comments = [c.strip() for c in support + oppose]
    if len(set(comments)) < len(comments):
        flags.append("duplicate_comments")
    if z is None:
        flags.append("no_z")
    elif z_star is not None and abs(z - z_star) > 0.01:
        flags.append("z_mismatch")
    parsed: dict[str, Any] = {
        "label": label,
        "positive": None if label is None else label == POSITIVE,
        "z": z,
        "z_recomputed": None if z_star is None else round(z_star, 4),
        "n_support": x,
        "n_oppose": y,
        "summary_counts": list(summary) if summary else None,
        "flags": flags,
    }
    if label is None:
        status = "truncated" if "missing_think_end" in flags else "failed"
        return EvalResult(
            None,
            status,
            parsed=parsed,
            raw_text=raw,
            reasoning=think or None,
            error="no final label (支持 / 非明确支持) after </think>",
        )
    z_for_rank = z
    status = "ok"
    if z_for_rank is None and z_star is not None:
        z_for_rank, status = z_star, "fallback"
    if z_for_rank is not None and (z_for_rank >= Z_THRESHOLD) != (label == POSITIVE):
        flags.append("z_label_inconsistent")
    return EvalResult(
        None,
        status,
        pred_scalar=z_for_rank,
        pred_label=label,
        parsed=parsed,
        raw_text=raw,
        reasoning=think or None,
    )


def label_to_int(label: Any) -> int | None:
    if isinstance(label, bool):
        return int(label)
    if isinstance(label, (int, float)) and label in (0, 1):
        return int(label)
    return LABEL_MAP.get(str(label).strip().lower()) if label is not None else None


class MedeaEvaluator(ChatEvaluator):
    """MEDEA (Qwen3-VL-8B-Thinking): binary community resonance with a Skellam z side score."""

    name = "medea"
    label: ClassVar[LabelSpec] = LabelSpec(LabelKind.BINARY, None, True, choices=(POSITIVE, NEGATIVE))
    modality = "video+text"
    extra_options: ClassVar[dict[str, str]] = {
        "scalar": "ranking scalar: 'z' (mean Skellam z) or 'p_support' (fraction of samples answering 支持)",
    }
    prompt_texts = (MEDEA_INSTRUCTIONS, MEDEA_TASK_TEMPLATE)

    def build_conversation(self, video: VideoInput) -> tuple[Conversation, dict[str, Any]]:
        from mds.video.frames import SamplingConfig, cover_frame, sample_frames

        short = self.opt("short_side")
        keyframes = sample_frames(video.path, SamplingConfig(num_frames=N_KEYFRAMES, short_side=short))
        cover_src = (video.meta or {}).get("cover")
        if cover_src:
            cover = _load_image(cover_src, short)
        else:
            cover = cover_frame(video.path, short_side=short)
        fields = prompt_fields(video, keyframes.width, keyframes.height)
        prompt = build_prompt(fields)
        images = [cover, *list(keyframes.frames)]
        conv: Conversation = [{"role": "user", "content": interleave(prompt, images)}]
        preproc = {
            "cover": str(cover_src) if cover_src else "frame:0",
            "keyframe_indices": keyframes.indices,
            "short_side": short,
            "fields": fields,
        }
        return conv, preproc

    def parse(self, raw: str) -> EvalResult:
        return parse_medea(raw)

    def aggregate(self, samples: list[EvalResult]) -> EvalResult:
        usable = [s for s in samples if s.parse_status in USABLE]
        if not usable:
            return samples[-1]
        best = usable[0]
        zs = [float(s.pred_scalar) for s in usable if s.pred_scalar is not None]
        p = sum(s.pred_label == POSITIVE for s in usable) / len(usable)
        best.parsed = {
            **best.parsed,
            "p_support": p,
            "sample_z": zs,
            "sample_labels": [s.pred_label for s in usable],
        }
        if len(usable) > 1:
            best.pred_label = POSITIVE if p >= 0.5 else NEGATIVE
        if self.opt("scalar", "z") == "p_support":
            best.pred_scalar = p
            best.uncertainty = p * (1 - p)
        elif zs:
            best.pred_scalar = statistics.fmean(zs)
            best.uncertainty = statistics.pvariance(zs) if len(zs) > 1 else None
        return best

    def error(self, result: EvalResult, label: Any) -> float | None:
        """``1[ŷ ≠ y]`` with y in {支持 / High-Quality / 1, 非明确支持 / Low-Quality / 0}."""
        y = label_to_int(label)
        yhat = label_to_int(result.pred_label)
        if y is None or yhat is None:
            return None
        return float(yhat != y)


def _load_image(path: str, short_side: int | None) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if short_side:
            s = short_side / min(im.size)
            im = im.resize((max(2, round(im.width * s)), max(2, round(im.height * s))))
        return np.asarray(im)
