"""VR-Thinker: which of two videos is better on TA / VQ / MQ / OA, with a multi-turn frame-selection tool loop (evaluators.md §4).

Follows the ``qunwang13/vrthinker`` card's reference loop (§4.2, §4.5):

* each video is addressed through 128 virtual frame indices (virtual i → real frame
  ``min(⌊i/128 · total⌋, total − 1)``); frames are RGB, resized to 448×448;
* the first user turn holds 8 images (video 1 at virtual 16/48/80/112, then video 2)
  and the user text with the T2V prompt (``meta["prompt"]`` of video 1, or empty);
* per turn: generate; an ``<Answer>`` block ends the loop; else a ``<tool_call>``
  for ``select_frames`` gets the same indices from both videos, interleaved
  (v1[i], v2[i], …), at most 12, in a new user turn with the tool-response text;
  everything stays in context; at most 6 turns; greedy decoding.

Parse (§4.7): the last ``<(final )?answer>`` block (case-insensitive) with
``TA|VQ|MQ|OA = 0..2``, all four required; fallback: the last ``<recommend answer>``
(``recommend_only``). Per-pair scalar: OA as +1 (video 1) / −1 (video 2) / 0 (tie).
Per-video scores come from :mod:`mds.scoring` (win rate against anchor videos).
Error vs a human pairwise label: ``1[OA ≠ gt]``, or with all four dimensions
``1 − (0.5·1[OA ok] + 0.5·mean_{TA,VQ,MQ} 1[d ok])``.

The prompts are the card's text as given in evaluators.md §4.3. The card's raw bytes
could not be checked (its page shows the "—" separators mis-encoded); if the
checkpoint's own script differs, replace the constants and bump ``impl_version``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mds.errors import EvaluatorError, MdsError
from mds.evaluators.backends.messages import Conversation, image_part, text_part
from mds.evaluators.base import EvalResult, LabelKind, LabelSpec, VideoInput
from mds.evaluators.chat import ChatEvaluator, nfkc

# evaluators.md §4.3, the vrthinker card's system prompt, user text and tool-response text.
SYSTEM_PROMPT = (
    "Task Description:\n"
    "Your task is to compare two videos generated based on the same text prompt by analyzing their frames in detail and provide an overall judgment along with a judgment for each evaluation dimension.\n"
    "The provided frames are downsampled from these videos:\n"
    "- Video 1: First four input frames.\n"
    "- Video 2: Next four input frames.\n"
    "Evaluation Dimensions:\n"
    "1. Text Alignment (TA): How faithfully each video reflects the text prompt.\n"
    "2. Visual Quality (VQ): Aesthetics, artifacts, blurriness, distortion, color, resolution, flickering.\n"
    "3. Motion Quality (MQ): Smoothness, jitter, unnatural motion, temporal consistency.\n"
    "4. Overall Assessment (OA): Holistic judgment across the above.\n"
    "Frames and Analysis Rules:\n"
    "- 8 sampled frames are provided initially (4 per video), evenly downsampled from 128 frames per video. The first 4 are Video 1, the next 4 are Video 2.\n"
    "- Each video has 128 frames (indices 0-127). To inspect more frames, call select_frames with the indices you need; the tool retrieves the same indices from both videos symmetrically.\n"
    "- Tool returns are paired: for [i, j, k] you get (v1[i], v2[i], v1[j], v2[j], v1[k], v2[k]). Use this pairing to compare the same moment across both videos.\n"
    "- Each tool call accepts at most 12 indices.\n"
    "Format Requirement:\n"
    "1. <Snapshot></Snapshot> — summarize useful visual details after receiving frames.\n"
    "2. <Think></Think> — reasoning.\n"
    "3. <Answer></Answer> — final judgment.\n"
    "Label semantics: 1 = Video 1 better, 2 = Video 2 better, 0 = tie.\n"
    "Examples:\n"
    "<Answer>TA=1, VQ=1, MQ=0, OA=1</Answer>\n"
    "Tool call format:\n"
    "When you want to inspect more frames, emit a tool call inside <tool_call></tool_call> tags:\n"
    '<tool_call>{"name": "select_frames", "arguments": {"frame_indices": [10, 30, 60, 90]}}</tool_call>'
)
USER_TEMPLATE = (
    "Compare the two videos generated from the following prompt and evaluate them across Text Alignment (TA), Motion Quality (MQ), Visual Quality (VQ), and Overall Assessment (OA).\n"
    "\n"
    "Prompt: {prompt}\n"
    "\n"
    "The first 4 images are uniformly sampled from Video 1, and the next 4 are from Video 2. Each video has 128 frames (indices 0-127). Use the select_frames tool to request additional frames if needed."
)
TOOL_RESPONSE_TEMPLATE = (
    "<tool_response>Retrieved {n} frame pairs ({indices}) symmetrically from both videos.</tool_response>"
)

FRAMES_PER_VIDEO = 128
INITIAL_PER_VIDEO = 4
MAX_TURNS = 6
MAX_FRAMES_PER_CALL = 12
IMAGE_SIDE = 448
DIMENSIONS = ("TA", "VQ", "MQ", "OA")
PAIR_SCALAR = {1: 1.0, 2: -1.0, 0: 0.0}

_TOOL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)
_FINAL = re.compile(
    r"<\s*(?:final\s+)?answer\s*>(.*?)<\s*/\s*(?:final\s+)?answer\s*>", re.DOTALL | re.IGNORECASE
)
_RECOMMEND = re.compile(
    r"<\s*recommend(?:ed)?\s+answer\s*>(.*?)<\s*/\s*recommend(?:ed)?\s+answer\s*>", re.DOTALL | re.IGNORECASE
)
_DIM = re.compile(r"\b(TA|VQ|MQ|OA|CF)\s*[=:]\s*(\d)\b", re.IGNORECASE)


def initial_indices(per_video: int = INITIAL_PER_VIDEO, n_virtual: int = FRAMES_PER_VIDEO) -> list[int]:
    """Virtual indices of the first frames: ⌊N·(i + 0.5)/k⌋ → 16, 48, 80, 112 for N = 128, k = 4."""
    return [math.floor(n_virtual * (i + 0.5) / per_video) for i in range(per_video)]


def virtual_to_real(i: int, total_frames: int, n_virtual: int = FRAMES_PER_VIDEO) -> int:
    return min(math.floor(i / n_virtual * total_frames), total_frames - 1)


def parse_tool_call(
    turn: str, n_virtual: int = FRAMES_PER_VIDEO
) -> tuple[list[int] | None, list[str], list[int]]:
    """``(kept indices, flags, requested)`` of the last ``select_frames`` call in ``turn``; None if there is none.

    Accepts ``{"name": "select_frames", "arguments": {"frame_indices" | "target_frames": [...]}}`` and the bare
    ``{"target_frames": [...]}`` form; indices are ints in 0..n_virtual−1 (others clipped and flagged),
    deduplicated in order, capped at 12.
    """
    if "</tool_call>" not in turn:
        return None, [], []
    calls = _TOOL.findall(turn)
    if not calls:
        return None, ["bad_tool_json"], []
    try:
        obj = json.loads(calls[-1])
    except json.JSONDecodeError:
        return None, ["bad_tool_json"], []
    args = obj.get("arguments", obj) if isinstance(obj, dict) else None
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            args = None
    if (
        not isinstance(obj, dict)
        or ("name" in obj and obj["name"] != "select_frames")
        or not isinstance(args, dict)
    ):
        return None, ["bad_tool_json"], []
    raw = args.get("frame_indices", args.get("target_frames"))
    if not isinstance(raw, list) or not raw:
        return None, ["bad_tool_json"], []
    flags: list[str] = []
    kept: list[int] = []
    for x in raw:
        if not isinstance(x, (int, float)) or isinstance(x, bool):
            flags.append("bad_tool_json")
            continue
        i = int(x)
        if not 0 <= i < n_virtual:
            flags.append("index_out_of_range")
            i = min(max(i, 0), n_virtual - 1)
        if i not in kept:
            kept.append(i)
    return kept[:MAX_FRAMES_PER_CALL] or None, sorted(set(flags)), list(raw)


def _dims(block: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in _DIM.findall(block):
        out[k.upper()] = int(v)
    return out


def parse_vrthinker_answer(text: str) -> EvalResult:
    """Parse the final judgement from the assistant text of a VR-Thinker run (evaluators.md §4.7)."""
    t = nfkc(text or "")
    finals = _FINAL.findall(t)
    status = "ok"
    if finals:
        dims = _dims(finals[-1])
    else:
        recs = _RECOMMEND.findall(t)
        if not recs:
            return EvalResult(
                None,
                "failed",
                parsed={d: None for d in DIMENSIONS},
                raw_text=text,
                error="no <Answer> or <Recommend Answer> block",
            )
        dims = _dims(recs[-1])
        status = "recommend_only"
    parsed: dict[str, Any] = {d: dims.get(d) for d in DIMENSIONS}
    if "CF" in dims:
        parsed["CF"] = dims["CF"]
    bad = [d for d in DIMENSIONS if dims.get(d) not in (0, 1, 2)]
    if bad:
        for d in bad:
            parsed[d] = None
        return EvalResult(
            None, "missing_dims", parsed=parsed, raw_text=text, error=f"missing or invalid: {', '.join(bad)}"
        )
    return EvalResult(
        None,
        status,
        pred_scalar=PAIR_SCALAR[dims["OA"]],
        pred_label={d: dims[d] for d in DIMENSIONS},
        parsed=parsed,
        raw_text=text,
        uncertainty=float(dims["CF"]) if "CF" in dims else None,
    )


SWAP = {1: 2, 2: 1, 0: 0}


def merge_orders(fwd: EvalResult, rev: EvalResult) -> EvalResult:
    """Merge a pair judged as (v1, v2) with the same pair judged as (v2, v1) (labels mapped back)."""
    usable = ("ok", "recommend_only")
    rev_dims = {d: SWAP[v] for d, v in rev.pred_label.items()} if isinstance(rev.pred_label, dict) else None
    raw = f"=== order (video, pair) ===\n{fwd.raw_text or ''}\n\n=== order (pair, video) ===\n{rev.raw_text or ''}"
    if fwd.parse_status in usable and rev.parse_status in usable and rev_dims is not None:
        out = fwd
        out.pred_scalar = (float(fwd.pred_scalar or 0.0) - float(rev.pred_scalar or 0.0)) / 2
        agree = fwd.pred_label["OA"] == rev_dims["OA"]
        out.uncertainty = 0.0 if agree else 1.0
        out.parsed = {**fwd.parsed, "reverse": rev_dims, "orders_agree": agree}
        if rev.parse_status != "ok":
            out.parse_status = rev.parse_status
    elif rev.parse_status in usable and rev_dims is not None:
        out = rev
        out.pred_label, out.pred_scalar = rev_dims, -float(rev.pred_scalar or 0.0)
        out.video_id, out.pair_video_id = fwd.video_id, fwd.pair_video_id
        out.parsed = {**rev.parsed, **{d: rev_dims[d] for d in DIMENSIONS}, "one_order_only": "reverse"}
    else:
        out = fwd
        if fwd.parse_status in usable:
            out.parsed = {**fwd.parsed, "one_order_only": "forward"}
    out.raw_text = raw
    return out


LABEL_WORDS = {
    "video 1": 1,
    "1": 1,
    "a": 1,
    "left": 1,
    "video 2": 2,
    "2": 2,
    "b": 2,
    "right": 2,
    "tie": 0,
    "0": 0,
    "same": 0,
}


def _outcome(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if v in (0, 1, 2) else None
    return LABEL_WORDS.get(str(v).strip().lower()) if v is not None else None


class _PairFrames:
    """Frames of one video addressed by virtual index (decoded on demand, cached)."""

    def __init__(self, video: VideoInput, side: int) -> None:
        from mds.video.frames import SamplingConfig, sample_frames

        self.video = video
        self.cfg = SamplingConfig(num_frames=1, resize=(side, side))
        first = sample_frames(video.path, self.cfg, indices=[0])
        self.total = max(1, first.total_frames or video.frame_count or 1)
        self._cache: dict[int, Any] = {}

    def get(self, virtual: Sequence[int]) -> list[Any]:
        from mds.video.frames import sample_frames

        real = [virtual_to_real(i, self.total) for i in virtual]
        missing = sorted({r for r in real if r not in self._cache})
        if missing:
            sf = sample_frames(self.video.path, self.cfg, indices=missing)
            got = dict(zip(sf.indices, sf.frames))
            for r in missing:
                # the sampler maps indices past a short tail to the last decodable frame
                self._cache[r] = got.get(r, sf.frames[-1])
        return [self._cache[r] for r in real]


@dataclass
class _PairState:
    conv: Conversation
    frames: tuple[_PairFrames, _PairFrames]
    transcript: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    requested: list[list[int]] = field(default_factory=list)
    result: EvalResult | None = None


class VRThinkerEvaluator(ChatEvaluator):
    """VR-Thinker (Qwen2.5-VL-7B): pairwise TA/VQ/MQ/OA judgements through a select_frames tool loop."""

    name = "vrthinker"
    label: ClassVar[LabelSpec] = LabelSpec(
        LabelKind.PAIRWISE, (0.0, 1.0), True, dimensions=DIMENSIONS, choices=("1", "2", "0")
    )
    modality = "video-pair"
    extra_options: ClassVar[dict[str, str]] = {
        "max_turns": "assistant turns before giving up (card: 6)",
        "image_side": "square frame side in pixels (card: 448)",
        "both_orders": "also judge each pair swapped and average (position-bias control; doubles the cost)",
    }
    prompt_texts = (SYSTEM_PROMPT, USER_TEMPLATE, TOOL_RESPONSE_TEMPLATE)

    def predict(self, videos: Sequence[VideoInput]) -> list[EvalResult]:
        raise EvaluatorError("vrthinker compares pairs: use predict_pairs(), or `mds score` (anchor pairs)")

    def build_pair(self, v1: VideoInput, v2: VideoInput) -> _PairState:
        side = int(self.opt("image_side", IMAGE_SIDE))
        f1, f2 = _PairFrames(v1, side), _PairFrames(v2, side)
        init = initial_indices()
        images = f1.get(init) + f2.get(init)
        prompt = str((v1.meta or {}).get("prompt", "") or (v2.meta or {}).get("prompt", "") or "")
        conv: Conversation = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {
                "role": "user",
                "content": [
                    *(image_part(im) for im in images),
                    text_part(USER_TEMPLATE.format(prompt=prompt)),
                ],
            },
        ]
        return _PairState(conv=conv, frames=(f1, f2))

    def parse(self, raw: str) -> EvalResult:
        return parse_vrthinker_answer(raw)

    def predict_pairs(self, pairs: Sequence[tuple[VideoInput, VideoInput]]) -> list[EvalResult]:
        """One result per pair; with ``both_orders`` each pair also runs swapped and the two are merged."""
        if not self.opt("both_orders", False):
            return self._run_pairs(pairs)
        pairs = list(pairs)
        runs = self._run_pairs(pairs + [(b, a) for a, b in pairs])
        return [merge_orders(f, r) for f, r in zip(runs[: len(pairs)], runs[len(pairs) :])]

    def _run_pairs(self, pairs: Sequence[tuple[VideoInput, VideoInput]]) -> list[EvalResult]:
        states: list[_PairState | EvalResult] = []
        for v1, v2 in pairs:
            try:
                states.append(self.build_pair(v1, v2))
            except (MdsError, OSError, ValueError) as e:
                r = self._error_result(v1, f"input preparation failed: {e}")
                r.pair_video_id = v2.video_id
                states.append(r)
        max_turns = int(self.opt("max_turns", MAX_TURNS))
        params = self.gen_params(0)
        for _turn in range(max_turns):
            active = [s for s in states if isinstance(s, _PairState) and s.result is None]
            if not active:
                break
            comps = self.backend.generate([s.conv for s in active], params, n=1)
            for s, (c, *_rest) in zip(active, comps):
                self._step(s, c)
        out: list[EvalResult] = []
        for (v1, v2), s in zip(pairs, states):
            if isinstance(s, EvalResult):
                out.append(s)
                continue
            if s.result is None:  # turn limit without a final answer
                r = parse_vrthinker_answer("\n".join(s.transcript))
                if r.parse_status == "ok":  # cannot happen: a final answer ends the loop
                    r.parse_status = "recommend_only"
                s.flags.append("max_turns")
                if r.parse_status == "failed":
                    r.error = f"no final answer after {max_turns} turns"
                s.result = r
            r = s.result
            r.video_id, r.pair_video_id = v1.video_id, v2.video_id
            r.raw_text = self._render_transcript(s)
            r.parsed = {
                **r.parsed,
                "turns": len(s.transcript),
                "tool_calls": s.requested,
                "flags": sorted(set(s.flags)),
            }
            r.gen_params = params.as_dict() | {"max_turns": max_turns, "backend": self.backend_info()}
            r.preproc = {
                "image_side": int(self.opt("image_side", IMAGE_SIDE)),
                "virtual_frames": FRAMES_PER_VIDEO,
                "initial_indices": initial_indices(),
                "total_frames": [s.frames[0].total, s.frames[1].total],
            }
            r.model_id = self.model_id
            out.append(r)
        return out

    def _step(self, s: _PairState, c: Any) -> None:
        if c.error:
            s.result = EvalResult(
                None, "error", raw_text=c.full_text or None, error=c.error, parsed={"error": c.error}
            )
            return
        text = c.full_text
        s.transcript.append(text)
        s.conv.append({"role": "assistant", "content": text})
        if _FINAL.search(nfkc(text)):
            s.result = parse_vrthinker_answer(text)
            return
        kept, flags, requested = parse_tool_call(text)
        s.flags.extend(flags)
        if kept is None:
            r = parse_vrthinker_answer("\n".join(s.transcript))
            if r.parse_status == "failed" and c.finish_reason == "length":
                r.parse_status = "truncated"
            s.result = r
            return
        s.requested.append(kept)
        f1, f2 = s.frames
        a, b = f1.get(kept), f2.get(kept)
        images = [im for pair in zip(a, b) for im in pair]
        reply = TOOL_RESPONSE_TEMPLATE.format(n=len(requested), indices=kept)
        s.transcript.append(reply)
        s.conv.append({"role": "user", "content": [*(image_part(im) for im in images), text_part(reply)]})

    @staticmethod
    def _render_transcript(s: _PairState) -> str:
        return "\n\n".join(
            f"=== {'tool' if t.startswith('<tool_response>') else 'assistant'} ===\n{t}" for t in s.transcript
        )

    def error(self, result: EvalResult, label: Any) -> float | None:
        """``1[OA ≠ gt]``; with a full {TA, VQ, MQ, OA} label the mixed training-reward form."""
        pred = result.pred_label if isinstance(result.pred_label, dict) else None
        if pred is None or label is None:
            return None
        if isinstance(label, dict):
            gt = {d: _outcome(label.get(d)) for d in DIMENSIONS}
            if gt["OA"] is None:
                return None
            oa_ok = float(pred["OA"] == gt["OA"])
            others = [float(pred[d] == gt[d]) for d in ("TA", "VQ", "MQ") if gt[d] is not None]
            if len(others) == 3:
                return 1.0 - (0.5 * oa_ok + 0.5 * sum(others) / 3)
            return 1.0 - oa_ok
        gt_oa = _outcome(label)
        return None if gt_oa is None else float(pred["OA"] != gt_oa)
