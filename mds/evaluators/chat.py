"""Shared machinery of the chat-VLM adapters (VQR1, MEDEA, short drama, VideoScore2, VR-Thinker).

An adapter subclasses :class:`ChatEvaluator` and provides ``build_conversation``
(frames through :mod:`mds.video.frames`, metadata, prompt) and ``parse`` (raw text
→ :class:`EvalResult`); this class runs the backend (local transformers or an
OpenAI-compatible server), draws ``n_samples`` answers per video, re-samples
failed parses up to ``resample`` times, and reduces the samples to one result.
"""

from __future__ import annotations

import difflib
import hashlib
import statistics
import unicodedata
from collections.abc import Sequence
from typing import Any, ClassVar

from mds.errors import EvaluatorError, MdsError
from mds.evaluators.backends.messages import ChatBackend, Completion, Conversation, GenParams
from mds.evaluators.base import EvalResult, Evaluator, VideoInput

# Statuses whose parse gives a usable prediction.
USABLE = ("ok", "fallback", "out_of_range", "recommend_only")

COMMON_OPTIONS: dict[str, str] = {
    "backend": "transformers (local weights) or openai (OpenAI-compatible server, e.g. vLLM)",
    "model": "checkpoint: local dir, local-dir:/p, hf-hub:org/repo or hub id (HF cache; offline by default)",
    "adapter": "peft LoRA adapter directory put on the model (transformers backend)",
    "served_model": "model name on the server (openai backend; default: model)",
    "base_url": "server URL, e.g. http://127.0.0.1:8000/v1 (openai backend; env OPENAI_BASE_URL)",
    "api_key_env": "environment variable holding the API key (default OPENAI_API_KEY)",
    "concurrency": "parallel requests (openai backend)",
    "timeout": "request timeout in seconds (openai backend)",
    "max_retries": "retries with exponential backoff on 5xx / 429 / timeouts (openai backend)",
    "video_mode": "openai backend: 'frames' (one image per frame) or 'video_jpeg' (vLLM video data URL)",
    "dtype": "torch dtype name (default: bfloat16 on GPU, float32 on CPU)",
    "device": "cpu, cuda, cuda:1 ... (default: cuda when available)",
    "batch_size": "videos per generate call (transformers backend)",
    "n_samples": "answers drawn per video; the scalar is their mean and the variance the uncertainty",
    "resample": "re-draw a failed parse up to this many times",
    "seed": "random seed of sampling",
    "do_sample": "sample (True) or greedy (False)",
    "temperature": "sampling temperature (None: the checkpoint's generation_config)",
    "top_k": "top-k sampling",
    "top_p": "nucleus sampling",
    "max_new_tokens": "generation length limit per answer",
    "num_frames": "frames per video (uniform); exclusive with fps",
    "fps": "frames per second of video (with min_frames / max_frames caps)",
    "min_frames": "lower cap on the frame count",
    "max_frames": "upper cap on the frame count",
    "short_side": "resize frames to this short side before the processor",
    "min_pixels": "per-frame minimum pixels for the Qwen processor",
    "max_pixels": "per-frame maximum pixels for the Qwen processor",
    "add_vision_id": "chat template adds 'Video 1:' / 'Picture 1:' labels",
}


def nfkc(text: str) -> str:
    """Unicode NFKC (full-width punctuation and digits → ASCII forms) for parsing."""
    return unicodedata.normalize("NFKC", text or "")


