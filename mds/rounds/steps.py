"""The steps of a round. Each takes a :class:`RoundContext`, does its work, and returns what it
records in ``Round.steps[step]``; the runner (:mod:`mds.rounds.api`) skips steps already done.

Every step is safe to re-run after a crash part-way through it: the calls it makes are
themselves idempotent (scoring and embedding skip what is stored, selection rows are
written in one transaction, Label Studio pushes reconcile by task key, ratings are
upserted per (round, video, rater), labels are recomputed, a fine-tune reuses the
checkpoint already recorded for the round).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mds.config import Settings
from mds.db.engine import session_scope
from mds.db.models import LabelingTask, LabelProject, Round, Selection, Video
from mds.errors import ConfigError, LabelingError
from mds.rounds import backends
from mds.rounds.config import RoundConfig

SIM_SOURCE = "simulated"
LS_SOURCE = "labelstudio"


@dataclass
class RoundContext:
    db_url: str
    settings: Settings
    round_id: int
    number: int
    cfg: RoundConfig

    def round(self) -> Round:
        with session_scope(self.db_url) as s:
            r = s.get(Round, self.round_id)
            _ = list(r.selections)
            s.expunge_all()
            return r

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def needs_difficulty(self) -> bool:
        return self.cfg.strategy in ("mds", "difficulty")

    def needs_features(self) -> bool:
        return self.cfg.strategy in ("mds", "diversity")


def label_backend(cfg: RoundConfig, settings: Settings) -> str:
    """``simulated`` or ``labelstudio`` for this round (``auto``: Label Studio when one is configured)."""
    if cfg.labels != "auto":
        return cfg.labels
    import os

    configured = bool(settings.section("labelstudio").get("url") or os.environ.get("MDS_LABEL_STUDIO_URL"))
    return "labelstudio" if configured else "simulated"


# --- start ----------------------------------------------------------------------------------------


def step_base(ctx: RoundContext) -> dict[str, Any]:
    """Resolve the current base model (train the CPU default on the source split if there is none)."""
    ck, trained = backends.ensure_base(ctx.db_url, ctx.cfg.evaluator, data_dir=ctx.data_dir, seed=ctx.cfg.seed)
    return {"checkpoint_id": ck, "trained": trained, "_columns": {"base_checkpoint_id": ck}}


def step_score(ctx: RoundContext) -> dict[str, Any]:
    """Score pool, source and test videos with the base model (stored predictions are kept)."""
    r = ctx.round()
    rep = backends.score(ctx.db_url, ctx.cfg.evaluator, r.base_checkpoint_id, data_dir=ctx.data_dir,
                         round_id=ctx.round_id)
    return rep


def step_difficulty(ctx: RoundContext) -> dict[str, Any]:
    """Train (or reuse) the failure predictor g for the base model and score the pool with it."""
    if not ctx.needs_difficulty():
        return {"skipped": f"strategy {ctx.cfg.strategy!r} uses no difficulty"}
    r = ctx.round()
    pred_id, key, info = backends.difficulty(ctx.db_url, ctx.cfg.evaluator, r.base_checkpoint_id,
                                             data_dir=ctx.data_dir, seed=ctx.cfg.seed, options=ctx.cfg.failure)
    return {"predictor": key, "predictor_checkpoint_id": pred_id, **info,
            "_columns": {"predictor_checkpoint_id": pred_id}}


def step_embed(ctx: RoundContext) -> dict[str, Any]:
    """CLIP frame embeddings of every pool video that has none for the round's encoder."""
    if not ctx.needs_features():
        return {"skipped": f"strategy {ctx.cfg.strategy!r} uses no embeddings"}
    from selection.embeddings.embed import embed_pool

    rep = embed_pool(ctx.db_url, data_dir=ctx.data_dir, spec=encoder_spec(ctx.cfg), split="pool", device="cpu",
                     progress=False)
    return {"encoder": rep.encoder, "embedded": rep.embedded, "skipped_existing": rep.skipped, "failed": rep.failed,
            "_columns": {"encoder": rep.encoder}}


def encoder_spec(cfg: RoundConfig):
    from mds.video.frames import SamplingConfig
    from selection.embeddings.encoder import EncoderSpec

    return EncoderSpec(model=cfg.clip_model, pretrained=cfg.clip_pretrained or "none",
                       sampling=SamplingConfig(num_frames=cfg.clip_frames))


