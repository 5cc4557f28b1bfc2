"""Inference backends for chat VLM evaluators.

Both backends take the same neutral conversation format (see
:mod:`mds.evaluators.backends.messages`) and return :class:`Completion` lists:

* :mod:`~mds.evaluators.backends.transformers_vlm`: local Qwen2.5-VL / Qwen3-VL
  through transformers (``load_vlm``, ``build_inputs``, :class:`TransformersChatBackend`);
* :mod:`~mds.evaluators.backends.openai_chat`: an OpenAI-compatible chat API such as a
  vLLM server (:class:`OpenAIChatBackend`).

Nothing heavy is imported here.
"""

from mds.evaluators.backends.messages import ChatBackend, Completion, GenParams

__all__ = ["ChatBackend", "Completion", "GenParams", "create_backend"]


def create_backend(kind: str, **options) -> ChatBackend:  # noqa: ANN003
    """``kind`` is ``transformers`` or ``openai``; options go to the backend's constructor."""
    from mds.errors import EvaluatorError

    if kind == "transformers":
        from mds.evaluators.backends.transformers_vlm import TransformersChatBackend

        return TransformersChatBackend(**options)
    if kind == "openai":
        from mds.evaluators.backends.openai_chat import OpenAIChatBackend

        return OpenAIChatBackend(**options)
    raise EvaluatorError(f"unknown backend {kind!r} (use 'transformers' or 'openai')")
