"""What the learners read from the pool: labels (normalised per dataset), base-model errors, inputs.

* MOS are min-max normalised to the model's 1-5 scale per dataset, over every
  scalar label of that dataset (method.md §2.1).
* A video with labels from several sources uses the first of
  :data:`LABEL_PRIORITY` (then the newest).
* The failure predictor's supervision is each labelled video's error computed
  with the evaluator's own :meth:`~mds.evaluators.base.Evaluator.error` on its
  stored prediction. It must be *out-of-sample*: a video labelled in a round
  uses the prediction of the base model that was current when it was selected
  (stored by that round's ``score`` step, before any fine-tuning on its label),
  see :func:`selection_time_versions`.
* Inputs: the CPU default's quality features (cached) or, for ``--features
  ENCODER``, pooled vectors from the embedding store or an imported feature file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from mds.db.models import Label, Prediction, Video
from mds.errors import TrainingError

LABEL_PRIORITY = ("manifest", "oracle", "labelstudio", "simulated")
TARGET_RANGE = (1.0, 5.0)
QUALITY_FEATURES = "quality"


@dataclass
class LabelSet:
    """Scalar labels of some videos: raw MOS, normalised MOS (1-5) and dataset."""

    video_ids: list[int]
    datasets: list[str]
    mos: np.ndarray
    mos_norm: np.ndarray
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    round_ids: list[int] = field(default_factory=list)
    video_rounds: list[int | None] = field(default_factory=list)  # per video: the round of its label

    def __len__(self) -> int:
        return len(self.video_ids)


def dataset_ranges(session: Session, datasets: Iterable[str] | None = None) -> dict[str, tuple[float, float]]:
    """Observed (min, max) of every scalar MOS per dataset (all splits, all sources)."""
    q = (
        select(Video.dataset, Label.mos)
        .join(Label, Label.video_id == Video.id)
        .where(Label.mos.is_not(None), Label.kind == "scalar")
    )
    if datasets is not None:
        q = q.where(Video.dataset.in_(list(datasets)))
    out: dict[str, list[float]] = {}
    for ds, mos in session.execute(q):
        out.setdefault(ds, []).append(float(mos))
    return {ds: (min(v), max(v)) for ds, v in out.items()}


def normalise(value: float, rng: tuple[float, float]) -> float:
    lo, hi = rng
    t0, t1 = TARGET_RANGE
    return (value - lo) / (hi - lo) * (t1 - t0) + t0 if hi > lo else (t0 + t1) / 2


def _priority(source: str) -> int:
    return LABEL_PRIORITY.index(source) if source in LABEL_PRIORITY else len(LABEL_PRIORITY)


def load_labels(
    session: Session,
    *,
    splits: Sequence[str] | None = ("source",),
    round_ids: Sequence[int] | None = None,
    video_ids: Sequence[int] | None = None,
) -> LabelSet:
    """Scalar labels of videos in ``splits`` plus (optionally) labels gathered in ``round_ids``.

    ``round_ids`` adds labels whose ``round_id`` is listed, whatever the video's split,
    except the test split (test labels never train).
    """
    q = select(Label, Video).join(Video, Video.id == Label.video_id).where(
        Label.mos.is_not(None), Label.kind == "scalar"
    )
    rows = list(session.execute(q))
    chosen: dict[int, tuple[Label, Video]] = {}
    for lab, vid in rows:
        if video_ids is not None and vid.id not in video_ids:
            continue
        in_split = splits is None or vid.split in splits
        in_round = round_ids is not None and lab.round_id in round_ids and vid.split != "test"
        if not (in_split or in_round):
            continue
        cur = chosen.get(vid.id)
        key = (_priority(lab.source), -(lab.id or 0))
        if cur is None or key < (_priority(cur[0].source), -(cur[0].id or 0)):
            chosen[vid.id] = (lab, vid)
    ids = sorted(chosen)
    datasets = [chosen[i][1].dataset for i in ids]
    mos = np.array([float(chosen[i][0].mos) for i in ids], dtype=np.float64)
    ranges = dataset_ranges(session, set(datasets))
    norm = np.array([normalise(m, ranges[d]) for m, d in zip(mos, datasets, strict=True)], dtype=np.float64)
    rids = sorted({int(chosen[i][0].round_id) for i in ids if chosen[i][0].round_id is not None})
    vr = [chosen[i][0].round_id for i in ids]
    return LabelSet(ids, datasets, mos, norm, ranges, rids, vr)


@dataclass
class Supervision:
    """Per-video errors of a base evaluator on labelled videos (the failure predictor's targets)."""

    evaluator: str
    evaluator_version: str
    video_ids: list[int]
    datasets: list[str]
    predictions: np.ndarray
    mos_norm: np.ndarray
    errors: np.ndarray
    skipped: int = 0  # labelled videos without a usable prediction
    video_versions: list[str] = field(default_factory=list)  # the evaluator version each error comes from


def pick_version(session: Session, evaluator: str, video_ids: Sequence[int]) -> str:
    """The evaluator version with the most usable predictions on ``video_ids`` (newest on ties)."""
    counts: dict[str, list[int]] = {}
    q = select(Prediction.evaluator_version, Prediction.id).where(
        Prediction.evaluator == evaluator, Prediction.variant == "", Prediction.score.is_not(None),
        Prediction.video_id.in_(list(video_ids)),
    )
    for ver, pid in session.execute(q):
        c = counts.setdefault(ver, [0, 0])
        c[0] += 1
        c[1] = max(c[1], pid)
    if not counts:
        raise TrainingError(f"no stored predictions of {evaluator!r} on the labelled videos: run `mds score` first")
    return max(counts, key=lambda v: (counts[v][0], counts[v][1]))


class ImportedScalar:
    """Error rule for predictions imported from files (``import:<name>``), whose model mds cannot run.

    Their scale is unknown, so per dataset the predictions are mapped onto the
    normalised MOS with the 4-parameter logistic of the evaluation protocol
    (method.md §6.1) and the error is ``|mapped - MOS|``.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def errors(self, pred: np.ndarray, mos: np.ndarray, datasets: Sequence[str]) -> np.ndarray:
        from mds.metrics import fit_logistic4

        out = np.empty(len(pred), dtype=np.float64)
        ds = np.asarray(datasets)
        for d in set(ds.tolist()):
            m = ds == d
            fitted, _ = fit_logistic4(pred[m].astype(np.float64), mos[m].astype(np.float64))
            out[m] = np.abs(fitted - mos[m])
        return out


def error_rule(name: str) -> Any:
    """The registered evaluator (its own ``error()``), or :class:`ImportedScalar` for imported predictions."""
    from mds.errors import EvaluatorError
    from mds.evaluators import create_evaluator

    try:
        return create_evaluator(name)
    except EvaluatorError:
        if name.startswith("import:"):
            return ImportedScalar(name)
        raise


def selection_time_versions(session: Session, evaluator: str, labels: LabelSet) -> dict[int, str]:
    """``video_id -> evaluator version`` of the base model in use when each round-labelled video was
    selected: the version its round's ``score`` step stored predictions with (before that round's
    fine-tuning saw the label). Videos whose round has no such record are left out."""
    from mds.db.models import Round

    by_round: dict[int, str | None] = {}
    out: dict[int, str] = {}
    for vid, rid in zip(labels.video_ids, labels.video_rounds or [None] * len(labels), strict=True):
        if rid is None:
            continue
        if rid not in by_round:
            rnd = session.get(Round, rid)
            ver = None
            if rnd is not None:
                score = (rnd.steps or {}).get("score") or {}
                if score.get("evaluator") in (None, evaluator):
                    ver = score.get("evaluator_version")
                if ver is None and rnd.base_checkpoint_id is not None:
                    ver = session.scalar(select(Prediction.evaluator_version).where(
                        Prediction.evaluator == evaluator, Prediction.checkpoint_id == rnd.base_checkpoint_id,
                        Prediction.variant == "").limit(1))
            by_round[rid] = ver
        if by_round[rid] is not None:
            out[vid] = by_round[rid]
    return out


def supervision(
    session: Session,
    evaluator: Any,
    labels: LabelSet,
    *,
    evaluator_version: str | None = None,
    versions: dict[int, str] | None = None,
) -> Supervision:
    """Errors of ``evaluator`` (an :class:`Evaluator` or :class:`ImportedScalar`) on ``labels``.

    ``versions`` overrides the evaluator version per video (e.g. the selection-time
    versions of round-labelled videos, :func:`selection_time_versions`); the others use
    ``evaluator_version`` (default: the version with most predictions).
    """
    from mds.evaluators.base import EvalResult

    name = evaluator.name
    versions = versions or {}
    version = evaluator_version or pick_version(session, name, labels.video_ids)
    wanted = {vid: versions.get(vid, version) for vid in labels.video_ids}
    preds = {
        p.video_id: p
        for p in session.scalars(
            select(Prediction).where(Prediction.evaluator == name,
                                     Prediction.evaluator_version.in_(sorted(set(wanted.values()))),
                                     Prediction.variant == "", Prediction.video_id.in_(labels.video_ids))
        )
        if wanted[p.video_id] == p.evaluator_version
    }
    ids, ds, pr, mn, er, vv = [], [], [], [], [], []
    skipped = 0
    for vid, d, m in zip(labels.video_ids, labels.datasets, labels.mos_norm, strict=True):
        p = preds.get(vid)
        if p is None or p.score is None:
            skipped += 1
            continue
        if isinstance(evaluator, ImportedScalar):
            e = 0.0  # computed below, per dataset, once all predictions are known
        else:
            e = evaluator.error(EvalResult(vid, p.parse_status, pred_scalar=p.score, parsed=dict(p.parsed or {})),
                                float(m))
        if e is None:
            skipped += 1
            continue
        ids.append(vid)
        ds.append(d)
        pr.append(float(p.score))
        mn.append(float(m))
        er.append(float(e))
        vv.append(p.evaluator_version)
    if len(ids) < 4:
        raise TrainingError(f"only {len(ids)} labelled videos have a usable prediction of {name} ({version})")
    errors = np.array(er)
    if isinstance(evaluator, ImportedScalar):
        errors = evaluator.errors(np.array(pr), np.array(mn), ds)
    return Supervision(name, version, ids, ds, np.array(pr), np.array(mn), errors, skipped, vv)


# --- inputs ---------------------------------------------------------------------------------------


def videos_by_id(session: Session, ids: Sequence[int]) -> list[Video]:
    rows = {v.id: v for v in session.scalars(select(Video).where(Video.id.in_(list(ids))))}
    return [rows[i] for i in ids if i in rows]


def quality_inputs(
    session: Session,
    data_dir: str | Path,
    video_ids: Sequence[int],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Cached quality features for ``video_ids`` -> ``(X, ok_ids, failures)``."""
    from mds.quality.store import FeatureStore, features_for_videos

    store = FeatureStore.for_data_dir(data_dir)
    return features_for_videos(videos_by_id(session, video_ids), store, on_progress=on_progress)