def step_select(ctx: RoundContext) -> dict[str, Any]:
    """Select the batch and write its Selection rows (one transaction; nothing to redo if they exist)."""
    from selection.api import make_strategy, resolve_budget
    from selection.rounds import CandidateFilter, config_hash, load_problem

    r = ctx.round()
    if r.selections:
        return {"k": len(r.selections), "reused": True}
    cfg = ctx.cfg
    encoder = r.encoder if ctx.needs_features() else None
    predictor = (r.steps.get("difficulty") or {}).get("predictor") if ctx.needs_difficulty() else None
    strat = make_strategy(cfg.strategy, lambda_=cfg.lambda_, encoder=encoder)
    problem, info = load_problem(ctx.db_url, strategy=strat, filters=CandidateFilter(split="pool"), encoder=encoder,
                                 predictor=predictor, count_labelled=cfg.count_labelled and ctx.needs_features(),
                                 data_dir=ctx.data_dir)
    k = resolve_budget(cfg.budget, problem.n + _labelled_in_pool(ctx.db_url)) if cfg.budget.endswith("%") else \
        resolve_budget(cfg.budget, problem.n)
    k = min(k, problem.n)
    result = strat.select(problem, k, seed=cfg.seed + ctx.number)
    with session_scope(ctx.db_url) as s:
        rnd = s.get(Round, ctx.round_id)
        if s.scalars(select(Selection.id).where(Selection.round_id == ctx.round_id).limit(1)).first() is not None:
            return {"k": k, "reused": True}
        for order, p in enumerate(result.picks):
            s.add(Selection(round_id=ctx.round_id, video_id=p.video_id, pick_order=order, difficulty=p.difficulty,
                            diversity=p.diversity, total=p.total, extra=p.extra))
        snap = dict(rnd.config or {})
        snap.update({"strategy_params": result.params, "budget": k, "predictor": info["predictor"],
                     "encoder": info["encoder"], "filters": info["filters"]})
        rnd.config = snap
        rnd.config_hash = config_hash(snap)
        rnd.budget = k
        rnd.lambda_ = getattr(strat, "lambda_", None)
    return {"k": k, "candidates": info["counts"], "strategy_params": result.params}


def _labelled_in_pool(db_url: str) -> int:
    """Pool videos already labelled: a percentage budget refers to the whole pool, not what is left."""
    from sqlalchemy import func

    from mds.db.models import Label

    with session_scope(db_url) as s:
        return int(s.scalar(select(func.count(func.distinct(Label.video_id))).join(Video, Video.id == Label.video_id)
                            .where(Video.split == "pool")) or 0)


def step_push(ctx: RoundContext) -> dict[str, Any]:
    """Hand the batch to annotators: Label Studio when configured, else the simulated panel."""
    backend = label_backend(ctx.cfg, ctx.settings)
    if backend == "labelstudio":
        from labeling.push import PushOptions, push_round
        from labeling.settings import ls_settings

        client = backends.ls_client(ctx.settings)
        opts = PushOptions(ratings_per_video=ctx.cfg.ratings_per_video,
                           document_root=ls_settings(ctx.settings).document_root)
        with session_scope(ctx.db_url) as s:
            res = push_round(s, client, ctx.number, opts)
        return {"backend": backend, **{k: v for k, v in res.as_dict().items() if k != "storages"}}
    with session_scope(ctx.db_url) as s:
        proj = s.scalars(select(LabelProject).where(LabelProject.backend == "simulated",
                                                    LabelProject.external_id == f"round-{ctx.number}")).first()
        if proj is None:
            proj = LabelProject(backend="simulated", base_url="", external_id=f"round-{ctx.number}",
                                title=f"mds round {ctx.number} (simulated annotators)", label_kind="scalar",
                                settings={"ratings_per_video": ctx.cfg.ratings_per_video})
            s.add(proj)
            s.flush()
        have = set(s.scalars(select(LabelingTask.video_id).where(LabelingTask.round_id == ctx.round_id,
                                                                 LabelingTask.project_id == proj.id)))
        sels = s.scalars(select(Selection).where(Selection.round_id == ctx.round_id).order_by(Selection.pick_order))
        added = 0
        for sel in sels:
            if sel.video_id in have:
                continue
            s.add(LabelingTask(round_id=ctx.round_id, video_id=sel.video_id, project_id=proj.id,
                               external_task_id=f"sim-{ctx.number}-{sel.video_id}", status="pushed",
                               ratings_wanted=ctx.cfg.ratings_per_video, extra={"pick_order": sel.pick_order}))
            added += 1
    return {"backend": backend, "tasks_added": added, "tasks_existing": len(have)}


# --- finish ---------------------------------------------------------------------------------------


def _oracle(ctx: RoundContext) -> tuple[dict[str, float], Any]:
    """Hidden true MOS by video name and the rater panel, for simulated annotators."""
    from mds.rounds.oracle import load_oracle

    if not ctx.cfg.oracle:
        raise ConfigError("simulated annotators need an oracle: pass --oracle DEMO_POOL_DIR (or use Label Studio)")
    return load_oracle(ctx.cfg.oracle)


