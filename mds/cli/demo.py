"""``mds demo-pool``, ``mds simulate`` and ``mds demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mds.cli._options import JsonOpt, print_json


def _progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=True)


def _tracker(progress):
    tasks: dict[str, int] = {}

    def cb(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return cb


def register(app: typer.Typer) -> None:
    """Add ``demo-pool``, ``simulate`` and ``demo``."""

    @app.command("demo-pool")
    def demo_pool(
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the pool (videos, manifest, oracle, DB).")] = Path("demo-out/pool"),
        size: Annotated[str, typer.Option("--size", help="tiny (CI, ~40 videos), small (demo, ~360), large (~1,400).")] = "tiny",
        seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed builds the same pool.")] = 0,
        workers: Annotated[int, typer.Option("--workers", help="Parallel ffmpeg jobs.")] = 2,
        no_db: Annotated[bool, typer.Option("--no-db", help="Only files; do not create or fill a database.")] = False,
        force: Annotated[bool, typer.Option("--force", help="Rebuild even if OUT holds this pool already.")] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Build the offline demo pool from packaged material, with pseudo-MOS from VMAF (nothing downloaded)."""
        from mds.cli._options import STATE
        from mds.demo.pool import build_demo_pool

        with _progress_bar() as prog:
            pool = build_demo_pool(out, size, seed=seed, workers=workers, db_url=STATE.db_url, import_db=not no_db,
                                   force=force, progress=_tracker(prog))
        info = {"root": str(pool.root), "size": pool.size, "seed": pool.seed, "videos": len(pool.videos),
                "counts": pool.counts(), "manifest": str(pool.manifest), "oracle": str(pool.oracle_path),
                "db_url": pool.db_url, "build_s": pool.info.get("build_s")}
        if json_out:
            print_json(info)
            return
        typer.echo(f"demo pool ({size}, seed {seed}): {len(pool.videos)} videos in {pool.root}")
        for k, v in pool.counts().items():
            typer.echo(f"  {k:<22} {v}")
        typer.echo(f"  manifest {pool.manifest}\n  oracle   {pool.oracle_path} (hidden pool labels)")
        if pool.db_url:
            typer.echo(f"  database {pool.db_url}")

    @app.command("simulate")
    def simulate(
        config: Annotated[Path, typer.Argument(help="Experiment file (.toml or .json).")],
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Results folder (overrides the file's `out`).")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Oracle replay: strategies × budgets × seeds × rounds on a pool with known labels."""
        from mds._compat import ensure_torchvision
        from mds.simulate import headline, load_config, load_pool_arrays, run_simulation, write_outputs

        ensure_torchvision()
        cfg = load_config(config)
        if out is not None:
            cfg.out = str(out.resolve())
        with _progress_bar() as prog:
            cb = _tracker(prog)
            arrays = load_pool_arrays(cfg.pool, cfg.encoder, cb)
            result = run_simulation(cfg, arrays=arrays, progress=cb)
        paths = write_outputs(result, arrays, cfg.out)
        head = headline(result)
        if json_out:
            print_json({"outputs": {k: str(v) for k, v in paths.items()}, **head})
            return
        _print_summary(result, head)
        typer.echo(f"results: {paths['json']}  report: {paths['report']}")

    @app.command("demo")
    def demo(
        out: Annotated[Path, typer.Option("--out", "-o", help="Working folder of the demo.")] = Path("demo-out"),
        size: Annotated[str, typer.Option("--size", help="Demo pool size.")] = "small",
        rounds: Annotated[int, typer.Option("--rounds", help="Labelling rounds.")] = 3,
        budget: Annotated[str, typer.Option("--budget", help="Videos per round: a count or a percentage of the pool.")] = "5%",
        seed: Annotated[int, typer.Option("--seed")] = 0,
        clip_pretrained: Annotated[str | None, typer.Option("--clip-pretrained", help="CLIP weights (file, dir, hf-hub:REPO, tag); default: random init.")] = None,
        clip_model: Annotated[str, typer.Option("--clip-model", help="open_clip architecture.")] = "ViT-S-32",
        label_studio: Annotated[bool, typer.Option("--label-studio/--no-label-studio", help="Route ratings through the Label Studio of mds.toml when one is configured.")] = True,
        json_out: JsonOpt = False,
    ) -> None:
        """The whole loop offline: demo pool → base model → failure predictor → rounds of MDS vs random."""
        from mds._compat import ensure_torchvision
        from mds.rounds.demo import run_demo

        ensure_torchvision()
        res = run_demo(out, size=size, rounds=rounds, budget=budget, seed=seed, clip_model=clip_model,
                       clip_pretrained=clip_pretrained, use_label_studio=label_studio, echo=None if json_out else typer.echo)
        if json_out:
            print_json(res)


def _print_summary(result, head: dict) -> None:
    from rich.table import Table

    from mds.cli._options import console
    from mds.report.summary import summary_tables

    t = Table(title="test SRCC per round (mean ± std over seeds)")
    for c in ("budget", "strategy", "round", "test SRCC", "error ratio", "diversity"):
        t.add_column(c)
    for _, r in summary_tables(result.frame()).iterrows():
        t.add_row(str(r.budget), r.strategy, str(r["round"]), f"{r.test_srcc_mean:.3f} ± {r.test_srcc_std:.3f}",
                  "—" if r["round"] == 0 else f"{r.error_ratio_mean:.2f}", "—" if r["round"] == 0 else f"{r.sel_diversity_mean:.3f}")
    console().print(t)
    for g in head.get("gain_last_round", []):
        typer.echo(f"MDS − random, budget {g['budget']}, round {g['round']}: {g['mean']:+.3f} ± {g['std']:.3f} "
                   f"(interval {'excludes' if g['excludes_zero'] else 'includes'} 0)")
