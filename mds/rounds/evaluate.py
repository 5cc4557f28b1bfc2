"""A round's evaluation: test-split SRCC/PLCC (after the 4-parameter fit) of the base and fine-tuned
models per dataset, and how hard the picks were for the base model."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select

from mds.db.engine import session_scope
from mds.db.models import Label, Selection, Video
from mds.rounds import backends


def _test_labels(db_url: str) -> dict[str, dict[int, float]]:
    """``dataset → {video_id: MOS}`` of the test split (any label source, manifest first)."""
    out: dict[str, dict[int, float]] = {}
    with session_scope(db_url) as s:
        rows = s.execute(select(Video.id, Video.dataset, Label.mos, Label.source).join(Label, Label.video_id == Video.id)
                         .where(Video.split == "test", Label.mos.is_not(None))).all()
    for vid, ds, mos, src in sorted(rows, key=lambda r: r[3] != "manifest"):
        out.setdefault(ds, {}).setdefault(vid, float(mos))
    return out


def _pool_datasets(db_url: str) -> list[str]:
    with session_scope(db_url) as s:
        return sorted(set(s.scalars(select(Video.dataset).where(Video.split == "pool").distinct())))


def correlations_by_dataset(pred: dict[int, float], labels: dict[str, dict[int, float]]) -> dict[str, Any]:
    from mds.metrics import correlations

    out: dict[str, Any] = {}
    for ds, lab in labels.items():
        ids = [v for v in lab if v in pred]
        if len(ids) < 3:
            continue
        c = correlations([pred[i] for i in ids], [lab[i] for i in ids], fit=len(ids) > 4)
        out[ds] = {"srcc": c.srcc, "plcc": c.plcc, "krcc": c.krcc, "rmse": c.rmse, "n": c.n}
    return out


def evaluate_round(ctx: Any) -> dict[str, Any]:
    """Metrics stored in ``Round.metrics`` (``base`` / ``finetuned`` per dataset, ``target_test``, picks)."""
    r = ctx.round()
    labels = _test_labels(ctx.db_url)
    target = _pool_datasets(ctx.db_url)
    metrics: dict[str, Any] = {}
    base_scores: dict[int, float] = {}
    for key, ck in (("base", r.base_checkpoint_id), ("finetuned", r.finetuned_checkpoint_id)):
        if ck is None:
            continue
        rep = backends.score(ctx.db_url, ctx.cfg.evaluator, ck, data_dir=ctx.data_dir, round_id=ctx.round_id,
                             splits=("test",) if key == "finetuned" else ("test", "pool"))
        pred = backends.predictions(ctx.db_url, rep["evaluator"], rep["evaluator_version"])
        by_ds = correlations_by_dataset(pred, labels)
        m: dict[str, Any] = {"evaluator_version": rep["evaluator_version"], "by_dataset": by_ds}
        tgt = [by_ds[d] for d in target if d in by_ds]
        if len(tgt) == 1:
            m["target_test"] = tgt[0]
        metrics[key] = m
        if key == "base":
            base_scores = pred
    if "base" in metrics and "finetuned" in metrics and "target_test" in metrics["finetuned"]:
        metrics["srcc_gain"] = metrics["finetuned"]["target_test"]["srcc"] - metrics["base"].get(
            "target_test", {}).get("srcc", np.nan)
    metrics["picks"] = _pick_difficulty(ctx, base_scores)
    return metrics


def _pick_difficulty(ctx: Any, base: dict[int, float]) -> dict[str, Any]:
    """Base-model error on the picks (their new labels) and, with an oracle, against the whole pool."""
    with session_scope(ctx.db_url) as s:
        picks = list(s.scalars(select(Selection.video_id).where(Selection.round_id == ctx.round_id)))
        labs = dict(s.execute(select(Label.video_id, Label.mos).where(Label.round_id == ctx.round_id,
                                                                      Label.video_id.in_(picks))).all())
        names = dict(s.execute(select(Video.id, Video.name).where(Video.split == "pool")).all())
    out: dict[str, Any] = {"n": len(picks)}
    err = [abs(base[v] - labs[v]) for v in picks if v in base and labs.get(v) is not None]
    if err:
        out["mean_error_vs_labels"] = float(np.mean(err))
    if ctx.cfg.oracle:
        from mds.rounds.oracle import load_oracle

        oracle, _ = load_oracle(ctx.cfg.oracle)
        pool_err = [abs(base[v] - oracle[n]) for v, n in names.items() if v in base and n in oracle]
        sel_err = [abs(base[v] - oracle[names[v]]) for v in picks if v in base and names.get(v) in oracle]
        if pool_err and sel_err:
            out.update(mean_error_picks=float(np.mean(sel_err)), mean_error_pool=float(np.mean(pool_err)),
                       error_ratio=float(np.mean(sel_err) / max(np.mean(pool_err), 1e-12)))
    return out