def step_pull(ctx: RoundContext) -> dict[str, Any]:
    """Collect the ratings: the simulated panel answers (locally or through Label Studio), then pull."""
    backend = (ctx.round().steps.get("push") or {}).get("backend") or label_backend(ctx.cfg, ctx.settings)
    if backend == "labelstudio":
        from labeling.pull import pull

        client = backends.ls_client(ctx.settings)
        answered = 0
        if ctx.cfg.simulate_raters:
            oracle, panel = _oracle(ctx)
            answered = backends.answer_in_label_studio(ctx.db_url, client, ctx.round_id, oracle, panel)
        with session_scope(ctx.db_url) as s:
            res = pull(s, client, round_number=ctx.number)
        info = {"backend": backend, "simulated_answers": answered, **_as_info(res)}
    else:
        from labeling.aggregate import record_ratings

        oracle, panel = _oracle(ctx)
        n = 0
        with session_scope(ctx.db_url) as s:
            tasks = list(s.scalars(select(LabelingTask).where(LabelingTask.round_id == ctx.round_id)))
            ratings = []
            for t in tasks:
                v = s.get(Video, t.video_id)
                if v.name not in oracle:
                    raise LabelingError(f"video {v.name} is not in the oracle")
                for rater, score in panel.rate(v.name, oracle[v.name], t.ratings_wanted):
                    ratings.append((t.video_id, rater, score))
                t.ratings_done = t.ratings_wanted
                t.status = "labelled"
            record_ratings(s, ctx.round_id, ratings, source=SIM_SOURCE, recompute=False)
            n = len(ratings)
        info = {"backend": backend, "ratings": n}
    with session_scope(ctx.db_url) as s:
        tasks = list(s.scalars(select(LabelingTask).where(LabelingTask.round_id == ctx.round_id)))
        missing = sum(1 for t in tasks if t.ratings_done < t.ratings_wanted)
    if missing:
        raise LabelingError(f"round {ctx.number}: {missing} of {len(tasks)} videos still need ratings; "
                            "run `mds round finish` again when the annotators are done")
    return info


def _as_info(res: Any) -> dict[str, Any]:
    d = res.as_dict() if hasattr(res, "as_dict") else dict(getattr(res, "__dict__", {}))
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool)) or v is None}


def step_aggregate(ctx: RoundContext) -> dict[str, Any]:
    """Ratings → MOS labels of the round's videos (rater screening as configured in labeling)."""
    from labeling.aggregate import recompute_labels

    backend = (ctx.round().steps.get("push") or {}).get("backend", "simulated")
    source = LS_SOURCE if backend == "labelstudio" else SIM_SOURCE
    with session_scope(ctx.db_url) as s:
        vids = list(s.scalars(select(Selection.video_id).where(Selection.round_id == ctx.round_id)))
        labels = recompute_labels(s, vids, source=source, round_id=ctx.round_id)
        excluded = sorted({a for lab in labels for a in (lab.value or {}).get("excluded", {})})
        n = len(labels)
    return {"labels": n, "source": source, "excluded_raters": excluded}


def step_finetune(ctx: RoundContext) -> dict[str, Any]:
    """Active fine-tuning on the source labels plus every round's labels; promote when configured."""
    r = ctx.round()
    if r.finetuned_checkpoint_id:
        return {"checkpoint_id": r.finetuned_checkpoint_id, "reused": True}
    ck, info = backends.finetune(ctx.db_url, ctx.round_id, ctx.cfg.evaluator, data_dir=ctx.data_dir,
                                 seed=ctx.cfg.seed, promote=ctx.cfg.promote, options=ctx.cfg.finetune)
    return {"checkpoint_id": ck, **info, "_columns": {"finetuned_checkpoint_id": ck}}


def step_evaluate(ctx: RoundContext) -> dict[str, Any]:
    """Test-split SRCC/PLCC of the base and fine-tuned models, per dataset; difficulty of the picks."""
    from mds.rounds.evaluate import evaluate_round

    metrics = evaluate_round(ctx)
    return {"_metrics": metrics, "test": metrics.get("finetuned", {})}


def step_report(ctx: RoundContext) -> dict[str, Any]:
    """An HTML report of all rounds so far (``<data_dir>/reports/round-N.html``)."""
    from mds.rounds.report import write_rounds_report

    path = write_rounds_report(ctx.db_url, ctx.data_dir / "reports" / f"round-{ctx.number}.html",
                               data_dir=ctx.data_dir, highlight=ctx.number)
    return {"path": str(path)}


STEP_FUNCTIONS = {
    "base": "step_base", "score": "step_score", "difficulty": "step_difficulty", "embed": "step_embed",
    "select": "step_select", "push": "step_push", "pull": "step_pull", "aggregate": "step_aggregate",
    "finetune": "step_finetune", "evaluate": "step_evaluate", "report": "step_report",
}
