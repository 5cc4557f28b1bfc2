"""Base evaluators (the VQA model f) as plug-ins. ``create_evaluator(name, **options)``."""

from mds.evaluators.base import EvalResult, Evaluator, LabelKind, LabelSpec, VideoInput

__all__ = ["EvalResult", "Evaluator", "LabelKind", "LabelSpec", "VideoInput", "create_evaluator", "list_evaluators"]


def create_evaluator(name: str, **options):  # noqa: ANN201
    from mds.evaluators.registry import create_evaluator as _create

    return _create(name, **options)


def list_evaluators():  # noqa: ANN201
    from mds.evaluators.registry import list_evaluators as _list

    return _list()
