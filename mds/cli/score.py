"""`mds score`: score the pool with a base evaluator (a thin layer over :mod:`mds.scoring`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mds.cli._options import JsonOpt, console, db_url, err_console, print_json

EvaluatorNameOpt = Annotated[
    str | None, typer.Option("--evaluator", "-e", envvar="MDS_EVALUATOR", help="Evaluator name (see --list).")
]


def _parse_options(items: list[str]) -> dict[str, Any]:
    import json

    from mds.errors import EvaluatorError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise EvaluatorError(f"--option expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _list(json_: bool) -> None:
    from mds.evaluators import list_evaluators

    specs = list_evaluators()
    if json_:
        print_json([s.as_dict() for s in specs])
        return
    from rich.table import Table

    t = Table(title="evaluators")
    for col in ("name", "label", "range", "higher better", "modality", "backend", "model", "source"):
        t.add_column(col)
    for s in specs:
        rng = "" if s.label.score_range is None else f"{s.label.score_range[0]:g}–{s.label.score_range[1]:g}"
        kind = s.label.kind.value + (f" {'/'.join(s.label.dimensions)}" if s.label.dimensions else "")
        t.add_row(
            s.name,
            kind,
            rng,
            str(s.label.higher_is_better),
            s.modality,
            str(s.defaults.get("backend", "")),
            str(s.defaults.get("model", "") or ""),
            s.source,
        )
    console().print(t)


def score(
    evaluator: EvaluatorNameOpt = None,
    split: Annotated[str, typer.Option("--split", "-s", help="source | pool | test | all.")] = "pool",
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Only this dataset/domain.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Checkpoint: local dir, hf-hub:ID or hub id.")
    ] = None,
    adapter: Annotated[str | None, typer.Option("--adapter", help="peft LoRA adapter directory.")] = None,
    checkpoint: Annotated[
        int | None, typer.Option("--checkpoint", help="Checkpoint id (checkpoints table).")
    ] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="transformers | openai.")] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", envvar="OPENAI_BASE_URL", help="OpenAI-compatible server URL.")
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", help="Videos (or pairs) per batch and commit.")
    ] = 8,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", help="Score at most this many new videos.")
    ] = None,
    anchors: Annotated[
        int, typer.Option("--anchors", help="Pairwise evaluators: anchor videos per video.")
    ] = 3,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the anchor choice.")] = 0,
    option: Annotated[
        list[str],
        typer.Option("--option", "-o", help="Evaluator option KEY=VALUE (JSON values), repeatable."),
    ] = [],  # noqa: B006
    list_: Annotated[bool, typer.Option("--list", help="List the registered evaluators and exit.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Score videos with a base evaluator; stores predictions, skips what this version already scored."""
    if list_:
        _list(json_)
        return
    from mds.errors import EvaluatorError

    if not evaluator:
        raise EvaluatorError("give --evaluator NAME (mds score --list shows them)")
    opts = _parse_options(option)
    for key, value in (("model", model), ("adapter", adapter), ("backend", backend), ("base_url", base_url)):
        if value is not None:
            opts[key] = value
    opts.setdefault("batch_size", batch_size)
    url = db_url()
    from mds.scoring import score_pool

    kwargs: dict[str, Any] = dict(
        options=opts,
        split=None if split == "all" else split,
        dataset=dataset,
        limit=limit,
        batch_size=batch_size,
        checkpoint_id=checkpoint,
        anchors=anchors,
        seed=seed,
    )
    if quiet or json_:
        report = score_pool(url, evaluator, **kwargs)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("[bold]score[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console(),
        ) as bar:
            task = bar.add_task(evaluator, total=None)

            def on_progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = score_pool(url, evaluator, progress=on_progress, **kwargs)
    if json_:
        print_json(report.as_dict())
        return
    c = console()
    c.print(
        f"[bold]{report.evaluator_version}[/]: {report.scored} scored "
        f"({report.ok} ok, {report.parse_failed} parse failed, {report.errors} errors), "
        f"{report.skipped} already scored, {report.candidates} candidates, {report.elapsed_s:.1f}s"
        + (f"; {report.pairs} pairs vs anchors {report.anchors}" if report.anchors else "")
    )


def register(app: typer.Typer) -> None:
    """Add ``mds score`` to the root app."""
    app.command("score")(score)