def encoder_key_for(session: Session, encoder: str) -> str:
    """The stored encoder key matching ``encoder`` exactly or as a prefix (must be unique)."""
    from mds.db.models import EmbeddingRecord

    keys = sorted(set(session.scalars(select(EmbeddingRecord.encoder).where(EmbeddingRecord.status == "ok"))))
    if encoder in keys:
        return encoder
    hits = [k for k in keys if k.startswith(encoder)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise TrainingError(f"no stored embeddings for encoder {encoder!r} (have: {', '.join(keys) or 'none'})")
    raise TrainingError(f"encoder {encoder!r} is ambiguous: {', '.join(hits)}")


def embedding_inputs(
    session: Session, data_dir: str | Path, encoder: str, video_ids: Sequence[int]
) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Pooled vectors of ``encoder`` from the embedding store -> ``(X, ok_ids, missing)``."""
    from mds.db.models import EmbeddingRecord

    key = encoder_key_for(session, encoder)
    have = set(session.scalars(select(EmbeddingRecord.video_id).where(
        EmbeddingRecord.encoder == key, EmbeddingRecord.status == "ok", EmbeddingRecord.video_id.in_(list(video_ids)))))
    ok = [i for i in video_ids if i in have]
    missing = {i: f"no {key} embedding" for i in video_ids if i not in have}
    if not ok:
        return np.zeros((0, 0), np.float32), [], missing
    from selection.embeddings.store import EmbeddingStore

    X = EmbeddingStore(data_dir, key).pooled(ok)
    return np.asarray(X, dtype=np.float32), ok, missing


def file_inputs(session: Session, path: str | Path, video_ids: Sequence[int]) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Imported feature vectors keyed by video name or path (npz/npy+names/parquet/JSON)."""
    from selection.imports import read_embeddings

    vecs = read_embeddings(path)
    by_name: dict[str, np.ndarray] = {}
    for k, v in vecs.items():
        arr = np.asarray(v, dtype=np.float32)
        by_name[str(k)] = arr.mean(axis=0) if arr.ndim == 2 else arr
    rows, ok, missing = [], [], {}
    for v in videos_by_id(session, video_ids):
        cands = [v.name, Path(v.uri).name, v.uri, Path(v.name).stem]
        x = next((by_name[c] for c in cands if c in by_name), None)
        if x is None:
            missing[v.id] = "not in the feature file"
            continue
        rows.append(x)
        ok.append(v.id)
    X = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
    return X, ok, missing


def inputs_for(
    session: Session,
    data_dir: str | Path,
    source: str,
    video_ids: Sequence[int],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Dispatch on the input source: ``quality``, ``file:<path>`` or an embedding encoder key."""
    if source == QUALITY_FEATURES:
        return quality_inputs(session, data_dir, video_ids, on_progress=on_progress)
    if source.startswith("file:"):
        return file_inputs(session, source[5:], video_ids)
    return embedding_inputs(session, data_dir, source, video_ids)
