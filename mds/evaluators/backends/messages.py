"""The neutral chat format shared by the backends (no heavy imports).

A conversation is a list of ``{"role": ..., "content": str | list[part]}`` where a
part is one of::

    {"type": "text", "text": "..."}
    {"type": "image", "image": ndarray (H, W, 3) uint8}
    {"type": "video", "video": SampledFrames | ndarray (T, H, W, 3) uint8, "fps": float (for ndarray)}

Backends turn this into processor inputs (transformers) or OpenAI message parts
(data URLs). Assistant turns are plain strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

Message = dict[str, Any]
Conversation = list[Message]


@dataclass(frozen=True)
class GenParams:
    """Generation settings (recorded with every prediction)."""

    do_sample: bool = True
    temperature: float | None = None  # None: the checkpoint's generation_config / server default
    top_k: int | None = None
    top_p: float | None = None
    max_new_tokens: int = 512
    seed: int = 0
    stop: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return {k: v for k, v in d.items() if v is not None}


@dataclass
class Completion:
    """One generated answer."""

    text: str
    reasoning: str | None = None  # server-side split chain of thought (e.g. vLLM reasoning parser)
    finish_reason: str | None = None  # "stop", "length", ...
    error: str | None = None  # transport failure after retries; text is then ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def full_text(self) -> str:
        """Reasoning (if split off by the server) and answer as one text, in the model's own layout."""
        if self.reasoning:
            return f"<think>\n{self.reasoning}\n</think>\n\n{self.text}"
        return self.text


class ChatBackend(Protocol):
    """Generates ``n`` completions for each conversation of a batch."""

    model_id: str

    def generate(
        self, conversations: Sequence[Conversation], params: GenParams, *, n: int = 1
    ) -> list[list[Completion]]: ...

    def describe(self) -> dict[str, Any]: ...


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(image: Any) -> dict[str, Any]:
    return {"type": "image", "image": image}


def video_part(video: Any, fps: float | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "video", "video": video}
    if fps is not None:
        part["fps"] = fps
    return part
