"""OpenAI-compatible chat completions (e.g. a vLLM server) as an evaluator backend.

Frames travel as base64 JPEG ``data:`` URLs in ``image_url`` parts (``video_mode=
"frames"``, works with any server) or, for vLLM, as one ``video_url`` part of type
``data:video/jpeg;base64,<frame>,<frame>,…`` (``video_mode="video_jpeg"``).
Requests run in a thread pool capped at ``concurrency`` (safe in notebooks, which
already run an event loop). Retries with exponential backoff on 408/409/429/5xx,
connection errors and timeouts are the ``openai`` client's own (``max_retries``); a
request that still fails gives a :class:`Completion` with ``error`` set, never an
exception for the whole batch. The API key comes from the environment
(``api_key_env``, default ``OPENAI_API_KEY``; vLLM without ``--api-key`` accepts any).
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mds.errors import EvaluatorError
from mds.evaluators.backends.messages import Completion, Conversation, GenParams


def jpeg_data_url(image: np.ndarray, quality: int = 90) -> str:
    """``data:image/jpeg;base64,…`` for an ``(H, W, 3)`` uint8 frame."""
    return "data:image/jpeg;base64," + _jpeg_b64(image, quality)


def _jpeg_b64(image: np.ndarray, quality: int) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="JPEG", quality=quality)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _frames_of(part: dict[str, Any]) -> np.ndarray:
    v = part["video"]
    return v.frames if hasattr(v, "frames") else np.asarray(v)


def to_openai_messages(
    conv: Conversation, *, video_mode: str = "frames", quality: int = 90
) -> list[dict[str, Any]]:
    """Neutral conversation → OpenAI chat ``messages`` with data-URL images."""
    out: list[dict[str, Any]] = []
    for m in conv:
        content = m["content"]
        if isinstance(content, str):
            out.append({"role": m["role"], "content": content})
            continue
        parts: list[dict[str, Any]] = []
        for p in content:
            if p["type"] == "text":
                parts.append({"type": "text", "text": p["text"]})
            elif p["type"] == "image":
                parts.append({"type": "image_url", "image_url": {"url": jpeg_data_url(p["image"], quality)}})
            elif p["type"] == "video":
                frames = _frames_of(p)
                if video_mode == "video_jpeg":
                    url = "data:video/jpeg;base64," + ",".join(_jpeg_b64(f, quality) for f in frames)
                    parts.append({"type": "video_url", "video_url": {"url": url}})
                else:
                    parts.extend(
                        {"type": "image_url", "image_url": {"url": jpeg_data_url(f, quality)}} for f in frames
                    )
            else:
                raise EvaluatorError(f"unknown message part type {p['type']!r}")
        out.append({"role": m["role"], "content": parts})
    return out


class OpenAIChatBackend:
    """Chat completions against ``base_url`` with bounded concurrency and retries."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 600.0,
        max_retries: int = 3,
        video_mode: str = "frames",
        jpeg_quality: int = 90,
        extra_body: dict[str, Any] | None = None,
        http_client: Any = None,
    ) -> None:
        if not model:
            raise EvaluatorError("openai backend: no model name (option served_model or model)")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise EvaluatorError("openai backend: no server URL (option base_url or env OPENAI_BASE_URL)")
        if video_mode not in ("frames", "video_jpeg"):
            raise EvaluatorError(
                f"openai backend: video_mode must be 'frames' or 'video_jpeg', not {video_mode!r}"
            )
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.video_mode = video_mode
        self.jpeg_quality = jpeg_quality
        self.extra_body = dict(extra_body or {})
        self._http_client = http_client
        self._client: Any = None

    @property
    def model_id(self) -> str:
        return self.model

    @property
    def client(self) -> Any:
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(
                base_url=self.base_url,
                api_key=os.environ.get(self.api_key_env) or "EMPTY",
                timeout=self.timeout,
                max_retries=self.max_retries,
                http_client=self._http_client,
            )
        return self._client

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "openai",
            "model": self.model,
            "base_url": self.base_url,
            "video_mode": self.video_mode,
        }

    def _request(self, conv: Conversation, params: GenParams, n: int) -> list[Completion]:
        import openai

        body: dict[str, Any] = dict(self.extra_body)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(conv, video_mode=self.video_mode, quality=self.jpeg_quality),
            "max_tokens": params.max_new_tokens,
            "n": n,
            "seed": params.seed,
        }
        if params.do_sample:
            if params.temperature is not None:
                kwargs["temperature"] = params.temperature
            if params.top_p is not None:
                kwargs["top_p"] = params.top_p
            if params.top_k is not None:
                body["top_k"] = params.top_k  # vLLM extension
        else:
            kwargs["temperature"] = 0.0
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if body:
            kwargs["extra_body"] = body
        try:
            resp = self.client.chat.completions.create(**kwargs)
        except openai.APIError as e:
            msg = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            return [Completion(text="", error=msg) for _ in range(n)]
        out = []
        for choice in resp.choices:
            msg = choice.message
            extra = getattr(msg, "model_extra", None) or {}
            reasoning = (
                getattr(msg, "reasoning_content", None)
                or extra.get("reasoning_content")
                or extra.get("reasoning")
            )
            out.append(
                Completion(text=msg.content or "", reasoning=reasoning, finish_reason=choice.finish_reason)
            )
        while len(out) < n:  # a server that ignores ``n``: ask again for the rest
            more = self._request(
                conv, GenParams(**{**params.__dict__, "seed": params.seed + len(out)}), n - len(out)
            )
            out.extend(more)
            if any(c.error for c in more):
                break
        return out[:n]

    def generate(
        self, conversations: Sequence[Conversation], params: GenParams, *, n: int = 1
    ) -> list[list[Completion]]:
        if not conversations:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
            return list(pool.map(lambda c: self._request(c, params, n), conversations))
