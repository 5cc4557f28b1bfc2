"""CLI: ``mds embed``, ``mds select``, ``mds evaluate``, ``mds import-scores``, ``mds import-embeddings``.

Thin wrappers over :mod:`selection` and :mod:`mds.metrics`; heavy imports stay inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mds.cli._options import JsonOpt, console, db_url, print_json, settings


def _parse_meta(items: list[str]) -> dict[str, object]:
    from mds.errors import SelectionError

    out: dict[str, object] = {}
    for it in items:
        if "=" not in it:
            raise SelectionError(f"--where {it!r}: expected KEY=VALUE (VALUE may be a,b,c for any of)")
        k, v = it.split("=", 1)
        out[k.strip()] = v.split(",") if "," in v else v
    return out


def embed(
    encoder: Annotated[str, typer.Option("--encoder", help="open_clip model name, e.g. ViT-B-32.")] = "ViT-B-32",
    pretrained: Annotated[str | None, typer.Option(
        "--pretrained", help="Weights: a file, a directory, hf-hub:REPO, an open_clip tag (local cache), or 'none' (random init)."
    )] = None,
    frames: Annotated[int, typer.Option("--frames", help="Frames per video, spread uniformly.")] = 8,
    fps: Annotated[float | None, typer.Option("--fps", help="Sample at this rate instead of --frames.")] = None,
    max_frames: Annotated[int | None, typer.Option("--max-frames", help="Cap with --fps.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Frames per forward pass (across videos).")] = 64,
    split: Annotated[str | None, typer.Option("--split", help="Only this split (default: all videos).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Retry videos that failed before.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Embed every video that has no vectors yet for this encoder (incremental, resumable)."""
    from mds.video.frames import SamplingConfig
    from selection.embeddings.embed import embed_pool
    from selection.embeddings.encoder import EncoderSpec

    url = db_url()
    sampling = SamplingConfig(num_frames=None, fps=fps, max_frames=max_frames) if fps else SamplingConfig(num_frames=frames)
    spec = EncoderSpec(model=encoder, pretrained=pretrained, sampling=sampling)
    rep = embed_pool(url, data_dir=settings().data_dir, spec=spec, split=split, batch_size=batch_size, device=device,
                     retry_failed=retry_failed, progress=not as_json)
    if as_json:
        print_json(rep.as_dict())
        return
    c = console()
    rate = rep.embedded / rep.seconds if rep.seconds else 0.0
    c.print(f"encoder [bold]{rep.encoder}[/]: embedded {rep.embedded}, failed {rep.failed}, already done {rep.skipped} "
            f"({rep.frames} frames, {rep.seconds:.1f} s, {rate:.2f} videos/s)")
    for vid, err in list(rep.errors.items())[:10]:
        c.print(f"  [red]video {vid}[/]: {err}")


