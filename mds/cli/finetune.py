"""``mds train-base``, ``mds finetune``, ``mds checkpoints``, ``mds promote``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mds.cli._options import JsonOpt, print_json


def _parse_rounds(rounds: list[str] | None) -> list[int] | None:
    if not rounds:
        return None
    out: list[int] = []
    for r in rounds:
        for part in r.split(","):
            part = part.strip()
            if part:
                if not part.isdigit():
                    raise typer.BadParameter(f"round ids are integers, got {part!r}")
                out.append(int(part))
    return out


def train_base(
    evaluator: Annotated[str, typer.Option("--evaluator", "-e", envvar="MDS_EVALUATOR")] = "cpu-default",
    epochs: Annotated[int, typer.Option("--epochs")] = 150,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    no_promote: Annotated[bool, typer.Option("--no-promote", help="Register without making it the base model.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train the CPU default base model on the labelled source set."""
    from mds.cli._options import console, db_url, settings
    from mds.cli._training import epoch_progress
    from mds.learning.finetune import train_base_model

    url = db_url()
    with epoch_progress("training base model", enabled=not as_json) as on_epoch:
        res = train_base_model(url, evaluator=evaluator, data_dir=settings().data_dir, promote=not no_promote,
                               epochs=epochs, seed=seed, on_epoch=on_epoch)
    if as_json:
        print_json(res)
        return
    c = console()
    c.print(f"base model {res['name']}@{res['version']} (checkpoint {res['checkpoint_id']}) trained on "
            f"{res['metrics']['n_train']} source videos{' and promoted' if res['promoted'] else ''}")
    t = res["metrics"].get("test")
    if t:
        c.print(f"test split: SRCC {t['srcc']:.3f}  PLCC {t['plcc']:.3f}  (n={t['n']})")


def finetune(
    evaluator: Annotated[str, typer.Option("--evaluator", "-e", envvar="MDS_EVALUATOR")] = "cpu-default",
    rounds: Annotated[list[str] | None, typer.Option("--rounds", help="Round ids whose labels to use (default: all).")] = None,
    promote: Annotated[bool | None, typer.Option("--promote/--no-promote", help="Make the result the next base model (default: [finetune] promote in mds.toml).")] = None,
    epochs: Annotated[int, typer.Option("--epochs")] = 40,
    lr: Annotated[float, typer.Option("--lr")] = 3e-3,
    lora_r: Annotated[int, typer.Option("--lora-r")] = 4,
    reg_weight: Annotated[float, typer.Option("--reg-weight", help="Weight of the regression term beside the pairwise loss.")] = 1.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Train a new version even if an identical one exists.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Active fine-tuning: LoRA on the current base model with source + round labels; test SRCC/PLCC before/after."""
    from mds.cli._options import console, db_url, err_console, settings
    from mds.cli._training import INTERRUPT_HINT, epoch_progress
    from mds.learning.finetune import finetune as run

    round_ids = _parse_rounds(rounds)
    url = db_url()
    st = settings()
    if promote is None:
        promote = bool(st.section("finetune").get("promote", False))
    try:
        with epoch_progress("fine-tuning", enabled=not as_json) as on_epoch:
            res = run(url, evaluator=evaluator, round_ids=round_ids, promote=promote,
                      data_dir=st.data_dir, epochs=epochs, lr=lr, lora_r=lora_r, lora_alpha=2 * lora_r,
                      reg_weight=reg_weight, seed=seed, force=force, on_epoch=on_epoch)
    except KeyboardInterrupt:
        err_console().print(INTERRUPT_HINT)
        raise
    if as_json:
        print_json(res)
        return
    c = console()
    c.print(f"{'reused' if res['reused'] else 'trained'} {res['name']}@{res['version']} (checkpoint "
            f"{res['checkpoint_id']}, parent {res['parent_id']}, rounds {res['round_ids'] or '-'}) on "
            f"{res['n_train']} labels{'; promoted' if res['promoted'] else '; not promoted (use --promote)'}")
    b, a = res.get("before"), res.get("after")
    if b and a:
        from rich.table import Table

        t = Table("test set", "SRCC before", "SRCC after", "PLCC before", "PLCC after", "n")
        for d, vb in b["per_dataset"].items():
            va = a["per_dataset"].get(d, {})
            t.add_row(d, f"{vb['srcc']:.3f}", f"{va.get('srcc', float('nan')):.3f}", f"{vb['plcc']:.3f}",
                      f"{va.get('plcc', float('nan')):.3f}", str(vb["n"]))
        c.print(t)


def list_checkpoints(kind: str | None = None, evaluator: str | None = None, as_json: bool = False) -> None:
    from sqlalchemy import select

    from mds.cli._options import console, db_url
    from mds.db.engine import make_sessionmaker
    from mds.db.models import Checkpoint

    with make_sessionmaker(db_url())() as s:
        q = select(Checkpoint).order_by(Checkpoint.id)
        if kind:
            q = q.where(Checkpoint.kind == kind)
        if evaluator:
            q = q.where(Checkpoint.evaluator == evaluator)
        rows = list(s.scalars(q))
        data: list[dict[str, Any]] = [
            {"id": r.id, "kind": r.kind, "name": r.name, "version": r.version, "evaluator": r.evaluator,
             "parent_id": r.parent_id, "status": r.status, "promoted": r.promoted, "round_ids": r.round_ids,
             "path": r.path, "metrics": {k: v for k, v in (r.metrics or {}).items() if k != "history"}}
            for r in rows
        ]
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    t = Table("id", "kind", "checkpoint", "parent", "status", "key figure")
    t.columns[2].no_wrap = True
    short = {"failure_predictor": "g", "finetuned": "ft", "base": "base"}
    for d in data:
        m = d["metrics"]
        fig = ""
        if m.get("val_spearman") is not None:
            fig = f"val ρ(g,err) {m['val_spearman']:.3f}, ties {m.get('tie_fraction', 0):.3f}"
        elif m.get("after"):
            fig = f"test SRCC {m['before']['srcc']:.3f} → {m['after']['srcc']:.3f}"
        elif m.get("test"):
            fig = f"test SRCC {m['test']['srcc']:.3f}"
        status = d["status"] + (", promoted" if d["promoted"] else "")
        if d["round_ids"]:
            status += f", rounds {','.join(map(str, d['round_ids']))}"
        t.add_row(str(d["id"]), short.get(d["kind"], d["kind"]), f"{d['name']}@{d['version']}",
                  str(d["parent_id"] or "-"), status, fig)
    console().print(t)


def checkpoints(
    kind: Annotated[str | None, typer.Option("--kind", help="base, failure_predictor or finetuned.")] = None,
    evaluator: Annotated[str | None, typer.Option("--evaluator", "-e")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List model checkpoints with their lineage, status and key figures."""
    list_checkpoints(kind, evaluator, as_json)


def promote(
    ref: Annotated[str, typer.Argument(help="Checkpoint id, name or name@version.")],
    as_json: JsonOpt = False,
) -> None:
    """Make a base or fine-tuned checkpoint the base model of the next round."""
    from mds.cli._options import console, db_url
    from mds.learning.finetune import promote as run

    res = run(db_url(), ref)
    if as_json:
        print_json(res)
    else:
        console().print(f"promoted {res['name']}@{res['version']} (checkpoint {res['checkpoint_id']})")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("train-base")(train_base)
    app.command("finetune")(finetune)
    app.command("checkpoints")(checkpoints)
    app.command("promote")(promote)
