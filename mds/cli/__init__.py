"""The ``mds`` command line: a thin layer over the Python API.

Every command module registers itself through ``register(app)`` and imports
heavy libraries only inside its command functions, so ``mds --help`` is instant.
Errors derived from :class:`mds.errors.MdsError` print one line (traceback with
``--debug`` or ``MDS_DEBUG=1``).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated

import typer

from mds.cli._options import STATE

app = typer.Typer(
    name="mds",
    help="Active-learning data selection for video quality assessment (MDS-VQA).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Command modules in mds/cli/; each defines register(app).
COMMAND_MODULES = (
    "db",  # init, db upgrade|current|downgrade
    "pool",  # pool add|import|ls|show|stats|rm
    "selection",  # embed, select, evaluate, import-scores, import-embeddings
    "score",  # score
    "failure",  # failure train|score
    "finetune",  # finetune
    "label",  # label push|pull|sync|serve-webhook|worker, labelstudio start
    "rounds",  # round start|finish|status|ls
    "demo",  # demo-pool, simulate, demo
)


@app.callback()
def _root(
    db: Annotated[str | None, typer.Option("--db", envvar="MDS_DATABASE_URL", help="Database URL.")] = None,
    project: Annotated[str | None, typer.Option("--project", help="Project directory (holds mds.toml).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    STATE.db_url = db
    STATE.project_dir = project
    STATE.debug = debug or os.environ.get("MDS_DEBUG") == "1"


for _name in COMMAND_MODULES:
    importlib.import_module(f"mds.cli.{_name}").register(app)


_GLOBAL_VALUE_OPTS = ("--db", "--project")
_GLOBAL_FLAGS = ("--debug",)


def hoist_global_options(argv: list[str]) -> list[str]:
    """Let the global options stand anywhere (``mds pool ls --db URL``) by moving them first."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest.extend(argv[i:])
            break
        if a in _GLOBAL_FLAGS:
            front.append(a)
        elif a in _GLOBAL_VALUE_OPTS and i + 1 < len(argv):
            front.extend(argv[i : i + 2])
            i += 1
        elif any(a.startswith(o + "=") for o in _GLOBAL_VALUE_OPTS):
            front.append(a)
        else:
            rest.append(a)
        i += 1
    return front + rest


def main() -> None:
    """Console-script entry point with central error mapping."""
    from mds.errors import MdsError

    try:
        rc = app(args=hoist_global_options(sys.argv[1:]), prog_name="mds", standalone_mode=False)  # returns the code of a raised typer.Exit instead of exiting
        sys.exit(rc if isinstance(rc, int) else 0)
    except MdsError as e:
        if STATE.debug:
            raise
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.secho("aborted", fg="red", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.secho("interrupted", fg="red", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors and anything unexpected
        try:  # typer ships its own copy of click in recent releases
            from typer._click.exceptions import ClickException
        except ImportError:  # pragma: no cover
            from click.exceptions import ClickException

        if isinstance(e, ClickException):
            e.show()
            sys.exit(e.exit_code)
        if STATE.debug:
            raise
        typer.secho(f"error: {type(e).__name__}: {e} (run with --debug for the traceback)", fg="red", err=True)
        sys.exit(1)
