"""Failure predictor g, database level: train on the base model's errors, save, register, score the pool.

``train_failure_predictor`` reads the labelled source set and the base evaluator's
stored predictions, computes each video's error with the evaluator's own
``error()``, trains g (LoRA on the frozen base + head, or a ranking head on
feature vectors with ``features=ENCODER``), saves it in peft's format and
registers a ``failure_predictor`` checkpoint whose parent is the base checkpoint.
An interrupted run resumes from its training state and reuses its row.

``score_failure_predictor`` writes ``DifficultyScore`` rows (predictor
``"name@version"``) for videos that have none yet, in committed batches, so it
resumes after a crash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from mds.errors import TrainingError

FAILURE_CONFIG = "failure.json"
HEAD_FILE = "head.safetensors"
EpochFn = Callable[[int, int, dict[str, float]], None]


def tie_fraction(scores: np.ndarray, decimals: int = 6) -> float:
    """Share of scores that equal another score (after rounding): 0 = all distinct."""
    s = np.round(np.asarray(scores, dtype=np.float64), decimals)
    if len(s) == 0:
        return 0.0
    _, counts = np.unique(s, return_counts=True)
    return float(counts[counts > 1].sum() / len(s))


def save_failure_model(g: Any, directory: str | Path, *, base_dir: str | Path | None, extra: dict[str, Any]) -> None:
    """Write g: peft adapter + head (``lora``) or a feature MLP (``features``), plus ``failure.json``."""
    import os

    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg = {**g.config, **extra, "mode": g.mode}
    if g.mode == "lora":
        g.net.backbone.save_pretrained(str(d))
        save_file({k: v.detach().contiguous() for k, v in g.net.head.state_dict().items()}, str(d / HEAD_FILE))
        cfg["base_dir"] = os.path.relpath(Path(base_dir).resolve(), d.resolve()) if base_dir else None
    else:
        g.net.save(d)
    (d / FAILURE_CONFIG).write_text(json.dumps(cfg, indent=2, default=str), encoding="utf-8")


def load_failure_model(directory: str | Path) -> Any:
    """Load a saved g (CPU quality path or feature head) as a :class:`FailureModel`."""
    from mds.learning.arrays import FailureHead, FailureModel, _quality_hidden
    from mds.quality.loading import load_quality_model
    from mds.quality.model import QualityNet

    d = Path(directory)
    f = d / FAILURE_CONFIG
    if not f.is_file():
        raise TrainingError(f"{d}: not a failure predictor (no {FAILURE_CONFIG})")
    cfg = json.loads(f.read_text(encoding="utf-8"))
    if cfg["mode"] == "features":
        return FailureModel("features", QualityNet.load(d), cfg)
    if cfg["mode"] != "lora":
        raise TrainingError(f"{d}: failure predictor mode {cfg['mode']!r} is not loadable here")
    from safetensors.torch import load_file

    from mds._compat import ensure_torchvision

    ensure_torchvision()
    from peft import PeftModel

    base = load_quality_model((d / cfg["base_dir"]).resolve())
    backbone = PeftModel.from_pretrained(base, str(d))
    net = FailureHead(backbone, base.hidden_dim, _quality_hidden)
    net.head.load_state_dict(load_file(str(d / HEAD_FILE)))
    net.eval()
    return FailureModel("lora", net, cfg)


@dataclass
class FailureTrainReport:
    checkpoint_id: int
    predictor: str
    resumed: bool
    reused: bool
    n_train: int
    n_val: int
    val_spearman: float | None
    tie_fraction: float
    epochs_run: int
    evaluator_version: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ensure_cpu_predictions(db_url: str, base_ck: Any, data_dir: Path, video_ids: list[int]) -> str:
    """Score the labelled videos with the cpu-default base checkpoint where predictions are missing."""
    from mds.evaluators.cpu_default import CpuDefaultEvaluator
    from mds.scoring import score_pool

    ev = CpuDefaultEvaluator(checkpoint=base_ck.path, data_dir=str(data_dir))
    score_pool(db_url, ev, split=None, video_ids=video_ids, batch_size=64)
    return ev.version


def train_failure_predictor(
    db_url: str,
    *,
    evaluator: str = "cpu-default",
    name: str | None = None,
    features: str | None = None,
    evaluator_version: str | None = None,
    data_dir: str | Path | None = None,
    splits: tuple[str, ...] = ("source",),
    include_rounds: bool = True,
    epochs: int = 60,
    lr: float = 5e-3,
    batch_size: int = 16,
    lora_r: int = 8,
    lora_alpha: int = 16,
    val_frac: float = 0.2,
    patience: int = 12,
    seed: int = 0,
    force: bool = False,
    selection_time_errors: bool = True,
    on_epoch: EpochFn | None = None,
    on_step: Callable[[int], None] | None = None,
) -> FailureTrainReport:
    """Train (or resume, or reuse) g for ``evaluator`` and register it. See the module docstring.

    Supervision: the labelled ``splits`` plus (``include_rounds``) every label gathered in
    rounds, so that from round 2 on g also learns where the base fails on the target pool.
    The errors are out-of-sample: a round-labelled video's error is that of the base model
    that was current when it was selected (``selection_time_errors``; its prediction stored
    by the round's ``score`` step), not of a model already fine-tuned on its label.
    """
    from mds.config import load_settings
    from mds.db.engine import make_sessionmaker
    from mds.learning import checkpoints as ck
    from mds.learning.arrays import fit_failure_predictor, predict_difficulty
    from mds.learning.data import (
        QUALITY_FEATURES,
        error_rule,
        inputs_for,
        load_labels,
        selection_time_versions,
        supervision,
    )
    from mds.quality.loading import load_quality_model

    data_dir = Path(data_dir) if data_dir else load_settings(db_url=db_url).data_dir
    mode = "features" if features else "lora"
    if mode == "lora" and evaluator != "cpu-default":
        raise TrainingError(
            f"LoRA failure predictors of {evaluator!r} train through mds.learning.vlm; "
            "from the CLI use --features ENCODER (a ranking head on stored embeddings)"
        )
    source = features or QUALITY_FEATURES
    name = name or (f"g-{evaluator}" if mode == "lora" else f"g-{evaluator}-{features.replace(':', '_')[:40]}")
    Session = make_sessionmaker(db_url)
    with Session() as s:
        base_ck = ck.current_base_checkpoint(s, evaluator)
        if mode == "lora" and base_ck is None:
            raise TrainingError(f"no promoted base checkpoint of {evaluator!r}: run `mds train-base` first")
        labels = load_labels(s, splits=splits, round_ids=_all_rounds(s) if include_rounds else None)
        s.expunge_all()
    if evaluator == "cpu-default" and base_ck is not None and evaluator_version is None:
        evaluator_version = _ensure_cpu_predictions(db_url, base_ck, data_dir, labels.video_ids)
    with Session() as s:
        if len(labels) < 8:
            raise TrainingError(f"only {len(labels)} labelled videos in {', '.join(splits)}: need at least 8")
        ev = error_rule(evaluator)
        at_selection = selection_time_versions(s, evaluator, labels) if selection_time_errors else {}
        sup = supervision(s, ev, labels, evaluator_version=evaluator_version, versions=at_selection)
        n_sel_time = sum(1 for v in sup.video_ids if v in at_selection)
        X, ok_ids, failures = inputs_for(s, data_dir, source, sup.video_ids)
        pos = {v: i for i, v in enumerate(sup.video_ids)}
        keep = [pos[v] for v in ok_ids]
        if len(keep) < 8:
            raise TrainingError(f"only {len(keep)} labelled videos have {source} inputs")
        errors = sup.errors[keep]
        groups = np.array([sup.datasets[i] for i in keep])
        hp = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "lora_r": lora_r, "lora_alpha": lora_alpha,
              "val_frac": val_frac, "patience": patience, "seed": seed}
        digest_src = json.dumps({"hp": hp, "mode": mode, "input": source, "base": base_ck.id if base_ck else None,
                                 "version": sup.evaluator_version, "ids": ok_ids,
                                 "err": np.round(errors, 6).tolist()}, sort_keys=True)
        digest = hashlib.sha256(digest_src.encode()).hexdigest()[:16]
        row = None if force else ck.find_training(s, "failure_predictor", name, digest)
        if row is not None and row.status == "ready":
            return FailureTrainReport(row.id, ck.predictor_key(row), False, True, row.metrics.get("n_train", 0),
                                      row.metrics.get("n_val", 0), row.metrics.get("val_spearman"),
                                      row.metrics.get("tie_fraction", 0.0), row.metrics.get("epochs_run", 0),
                                      sup.evaluator_version, dict(row.metrics))
        config = {"digest": digest, "mode": mode, "input": source, "hyperparameters": hp,
                  "evaluator_version": sup.evaluator_version, "objective": "thurstone-fidelity (ties -> 1)",
                  "n_labelled": len(labels), "n_used": len(keep), "datasets": sorted(set(groups.tolist())),
                  "label_rounds": labels.round_ids,
                  "errors": {"rounds": "selection-time" if selection_time_errors else "current",
                             "n_selection_time": n_sel_time,
                             "versions": sorted(set(sup.video_versions))}}
        if row is None:
            row = ck.create_checkpoint(s, data_dir, kind="failure_predictor", name=name, evaluator=evaluator,
                                       parent_id=base_ck.id if base_ck else None, config=config,
                                       round_ids=labels.round_ids)
        base = load_quality_model(base_ck.path) if mode == "lora" else None
        state_dir = Path(row.path) / "train_state"
        g = fit_failure_predictor(base, X, errors, groups, mode=mode, epochs=epochs, lr=lr, batch_size=batch_size,
                                  lora_r=lora_r, lora_alpha=lora_alpha, val_frac=val_frac, patience=patience,
                                  seed=seed, state_dir=state_dir, on_epoch=on_epoch, on_step=on_step)
        save_failure_model(g, row.path, base_dir=base_ck.path if mode == "lora" else None,
                           extra={"input": source, "evaluator": evaluator, "checkpoint_name": name,
                                  "version": row.version})
        scores = predict_difficulty(g, X)
        res = g.result
        metrics = {"val_spearman": res.best_val, "best_epoch": res.best_epoch, "epochs_run": res.epochs_run,
                   "steps": res.steps, "n_train": g.config["n_train"], "n_val": g.config["n_val"],
                   "train_spearman": _spearman(scores, errors), "tie_fraction": tie_fraction(scores),
                   "score_min": float(scores.min()), "score_max": float(scores.max()),
                   "score_std": float(scores.std()), "skipped_no_prediction": sup.skipped,
                   "skipped_no_input": len(failures), "history": res.history}
        ck.finish_checkpoint(s, row, metrics=metrics)
        return FailureTrainReport(row.id, ck.predictor_key(row), res.resumed, False, g.config["n_train"],
                                  g.config["n_val"], res.best_val, metrics["tie_fraction"], res.epochs_run,
                                  sup.evaluator_version, {k: v for k, v in metrics.items() if k != "history"})


def _all_rounds(session: Any) -> list[int]:
    from mds.db.models import Round

    return list(session.scalars(select(Round.id)))


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    from mds.learning.trainer import spearman

    v = spearman(a, b)
    return None if np.isnan(v) else v


@dataclass
class FailureScoreReport:
    predictor: str
    checkpoint_id: int
    candidates: int = 0
    skipped: int = 0  # already scored by this predictor version
    scored: int = 0
    failed: int = 0
    tie_fraction: float | None = None
    failures: dict[int, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failures"] = {str(k): v for k, v in list(self.failures.items())[:20]}
        return d


def score_failure_predictor(
    db_url: str,
    predictor: str | int | None = None,
    *,
    evaluator: str = "cpu-default",
    split: str | None = "pool",
    video_ids: list[int] | None = None,
    batch_size: int = 256,
    limit: int | None = None,
    data_dir: str | Path | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> FailureScoreReport:
    """Store g(x) for the videos of ``split`` that this predictor version has not scored yet."""
    from mds.config import load_settings
    from mds.db.engine import make_sessionmaker
    from mds.db.models import DifficultyScore, Video
    from mds.learning import checkpoints as ck
    from mds.learning.arrays import predict_difficulty
    from mds.learning.data import inputs_for

    data_dir = Path(data_dir) if data_dir else load_settings(db_url=db_url).data_dir
    Session = make_sessionmaker(db_url)
    with Session() as s:
        if predictor is None:
            row = s.scalars(select(ck.Checkpoint).where(
                ck.Checkpoint.kind == "failure_predictor", ck.Checkpoint.evaluator == evaluator,
                ck.Checkpoint.status == "ready").order_by(ck.Checkpoint.id.desc()).limit(1)).first()
            if row is None:
                raise TrainingError(f"no trained failure predictor for {evaluator!r}: run `mds failure train`")
        else:
            row = ck.resolve_checkpoint(s, predictor, kind="failure_predictor")
        if row.status != "ready":
            raise TrainingError(f"failure predictor {ck.predictor_key(row)} is {row.status}, not ready")
        key, ck_id, path = ck.predictor_key(row), row.id, row.path
        g = load_failure_model(path)
        source = g.config.get("input", "quality")
        q = select(Video.id).order_by(Video.id)
        if split is not None:
            q = q.where(Video.split == split)
        if video_ids is not None:
            q = q.where(Video.id.in_(video_ids))
        ids = list(s.scalars(q))
        done = set(s.scalars(select(DifficultyScore.video_id).where(DifficultyScore.predictor == key)))
        todo = [i for i in ids if i not in done]
        rep = FailureScoreReport(key, ck_id, candidates=len(ids), skipped=len(ids) - len(todo))
        if limit is not None:
            todo = todo[: max(0, limit)]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            X, ok, failures = inputs_for(s, data_dir, source, chunk)
            rep.failures.update(failures)
            rep.failed += len(failures)
            if ok:
                scores = predict_difficulty(g, X)
                for vid, sc in zip(ok, scores, strict=True):
                    s.add(DifficultyScore(video_id=vid, predictor=key, checkpoint_id=ck_id, score=float(sc),
                                          extra={"input": source}))
                rep.scored += len(ok)
            s.commit()
            if on_batch is not None:
                on_batch(len(chunk))
        allscores = list(s.scalars(select(DifficultyScore.score).where(DifficultyScore.predictor == key)))
        rep.tie_fraction = tie_fraction(np.array(allscores)) if allscores else None
    return rep
