"""``mds failure train|score|ls``: the failure predictor g."""

from __future__ import annotations

from typing import Annotated

import typer

from mds.cli._options import JsonOpt, print_json

failure_app = typer.Typer(help="Failure predictor g: which videos the base model gets wrong.", no_args_is_help=True)


@failure_app.command("train")
def train(
    evaluator: Annotated[str, typer.Option("--evaluator", "-e", envvar="MDS_EVALUATOR", help="Base evaluator.")] = "cpu-default",
    features: Annotated[str | None, typer.Option("--features", help="Train a ranking head on stored vectors of this encoder (or 'quality') instead of LoRA on the base.")] = None,
    features_file: Annotated[str | None, typer.Option("--features-file", help="Imported feature vectors keyed by video name (npz/npy/parquet/json).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Checkpoint name (default g-<evaluator>).")] = None,
    evaluator_version: Annotated[str | None, typer.Option("--evaluator-version", help="Use the predictions of this evaluator version.")] = None,
    epochs: Annotated[int, typer.Option("--epochs")] = 60,
    lr: Annotated[float, typer.Option("--lr")] = 5e-3,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Micro-batch size (pairs are formed inside it).")] = 16,
    lora_r: Annotated[int, typer.Option("--lora-r")] = 8,
    val_frac: Annotated[float, typer.Option("--val-frac", help="Validation share for early stopping.")] = 0.2,
    patience: Annotated[int, typer.Option("--patience")] = 12,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Train a new version even if an identical one exists.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train g on the base model's errors on the labelled source set (resumes an interrupted run)."""
    from mds.cli._options import db_url, err_console, settings
    from mds.cli._training import INTERRUPT_HINT, epoch_progress
    from mds.learning.failure import train_failure_predictor

    url = db_url()
    src = f"file:{features_file}" if features_file else features
    try:
        with epoch_progress("training g", enabled=not as_json) as on_epoch:
            rep = train_failure_predictor(
                url, evaluator=evaluator, name=name, features=src, evaluator_version=evaluator_version,
                data_dir=settings().data_dir, epochs=epochs, lr=lr, batch_size=batch_size, lora_r=lora_r,
                lora_alpha=2 * lora_r, val_frac=val_frac, patience=patience, seed=seed, force=force,
                on_epoch=on_epoch,
            )
    except KeyboardInterrupt:
        err_console().print(INTERRUPT_HINT)
        raise
    if as_json:
        print_json(rep.as_dict())
        return
    from mds.cli._options import console

    c = console()
    verb = "reused" if rep.reused else ("resumed and trained" if rep.resumed else "trained")
    c.print(f"{verb} [bold]{rep.predictor}[/] (checkpoint {rep.checkpoint_id}) on {rep.n_train} videos, "
            f"validated on {rep.n_val}")
    if rep.val_spearman is not None:
        c.print(f"validation Spearman(g, error) = {rep.val_spearman:.3f}")
    c.print(f"tie fraction of g on the training videos: {rep.tie_fraction:.3f}")


@failure_app.command("score")
def score(
    predictor: Annotated[str | None, typer.Option("--predictor", "-p", help="Checkpoint id, name or name@version (default: newest).")] = None,
    evaluator: Annotated[str, typer.Option("--evaluator", "-e", envvar="MDS_EVALUATOR")] = "cpu-default",
    split: Annotated[str, typer.Option("--split", help="pool, source, test or all.")] = "pool",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 256,
    limit: Annotated[int | None, typer.Option("--limit", help="Score at most this many new videos.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Store g(x) for every video of the split not yet scored by this predictor version (resumable)."""
    from mds.cli._options import db_url, settings
    from mds.learning.failure import score_failure_predictor

    url = db_url()
    from mds.cli._training import count_progress
    from mds.db.engine import make_sessionmaker
    from mds.db.models import Video

    with make_sessionmaker(url)() as s:
        q = s.query(Video)
        total = q.count() if split == "all" else q.filter(Video.split == split).count()
    with count_progress("scoring", total, enabled=not as_json) as advance:
        rep = score_failure_predictor(url, predictor, evaluator=evaluator, split=None if split == "all" else split,
                                      batch_size=batch_size, limit=limit, data_dir=settings().data_dir,
                                      on_batch=advance)
    if as_json:
        print_json(rep.as_dict())
        return
    from mds.cli._options import console

    console().print(
        f"{rep.predictor}: scored {rep.scored}, already scored {rep.skipped}, failed {rep.failed} "
        f"(of {rep.candidates}); tie fraction {rep.tie_fraction if rep.tie_fraction is not None else float('nan'):.3f}"
    )


@failure_app.command("ls")
def ls(as_json: JsonOpt = False) -> None:
    """List failure predictors with their parent base checkpoint and validation figures."""
    from mds.cli.finetune import list_checkpoints

    list_checkpoints(kind="failure_predictor", as_json=as_json)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(failure_app, name="failure")