def select_cmd(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="mds, mds-pooled, random, difficulty, diversity, or a plug-in.")] = "mds",
    budget: Annotated[str, typer.Option("--budget", "-k", help="Count (64) or percentage of the candidates (5%).")] = "5%",
    lambda_: Annotated[float | None, typer.Option("--lambda", help="Diversity weight (default per encoder: 0.25 CLIP, 0.075 SigLIP).")] = None,
    encoder: Annotated[str | None, typer.Option("--encoder", help="Encoder key of stored embeddings (default: the only one).")] = None,
    predictor: Annotated[str | None, typer.Option("--predictor", help="Difficulty predictor label (default: the only one).")] = None,
    split: Annotated[str, typer.Option("--split", help="Candidate split.")] = "pool",
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help="Only these datasets/domains (repeatable).")] = None,
    where: Annotated[list[str] | None, typer.Option("--where", help="Metadata predicate KEY=VALUE (repeatable).")] = None,
    include_labelled: Annotated[bool, typer.Option("--include-labelled", help="Allow already labelled videos as candidates.")] = False,
    include_in_flight: Annotated[bool, typer.Option("--include-in-flight", help="Allow videos picked in unfinished rounds.")] = False,
    count_labelled: Annotated[bool, typer.Option("--count-labelled", help="Count labelled videos as already selected in the diversity term.")] = False,
    prefilter: Annotated[int | None, typer.Option("--prefilter", help="Approximate: only the top-M by difficulty.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (recorded).")] = 0,
    round_number: Annotated[int | None, typer.Option("--round", help="Round number (default: next).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Round name.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Select a batch and record it as a new round (status 'selected')."""
    from selection.rounds import CandidateFilter, select_round

    url = db_url()
    flt = CandidateFilter(split=split, datasets=dataset or None, meta=_parse_meta(where or []),
                          exclude_labelled=not include_labelled, exclude_in_flight=not include_in_flight)
    options = {"prefilter_m": prefilter} if prefilter else {}
    rnd = select_round(url, strategy=strategy, budget=budget, lambda_=lambda_, encoder=encoder, predictor=predictor,
                       seed=seed, filters=flt, count_labelled=count_labelled, round_number=round_number, name=name,
                       options=options, data_dir=settings().data_dir)
    from sqlalchemy import select

    from mds.db.engine import session_scope
    from mds.db.models import Video

    with session_scope(url) as s:
        names = dict(s.execute(select(Video.id, Video.name).where(Video.id.in_([x.video_id for x in rnd.selections]))).all())
    rows = [{"rank": x.pick_order + 1, "video_id": x.video_id, "video": names.get(x.video_id), "difficulty": x.difficulty,
             "diversity": x.diversity, "total": x.total, **x.extra} for x in rnd.selections]
    if as_json:
        print_json({"round": rnd.number, "round_id": rnd.id, "strategy": rnd.strategy, "budget": rnd.budget,
                    "lambda": rnd.lambda_, "seed": rnd.seed, "encoder": rnd.encoder,
                    "predictor": rnd.config.get("predictor"), "config_hash": rnd.config_hash,
                    "candidates": rnd.steps.get("select", {}).get("candidates"), "picks": rows})
        return
    from rich.table import Table

    def f(v: object) -> str:
        return "—" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

    t = Table(title=f"round {rnd.number}: {rnd.strategy}, budget {rnd.budget}"
              + (f", λ={rnd.lambda_:g}" if rnd.lambda_ is not None else ""))
    for col in ("rank", "video", "difficulty", "diversity", "total"):
        t.add_column(col, justify="left" if col == "video" else "right")
    for r in rows:
        t.add_row(str(r["rank"]), str(r["video"]), f(r["difficulty"]), f(r["diversity"]), f(r["total"]))
    c = console()
    c.print(t)
    cand = rnd.steps.get("select", {}).get("candidates", {})
    c.print(f"candidates: {cand.get('candidates')} ({', '.join(f'{k} {v}' for k, v in cand.items() if k != 'candidates')})")


def evaluate(
    predictions: Annotated[Path, typer.Argument(help="Prediction file: 'name value' lines, JSON, CSV or Parquet.")],
    labels: Annotated[Path, typer.Argument(help="Label (MOS) file in the same formats.")],
    subset: Annotated[Path | None, typer.Option("--subset", help="Only the names listed in this file (first column).")] = None,
    no_fit: Annotated[bool, typer.Option("--no-fit", help="Skip the 4-parameter logistic fit.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """SRCC / KRCC / PLCC / RMSE of predictions against MOS (PLCC and RMSE after the 4PL fit).

    With --subset (e.g. a selection) it also prints the subset's mean absolute error as a
    multiple of the error over every labelled name (labels on the predictions' scale).
    """
    from mds.metrics import error_ratio_files, evaluate_files, read_scores

    pred, lab = read_scores(predictions), read_scores(labels)  # read once for both figures
    res, counts = evaluate_files(pred, lab, subset=subset, fit=not no_fit)
    ratio = error_ratio_files(pred, lab, subset) if subset is not None else None
    if as_json:
        print_json({**res.as_dict(), **counts, **(ratio.as_dict() if ratio else {})})
        return
    c = console()
    c.print(f"n={res.n}  SRCC {res.srcc:.4f}  KRCC {res.krcc:.4f}  PLCC {res.plcc:.4f}  RMSE {res.rmse:.4f}"
            + ("" if res.fitted else "  (no 4PL fit)"))
    if ratio:
        c.print(f"mean |prediction - label|: subset {ratio.subset_error:.4f}, all {ratio.n_all} labelled "
                f"{ratio.all_error:.4f} -> {ratio.ratio:.2f}x")
    if counts["missing_predictions"] or counts["unlabelled"]:
        c.print(f"[yellow]{counts['missing_predictions']} names without a prediction, "
                f"{counts['unlabelled']} predictions without a label[/]")


def import_scores_cmd(
    file: Annotated[Path, typer.Argument(help="Scores keyed by video name/path (txt, JSON, CSV, Parquet).")],
    predictor: Annotated[str, typer.Option("--predictor", help="Label; stored as import:<label>.")],
    as_json: JsonOpt = False,
) -> None:
    """Import difficulty scores computed elsewhere (e.g. sdr_130.json)."""
    from selection.imports import import_scores

    rep = import_scores(db_url(), file, predictor=predictor)
    _report(rep, as_json)


def import_embeddings_cmd(
    file: Annotated[Path, typer.Argument(help="Vectors keyed by video name: .npz, .npy (+ --names), .parquet, .json, or a folder of .npz.")],
    encoder: Annotated[str, typer.Option("--encoder", help="Encoder key to store them under.")],
    names: Annotated[Path | None, typer.Option("--names", help="Names file for a .npy (one per row).")] = None,
    normalise: Annotated[bool, typer.Option("--normalise", help="L2-normalise every vector.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import embeddings computed elsewhere (per-frame or one vector per video)."""
    from selection.imports import import_embeddings

    rep = import_embeddings(db_url(), file, encoder=encoder, data_dir=settings().data_dir, names=names,
                            normalise=normalise)
    _report(rep, as_json)


def _report(rep, as_json: bool) -> None:
    if as_json:
        print_json(rep.as_dict())
        return
    c = console()
    c.print(f"{rep.label}: imported {rep.imported}")
    if rep.unknown:
        c.print(f"[yellow]{len(rep.unknown)} unknown names[/] (e.g. {', '.join(rep.unknown[:5])})")
    if rep.ambiguous:
        c.print(f"[yellow]{len(rep.ambiguous)} ambiguous names[/] (e.g. {', '.join(rep.ambiguous[:5])})")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("embed")(embed)
    app.command("select")(select_cmd)
    app.command("evaluate")(evaluate)
    app.command("import-scores")(import_scores_cmd)
    app.command("import-embeddings")(import_embeddings_cmd)
