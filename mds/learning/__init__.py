"""The two learning steps of the loop: the failure predictor g and active fine-tuning of f.

Array-level functions (``train_base``, ``fit_failure_predictor``, ``predict_difficulty``,
``finetune_base``) return in-memory models for simulations and notebooks; the
DB-level functions in :mod:`mds.learning.failure` and :mod:`mds.learning.finetune`
are thin wrappers that read labels and predictions, save checkpoints in peft's
format and register them with their lineage.
"""

from mds.learning.arrays import (
    FailureModel,
    finetune_base,
    fit_failure_predictor,
    minmax_normalise,
    predict_difficulty,
    predict_quality,
    train_base,
)
from mds.learning.losses import fidelity_loss

__all__ = [
    "FailureModel",
    "fidelity_loss",
    "finetune_base",
    "fit_failure_predictor",
    "minmax_normalise",
    "predict_difficulty",
    "predict_quality",
    "train_base",
]