class ChatEvaluator(Evaluator):
    """Base class of chat-VLM adapters. Options are listed in ``COMMON_OPTIONS`` + ``extra_options``."""

    extra_options: ClassVar[dict[str, str]] = {}
    prompt_texts: ClassVar[tuple[str, ...]] = ()  # hashed into the version

    def __init__(self, **options: Any) -> None:
        allowed = set(COMMON_OPTIONS) | set(self.extra_options)
        bad = [k for k in options if k not in allowed]
        if bad:
            hints = []
            for k in bad:
                close = difflib.get_close_matches(k, sorted(allowed), n=1)
                hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise EvaluatorError(f"{self.name}: unknown option(s) {', '.join(hints)}")
        if options.get("num_frames") is not None and options.get("fps") is not None:
            raise EvaluatorError(f"{self.name}: give num_frames or fps, not both")
        super().__init__(**options)
        self._backend: ChatBackend | None = None
        self._backend_info: dict[str, Any] | None = None

    # -- options ----------------------------------------------------------------------------------------
    def opt(self, key: str, default: Any = None) -> Any:
        v = self.options.get(key)
        return default if v is None else v

    @property
    def model_id(self) -> str:
        model = self.opt("model") or "unset"
        adapter = self.opt("adapter")
        return f"{model}+{adapter}" if adapter else str(model)

    def version_payload(self) -> dict[str, Any]:
        payload = super().version_payload()
        payload["prompt"] = hashlib.sha256("\x00".join(self.prompt_texts).encode()).hexdigest()[:16]
        return payload

    def gen_params(self, attempt: int = 0) -> GenParams:
        return GenParams(
            do_sample=bool(self.opt("do_sample", True)),
            temperature=self.opt("temperature"),
            top_k=self.opt("top_k"),
            top_p=self.opt("top_p"),
            max_new_tokens=int(self.opt("max_new_tokens", 512)),
            seed=int(self.opt("seed", 0)) + 1000 * attempt,
        )

    def sampling_config(self, **override: Any) -> Any:
        from mds.video.frames import SamplingConfig

        fps = self.opt("fps")
        kw: dict[str, Any] = {
            "num_frames": None if fps is not None else self.opt("num_frames", 8),
            "fps": fps,
            "min_frames": int(self.opt("min_frames", 1)),
            "max_frames": self.opt("max_frames"),
            "short_side": self.opt("short_side"),
            "even": True,  # Qwen temporal patches take frames in pairs
        }
        kw.update(override)
        return SamplingConfig(**kw)

    # -- backend ------------------------------------------------------------------------------------------
    @property
    def backend(self) -> ChatBackend:
        if self._backend is None:
            self._backend = self._make_backend()
        return self._backend

    @backend.setter
    def backend(self, value: ChatBackend) -> None:
        """Inject a ready backend (e.g. a model already loaded in a notebook)."""
        self._backend = value
        self._backend_info = None

    def backend_info(self) -> dict[str, Any]:
        """The backend's description (library versions, the checkpoint's own sampling defaults), cached."""
        if self._backend_info is None:
            try:
                self._backend_info = dict(self.backend.describe())
            except Exception as e:  # a description must never fail a run
                self._backend_info = {"error": str(e)}
        return self._backend_info

    def _make_backend(self) -> ChatBackend:
        from mds.evaluators.backends import create_backend

        kind = self.opt("backend", "transformers")
        model = self.opt("model")
        if kind == "transformers":
            if not model:
                raise EvaluatorError(f"{self.name}: no model given (option model=PATH or --model)")
            return create_backend(
                "transformers",
                model=model,
                adapter=self.opt("adapter"),
                dtype=self.opt("dtype"),
                device=self.opt("device"),
                batch_size=int(self.opt("batch_size", 4)),
                add_vision_id=bool(self.opt("add_vision_id", False)),
                min_pixels=self.opt("min_pixels"),
                max_pixels=self.opt("max_pixels"),
                image_min_pixels=self.opt("min_pixels"),
                image_max_pixels=self.opt("max_pixels"),
            )
        if kind == "openai":
            if self.opt("adapter"):
                raise EvaluatorError(
                    f"{self.name}: the openai backend cannot attach a LoRA adapter; serve it "
                    "(vllm serve ... --enable-lora --lora-modules NAME=PATH) and pass served_model=NAME"
                )
            return create_backend(
                "openai",
                model=self.opt("served_model") or model,
                base_url=self.opt("base_url"),
                api_key_env=self.opt("api_key_env", "OPENAI_API_KEY"),
                concurrency=int(self.opt("concurrency", 8)),
                timeout=float(self.opt("timeout", 600.0)),
                max_retries=int(self.opt("max_retries", 3)),
                video_mode=self.opt("video_mode", "frames"),
            )
        raise EvaluatorError(f"{self.name}: unknown backend {kind!r} (use 'transformers' or 'openai')")

    # -- adapter hooks ----------------------------------------------------------------------------------
    def build_conversation(self, video: VideoInput) -> tuple[Conversation, dict[str, Any]]:
        """The chat for one video and the preprocessing facts to record (``preproc``)."""
        raise NotImplementedError

    def parse(self, raw: str) -> EvalResult:  # pragma: no cover - every adapter overrides
        raise NotImplementedError

    def aggregate(self, samples: list[EvalResult]) -> EvalResult:
        """Reduce several parsed samples of one video to one result (default: mean of ``pred_scalar``)."""
        usable = [s for s in samples if s.parse_status in USABLE and s.pred_scalar is not None]
        if not usable:
            return samples[-1]
        best = usable[0]
        if len(usable) == 1:
            return best
        vals = [float(s.pred_scalar) for s in usable]  # type: ignore[arg-type]
        best.pred_scalar = statistics.fmean(vals)
        best.uncertainty = statistics.pvariance(vals)
        best.parsed = {**best.parsed, "sample_scores": vals}
        return best

    # -- inference ------------------------------------------------------------------------------------------
    def predict(self, videos: Sequence[VideoInput]) -> list[EvalResult]:
        prepared: list[tuple[Conversation, dict[str, Any]] | EvalResult] = []
        for v in videos:
            try:
                prepared.append(self.build_conversation(v))
            except (MdsError, OSError, ValueError) as e:
                prepared.append(self._error_result(v, f"input preparation failed: {e}"))
        todo = [i for i, p in enumerate(prepared) if not isinstance(p, EvalResult)]
        convs = [prepared[i][0] for i in todo]  # type: ignore[index]
        raw = self._generate_with_resample(convs)
        out: list[EvalResult] = []
        by_index = dict(zip(todo, raw))
        for i, v in enumerate(videos):
            p = prepared[i]
            if isinstance(p, EvalResult):
                out.append(p)
                continue
            out.append(self._finish(v, p[1], by_index[i]))
        return out

    def _generate_with_resample(self, convs: list[Conversation]) -> list[list[tuple[Completion, EvalResult]]]:
        n = max(1, int(self.opt("n_samples", 1)))
        results: list[list[tuple[Completion, EvalResult]]] = [[] for _ in convs]
        if not convs:
            return results
        first = self.backend.generate(convs, self.gen_params(0), n=n)
        for i, comps in enumerate(first):
            results[i].extend((c, self._parse_completion(c)) for c in comps)
        for attempt in range(1, int(self.opt("resample", 0)) + 1):
            need = [i for i, rs in enumerate(results) if sum(r.parse_status in USABLE for _, r in rs) < n]
            if not need:
                break
            more = self.backend.generate([convs[i] for i in need], self.gen_params(attempt), n=1)
            for i, comps in zip(need, more):
                results[i].extend((c, self._parse_completion(c)) for c in comps)
        return results

    def _parse_completion(self, c: Completion) -> EvalResult:
        if c.error:
            return EvalResult(
                video_id=None, parse_status="error", raw_text=c.full_text or None, error=c.error
            )
        r = self.parse(c.full_text)
        if r.parse_status == "failed" and c.finish_reason == "length":
            r.parse_status = "truncated"
            r.error = r.error or "generation hit max_new_tokens before an answer"
        return r

    def _finish(
        self, video: VideoInput, preproc: dict[str, Any], samples: list[tuple[Completion, EvalResult]]
    ) -> EvalResult:
        parsed = [r for _, r in samples]
        n = max(1, int(self.opt("n_samples", 1)))
        usable = [r for r in parsed if r.parse_status in USABLE]
        result = self.aggregate(usable[:n] if usable else parsed)
        if len(samples) > 1:
            result.raw_text = "\n\n".join(
                f"=== sample {k + 1} ({r.parse_status}) ===\n{c.full_text}"
                for k, (c, r) in enumerate(samples)
            )
            result.parsed = {**result.parsed, "attempts": [r.parse_status for r in parsed]}
        result.video_id = video.video_id
        result.n_samples = len(samples)
        result.gen_params = self.gen_params(0).as_dict() | {
            "n_samples": n,
            "resample": int(self.opt("resample", 0)),
            "backend": self.backend_info(),
        }
        result.preproc = preproc
        result.model_id = self.model_id
        if result.parse_status in USABLE and result.pred_scalar is None:
            result.pred_scalar = self.to_scalar(result)
        return result

    def _error_result(self, video: VideoInput, message: str) -> EvalResult:
        return EvalResult(
            video_id=video.video_id,
            parse_status="error",
            error=message,
            parsed={"error": message},
            model_id=self.model_id,
            n_samples=0,
        )
