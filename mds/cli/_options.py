"""Shared CLI state and option aliases. Keep this module free of heavy imports."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from mds.config import Settings, load_settings


@dataclass
class CliState:
    db_url: str | None = None
    debug: bool = False
    project_dir: str | None = None


STATE = CliState()

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (recorded with the run).")]
EvaluatorOpt = Annotated[str, typer.Option("--evaluator", "-e", envvar="MDS_EVALUATOR", help="Base evaluator name.")]


def settings() -> Settings:
    """Settings for this invocation (``--db`` > ``MDS_DATABASE_URL`` > ``mds.toml`` > default)."""
    return load_settings(db_url=STATE.db_url, project_dir=STATE.project_dir)


def db_url(check: bool = True) -> str:
    """The database URL; with ``check`` the schema must be at head (one-line error otherwise)."""
    url = settings().db_url
    if check:
        from mds.db.migrate import ensure_current

        ensure_current(url)
    return url


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")


def console():  # noqa: ANN201
    from rich.console import Console

    return Console()


def err_console():  # noqa: ANN201
    from rich.console import Console

    return Console(stderr=True)
