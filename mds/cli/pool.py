"""`mds pool add|import|ls|show|stats|rm|errors`: a thin layer over :mod:`mds.pool`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mds.cli._options import JsonOpt, console, db_url, err_console, print_json

pool_app = typer.Typer(help="The video pool: ingest, list, inspect, remove.", no_args_is_help=True)

DatasetOpt = Annotated[
    str | None,
    typer.Option("--dataset", "-d", help="Dataset/domain (default 'default' for new videos; applied to known ones when given)."),
]
SplitOpt = Annotated[
    str | None,
    typer.Option("--split", "-s", help="source | pool | test (default 'pool' for new videos; applied to known ones when given)."),
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Exit 1 if any entry fails (what was ingested stays).")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", "-j", help="Hashing/probing threads.")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="Entries per transaction.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
MAX_ERRORS_SHOWN = 20


def _parse_meta(items: list[str]) -> dict[str, Any]:
    import json

    from mds.errors import PoolError

    meta: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PoolError(f"--meta expects KEY=VALUE, got {item!r}")
        try:
            meta[key.strip()] = json.loads(value)
        except ValueError:
            meta[key.strip()] = value
    return meta


def _report(summary, json_: bool, strict: bool) -> None:
    """Print the summary (and the first errors); exit non-zero as the summary says."""
    code = summary.exit_code(strict)
    if json_:
        print_json(summary.as_dict())
    else:
        if summary.errors:
            from rich.table import Table

            t = Table(title=f"ingest errors ({summary.failed})", show_lines=False)
            t.add_column("source", overflow="fold")
            t.add_column("type", style="red")
            t.add_column("reason", overflow="fold")
            for e in summary.errors[:MAX_ERRORS_SHOWN]:
                t.add_row(e.source, e.error_type, e.reason)
            err_console().print(t)
            if summary.failed > MAX_ERRORS_SHOWN:
                err_console().print(
                    f"... {summary.failed - MAX_ERRORS_SHOWN} more: mds pool errors --run {summary.run_id}"
                )
        typer.echo(summary.line())
        if code and summary.ingested == 0:
            typer.secho("error: nothing could be ingested", fg="red", err=True)
        elif code:
            typer.secho(f"error: {summary.failed} entries failed (--strict)", fg="red", err=True)
    if code:
        # SystemExit, not typer.Exit: the root runs click with standalone_mode=False, which turns
        # typer.Exit into a return value that would be lost.
        raise SystemExit(code)


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _human_seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 60 else f"{int(s // 3600)}:{int(s % 3600 // 60):02d}:{int(s % 60):02d} h:m:s"


def _fmt_num(x: float | None, fmt: str = "{:.3g}") -> str:
    return "" if x is None else fmt.format(x)


def register(app: typer.Typer) -> None:
    @pool_app.command("add")
    def add(
        paths: Annotated[list[str], typer.Argument(help="Files, folders (recursive) or glob patterns.")],
        dataset: DatasetOpt = None,
        split: SplitOpt = None,
        meta: Annotated[list[str], typer.Option("--meta", help="KEY=VALUE metadata for every file (repeatable).")] = [],  # noqa: B006
        no_recursive: Annotated[bool, typer.Option("--no-recursive", help="Do not walk sub-folders.")] = False,
        rehash: Annotated[bool, typer.Option("--rehash", help="Hash and probe files already in the pool again.")] = False,
        strict: StrictOpt = False,
        workers: WorkersOpt = None,
        batch_size: BatchOpt = None,
        quiet: QuietOpt = False,
        json_: JsonOpt = False,
    ) -> None:
        """Add video files: probe (PyAV) and hash (sha256) them, record broken ones as errors."""
        from mds.pool import add_paths
        from mds.pool.ingest import DEFAULT_BATCH

        summary = add_paths(
            db_url(), paths, dataset=dataset, split=split, meta=_parse_meta(meta) or None,
            recursive=not no_recursive, rehash=rehash, workers=workers,
            batch_size=batch_size or DEFAULT_BATCH, progress=not (quiet or json_),
        )  # fmt: skip
        _report(summary, json_, strict)

    @pool_app.command("import")
    def import_(
        manifest: Annotated[Path, typer.Argument(help="CSV, TSV, JSONL or Parquet manifest.")],
        no_probe: Annotated[bool, typer.Option("--no-probe", help="Metadata only: do not open local files.")] = False,
        dataset: DatasetOpt = None,
        split: SplitOpt = None,
        path_column: Annotated[str | None, typer.Option("--path-column", help="Column with the path/URL.")] = None,
        prediction_version: Annotated[
            str, typer.Option("--prediction-version", help="evaluator_version of imported pred_<name> columns.")
        ] = "external",
        strict: StrictOpt = False,
        workers: WorkersOpt = None,
        batch_size: BatchOpt = None,
        quiet: QuietOpt = False,
        json_: JsonOpt = False,
    ) -> None:
        """Import a manifest: path/URL + metadata, optional mos/split/dataset and pred_<evaluator> columns."""
        from mds.pool import import_manifest

        summary = import_manifest(
            db_url(), manifest, probe=not no_probe, dataset=dataset, split=split, path_column=path_column,
            prediction_version=prediction_version, workers=workers, batch_size=batch_size,
            progress=not (quiet or json_),
        )  # fmt: skip
        _report(summary, json_, strict)

    @pool_app.command("ls")
    def ls(
        split: Annotated[str | None, typer.Option("--split", "-s", help="Only this split.")] = None,
        dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Only this dataset.")] = None,
        search: Annotated[str | None, typer.Option("--search", help="Substring of name or uri.")] = None,
        labelled: Annotated[bool | None, typer.Option("--labelled/--unlabelled", help="With / without a label.")] = None,
        limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many rows (0: all).")] = 50,
        offset: Annotated[int, typer.Option("--offset", help="Skip this many rows.")] = 0,
        json_: JsonOpt = False,
    ) -> None:
        """List videos (id, name, dataset, split, codec, size, fps, duration)."""
        from mds.pool import count_videos, list_videos

        url = db_url()
        filters = {"split": split, "dataset": dataset, "search": search, "labelled": labelled}
        rows = list_videos(url, **filters, limit=limit or None, offset=offset)
        if json_:
            print_json(rows)
            return
        from rich.table import Table

        total = count_videos(url, **filters)
        t = Table(title=f"videos {offset + 1 if rows else 0}-{offset + len(rows)} of {total}")
        for col, kw in (("id", {"justify": "right"}), ("name", {}), ("dataset", {}), ("split", {}), ("codec", {}),
                        ("size", {}), ("fps", {"justify": "right"}), ("dur s", {"justify": "right"})):  # fmt: skip
            t.add_column(col, **kw)
        for r in rows:
            size = f"{r['width']}x{r['height']}" if r["width"] else ""
            t.add_row(str(r["id"]), r["name"], r["dataset"], r["split"], r["codec"] or "", size,
                      _fmt_num(r["fps"]), _fmt_num(r["duration_s"], "{:.2f}"))  # fmt: skip
        console().print(t)

    @pool_app.command("show")
    def show(
        ref: Annotated[str, typer.Argument(help="Video id, uri or name.")],
        json_: JsonOpt = False,
    ) -> None:
        """Show one video: probe facts, metadata, labels, predictions, derived records."""
        from mds.pool import get_video

        v = get_video(db_url(), ref)
        if json_:
            print_json(v)
            return
        from rich.table import Table

        t = Table(show_header=False, title=f"video {v['id']}")
        t.add_column("field", style="bold")
        t.add_column("value", overflow="fold")
        for k in ("name", "uri", "dataset", "split", "content_hash", "size_bytes", "container", "codec", "width",
                  "height", "fps", "frame_count", "duration_s", "probed", "created_at", "updated_at"):  # fmt: skip
            t.add_row(k, "" if v[k] is None else str(v[k]))
        for k, val in (v["meta"] or {}).items():
            t.add_row(f"meta.{k}", str(val))
        for lab in v["labels"]:
            extra = f" ± {lab['std']:.3g}" if lab["std"] is not None else ""
            n = f" (n={lab['n_ratings']})" if lab["n_ratings"] is not None else ""
            t.add_row(f"label[{lab['source']}]", f"{_fmt_num(lab['mos'], '{:.4g}')}{extra}{n}")
        for p in v["predictions"]:
            t.add_row(f"pred[{p['evaluator']}@{p['version']}]", f"{_fmt_num(p['score'], '{:.4g}')} ({p['parse_status']})")
        for name, score in v["difficulty_scores"].items():
            t.add_row(f"difficulty[{name}]", _fmt_num(score, "{:.4g}"))
        for e in v["embeddings"]:
            t.add_row(f"embedding[{e['encoder']}]", f"{e['status']} {e['n_frames']}x{e['dim']}")
        if v["selected_in_rounds"]:
            t.add_row("selected in rounds", ", ".join(map(str, v["selected_in_rounds"])))
        console().print(t)

    @pool_app.command("stats")
    def stats(json_: JsonOpt = False) -> None:
        """Pool counts by dataset and split, labelled/probed counts, size, codecs, ingest errors."""
        from mds.pool import pool_stats

        st = pool_stats(db_url())
        if json_:
            print_json(st)
            return
        from rich.table import Table

        t = Table(title=f"{st['videos']} videos ({st['labelled']} labelled)")
        t.add_column("dataset")
        t.add_column("split")
        t.add_column("videos", justify="right")
        for r in st["by_dataset_split"]:
            t.add_row(r["dataset"], r["split"], str(r["videos"]))
        c = console()
        c.print(t)
        c.print(f"size {_human_bytes(st['total_bytes'])}, duration {_human_seconds(st['total_duration_s'])}")
        if st["codecs"]:
            c.print("codecs: " + ", ".join(f"{k} {n}" for k, n in sorted(st["codecs"].items())))
        if st["predictions"]:
            c.print("predictions: " + ", ".join(f"{k} {n}" for k, n in sorted(st["predictions"].items())))
        if st["ingest_errors"]:
            c.print("ingest errors: " + ", ".join(f"{k} {n}" for k, n in sorted(st["ingest_errors"].items())))

    @pool_app.command("rm")
    def rm(
        refs: Annotated[list[str] | None, typer.Argument(help="Video ids, uris or names.")] = None,
        split: Annotated[str | None, typer.Option("--split", "-s", help="Every video of this split.")] = None,
        dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Every video of this dataset.")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="No confirmation for --split/--dataset.")] = False,
        json_: JsonOpt = False,
    ) -> None:
        """Remove videos (with their labels, predictions, scores); videos used by rounds are kept."""
        from mds.pool import remove_videos

        url = db_url()
        if (split or dataset) and not (yes or dry_run):
            preview = remove_videos(url, refs or [], split=split, dataset=dataset, dry_run=True)
            if not typer.confirm(f"remove {len(preview.removed)} videos?", err=True):
                raise typer.Abort()
        res = remove_videos(url, refs or [], split=split, dataset=dataset, dry_run=dry_run)
        if json_:
            print_json(res.as_dict())
            return
        verb = "would remove" if dry_run else "removed"
        typer.echo(f"{verb} {len(res.removed)} videos, kept {len(res.skipped)}")
        for s in res.skipped[:MAX_ERRORS_SHOWN]:
            typer.echo(f"  kept {s['id']} {s['name']}: {s['reason']}", err=True)

    @pool_app.command("errors")
    def errors(
        run: Annotated[str | None, typer.Option("--run", help="Only this ingest run id.")] = None,
        error_type: Annotated[str | None, typer.Option("--type", help="Only this error type.")] = None,
        limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many (0: all).")] = 50,
        json_: JsonOpt = False,
    ) -> None:
        """List recorded ingest errors, newest first."""
        from mds.pool import list_ingest_errors

        rows = list_ingest_errors(db_url(), run_id=run, error_type=error_type, limit=limit or None)
        if json_:
            print_json(rows)
            return
        from rich.table import Table

        t = Table(title=f"ingest errors ({len(rows)} shown)")
        for col in ("run", "source", "type", "reason"):
            t.add_column(col, overflow="fold")
        for r in rows:
            t.add_row(r["run_id"] or "", r["source"], r["error_type"], r["reason"])
        console().print(t)

    app.add_typer(pool_app, name="pool")
