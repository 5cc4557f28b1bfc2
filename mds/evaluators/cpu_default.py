"""``cpu-default``: the base model that runs without downloaded weights.

Pooled no-reference quality features (:mod:`mds.quality.features`, cached per
video in the feature store) -> a small torch MLP (:mod:`mds.quality.model`) ->
MOS on a 1-5 scale. Train it with ``mds train-base`` (or
:func:`mds.learning.finetune.train_base_model`); fine-tuned versions are LoRA
adapters merged along their lineage.

Options: ``checkpoint`` (a model directory; default: the promoted one recorded in
``<data_dir>/checkpoints/cpu-default/CURRENT``), ``data_dir`` (feature cache and
checkpoints; default from the settings), ``num_frames`` (frames sampled per video).
The version includes the checkpoint's content hash, so a new model re-scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mds.errors import EvaluatorError
from mds.evaluators.base import EvalResult, Evaluator, LabelKind, LabelSpec, VideoInput

NAME = "cpu-default"


class CpuDefaultEvaluator(Evaluator):
    name: ClassVar[str] = NAME
    label: ClassVar[LabelSpec] = LabelSpec(LabelKind.SCALAR, (1.0, 5.0), True)
    description: ClassVar[str] = "CPU default base model: a small torch model over per-frame quality features."
    runtime_options: ClassVar[frozenset[str]] = Evaluator.runtime_options | {"data_dir"}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._model = None
        self._ckpt: str | None = None
        self._hash: str | None = None

    # -- identity -----------------------------------------------------------------
    def _data_dir(self) -> Path:
        if self.options.get("data_dir"):
            return Path(self.options["data_dir"])
        from mds.config import load_settings

        return load_settings().data_dir

    def checkpoint_path(self) -> str:
        if self._ckpt is None:
            ck = self.options.get("checkpoint") or self.options.get("model")
            if not ck:
                from mds.learning.checkpoints import read_current

                ck = read_current(self._data_dir(), NAME)
            if not ck:
                raise EvaluatorError(
                    "cpu-default has no trained model yet: run `mds train-base` (or pass checkpoint=DIR)"
                )
            if not Path(ck).is_dir():
                raise EvaluatorError(f"cpu-default: checkpoint directory not found: {ck}")
            self._ckpt = str(Path(ck).resolve())
        return self._ckpt

    @property
    def model_id(self) -> str:
        if self._hash is None:
            from mds.learning.checkpoints import dir_hash
            from mds.quality.loading import read_lineage

            base, adapters = read_lineage(self.checkpoint_path())
            import hashlib

            h = hashlib.sha256()
            for d in (base, *adapters):
                h.update(dir_hash(d).encode())
            self._hash = h.hexdigest()[:16]
        return f"{NAME}@{self._hash}"

    def version_payload(self) -> dict[str, Any]:
        payload = super().version_payload()
        opts = dict(payload["options"])
        opts.pop("checkpoint", None)  # identified by content (model_id), not by where it lies
        opts.pop("model", None)
        from mds.quality.features import extractor_key

        payload["options"] = opts
        payload["features"] = extractor_key(self.sampling())
        return payload

    def options_for_checkpoint(self, path: str, kind: str, config: dict[str, Any]) -> dict[str, Any]:
        return {"checkpoint": path}

    # -- inference ----------------------------------------------------------------
    def sampling(self):
        from mds.quality.features import DEFAULT_SAMPLING
        from mds.video.frames import SamplingConfig

        n = self.options.get("num_frames")
        return SamplingConfig(num_frames=int(n)) if n else DEFAULT_SAMPLING

    def model(self):
        if self._model is None:
            from mds.quality.loading import load_quality_model

            self._model = load_quality_model(self.checkpoint_path())
        return self._model

    def features(self, videos: Sequence[VideoInput]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        """Feature rows for ``videos`` (cached by video id) -> ``(X, ok positions, failures by position)``."""
        from types import SimpleNamespace

        from mds.quality.store import FeatureStore, features_for_videos

        store = FeatureStore.for_data_dir(self._data_dir(), self.sampling())
        # Cached vectors are stamped with the file path; inputs without a video id are not cached.
        rows = [SimpleNamespace(id=v.video_id if v.video_id is not None else -(i + 1), uri=v.path, content_hash=None)
                for i, v in enumerate(videos)]
        use_store = store if all(v.video_id is not None for v in videos) else None
        X, ok_ids, failures = features_for_videos(rows, use_store, sampling=self.sampling())
        pos = {r.id: i for i, r in enumerate(rows)}
        return X, [pos[i] for i in ok_ids], {pos[i]: msg for i, msg in failures.items()}

    def predict(self, videos: Sequence[VideoInput]) -> list[EvalResult]:
        from mds.learning.arrays import predict_quality

        videos = list(videos)
        if not videos:
            return []
        model = self.model()
        X, ok, failures = self.features(videos)
        scores = predict_quality(model, X) if len(X) else np.zeros(0)
        out: list[EvalResult | None] = [None] * len(videos)
        mid = self.model_id
        for j, p in enumerate(ok):
            s = float(scores[j])
            out[p] = EvalResult(videos[p].video_id, "ok", pred_scalar=s, pred_label=s, parsed={"score": s},
                                model_id=mid, preproc={"sampling": self.sampling().as_dict()})
        for p, msg in failures.items():
            out[p] = EvalResult(videos[p].video_id, "error", error=msg, model_id=mid)
        return [r for r in out if r is not None]

    # -- supervision --------------------------------------------------------------
    def error(self, result: EvalResult, label: Any) -> float | None:
        """``|prediction - MOS|`` with the MOS already min-max normalised to 1-5 for its dataset."""
        if result.pred_scalar is None or label is None:
            return None
        return abs(float(result.pred_scalar) - float(label))
