"""``mds round start|finish|status|ls``: labelling rounds, each step recorded and resumable."""

from __future__ import annotations

from typing import Annotated

import typer

from mds.cli._options import JsonOpt, print_json


def _hook(echo):
    def hook(step: str, what: str, info: dict | None) -> None:
        if what == "skip":
            echo(f"  {step:<10} already done")
        elif what == "done":
            brief = {k: v for k, v in (info or {}).items() if isinstance(v, (int, float, str, bool))}
            echo(f"  {step:<10} done {brief if brief else ''}")

    return hook


def _print_status(st: dict) -> None:
    from rich.table import Table

    from mds.cli._options import console

    c = console()
    c.print(f"round {st['number']}: [bold]{st['status']}[/bold]  strategy={st['strategy']} budget={st['budget']} "
            f"seed={st['seed']} lambda={st['lambda']}")
    c.print(f"  done: {', '.join(st['steps_done']) or '-'}\n  pending: {', '.join(st['steps_pending']) or '-'}")
    if st.get("clip_random_init"):
        c.print("  [yellow]CLIP encoder: random init (no pretrained weights given)[/yellow]")
    if st.get("error"):
        c.print(f"  [red]last error: {st['error']}[/red]")
    m = st.get("metrics") or {}
    for key in ("base", "finetuned"):
        t = (m.get(key) or {}).get("target_test")
        if t:
            c.print(f"  {key:<9} target test SRCC {t['srcc']:.4f}  PLCC {t['plcc']:.4f}  (n={t['n']})")
    if st["selection"]:
        t = Table(title="selection")
        for col in ("rank", "video", "difficulty", "diversity", "total"):
            t.add_column(col)
        for p in st["selection"][:20]:
            t.add_row(str(p["rank"]), p["video"], *(("—" if p[k] is None else f"{p[k]:.4f}")
                                                   for k in ("difficulty", "diversity", "total")))
        c.print(t)
        if len(st["selection"]) > 20:
            c.print(f"  ... {len(st['selection']) - 20} more (--json for all)")


def resolve_clip_pretrained(given: str | None, strategy: str, rounds_cfg: dict) -> str | None:
    """The CLIP weights of a round; random init only when asked for with ``none``.

    Strategies that use diversity need embeddings, and an encoder without weights measures
    low-level appearance only, so it is never a silent default.
    """
    from mds.errors import ConfigError

    value = given if given is not None else rounds_cfg.get("clip_pretrained")
    if value is None:
        if strategy in ("mds", "diversity"):
            raise ConfigError(
                f"the {strategy} strategy needs CLIP weights: give --clip-pretrained PATH (a file, a directory, "
                "hf-hub:REPO or a cached tag) or --clip-pretrained none for a randomly initialised encoder"
            )
        return None
    return None if str(value).lower() == "none" else str(value)


def register(app: typer.Typer) -> None:
    """Add the ``round`` command group."""
    rounds = typer.Typer(help="Labelling rounds: start, finish, status, ls.", no_args_is_help=True)

    app.add_typer(rounds, name="round")

    @rounds.command("start")
    def start(
        strategy: Annotated[str, typer.Option("--strategy", "-s", help="mds, random, difficulty or diversity.")] = "mds",
        budget: Annotated[str, typer.Option("--budget", "-k", help="Videos to pick: a count or a percentage of the pool.")] = "5%",
        seed: Annotated[int, typer.Option("--seed")] = 0,
        lambda_: Annotated[float | None, typer.Option("--lambda", help="MDS trade-off (default: per encoder).")] = None,
        evaluator: Annotated[str, typer.Option("--evaluator", "-e", envvar="MDS_EVALUATOR")] = "cpu-default",
        clip_model: Annotated[str, typer.Option("--clip-model")] = "ViT-S-32",
        clip_pretrained: Annotated[str | None, typer.Option("--clip-pretrained", help="CLIP weights (file, dir, hf-hub:REPO, cached tag; or [rounds] clip_pretrained in mds.toml). 'none' = random init, only when asked for.")] = None,
        clip_frames: Annotated[int, typer.Option("--clip-frames")] = 4,
        labels: Annotated[str, typer.Option("--labels", help="auto, labelstudio or simulated.")] = "auto",
        oracle: Annotated[str | None, typer.Option("--oracle", help="Demo pool folder / oracle CSV for simulated annotators.")] = None,
        ratings: Annotated[int, typer.Option("--ratings", help="Ratings wanted per video.")] = 5,
        simulate_raters: Annotated[bool, typer.Option("--simulate-raters", help="With Label Studio: simulated raters answer through its API.")] = False,
        no_promote: Annotated[bool, typer.Option("--no-promote", help="Keep the fine-tuned model out of the next round.")] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Score → difficulty → embed → select → push (resumes a round whose start was interrupted)."""
        from mds._compat import ensure_torchvision
        from mds.cli._options import db_url, settings
        from mds.rounds import RoundConfig, start_round

        ensure_torchvision()
        clip_pretrained = resolve_clip_pretrained(clip_pretrained, strategy, settings().section("rounds"))
        cfg = RoundConfig(strategy=strategy, budget=budget, seed=seed, lambda_=lambda_, evaluator=evaluator,
                          clip_model=clip_model, clip_pretrained=clip_pretrained, clip_frames=clip_frames,
                          labels=labels, oracle=oracle, ratings_per_video=ratings, simulate_raters=simulate_raters,
                          promote=not no_promote)
        if not json_out and not clip_pretrained and strategy in ("mds", "diversity"):
            typer.secho("note: no --clip-pretrained given: the CLIP encoder is randomly initialised", fg="yellow")
        st = start_round(db_url(), cfg, settings=settings(), hook=None if json_out else _hook(typer.echo))
        if json_out:
            print_json(st)
        else:
            _print_status(st)

    @rounds.command("finish")
    def finish(
        number: Annotated[int | None, typer.Option("--round", "-r", help="Round number (default: the latest).")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Pull → aggregate → fine-tune → evaluate on the test split → report."""
        from mds._compat import ensure_torchvision
        from mds.cli._options import db_url, settings
        from mds.rounds import finish_round

        ensure_torchvision()
        st = finish_round(db_url(), number, settings=settings(), hook=None if json_out else _hook(typer.echo))
        if json_out:
            print_json(st)
        else:
            _print_status(st)
            rep = (st["steps"].get("report") or {}).get("path")
            if rep:
                typer.echo(f"report: {rep}")

    @rounds.command("status")
    def status(
        number: Annotated[int | None, typer.Option("--round", "-r", help="Round number (default: the latest).")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Steps done and pending, models, selection and metrics of a round."""
        from mds.cli._options import db_url
        from mds.rounds import round_status

        st = round_status(db_url(), number)
        print_json(st) if json_out else _print_status(st)

    @rounds.command("ls")
    def ls(json_out: JsonOpt = False) -> None:
        """All rounds, one line each."""
        from rich.table import Table

        from mds.cli._options import console, db_url
        from mds.rounds import list_rounds

        rows = list_rounds(db_url())
        if json_out:
            print_json(rows)
            return
        t = Table(title="rounds")
        for col in ("#", "status", "strategy", "budget", "picks", "base SRCC", "fine-tuned SRCC", "error"):
            t.add_column(col)
        for r in rows:
            t.add_row(str(r["number"]), r["status"], r["strategy"], str(r["budget"]), str(r["picks"]),
                      "—" if r["base_srcc"] is None else f"{r['base_srcc']:.4f}",
                      "—" if r["finetuned_srcc"] is None else f"{r['finetuned_srcc']:.4f}", (r["error"] or "")[:60])
        console().print(t)
