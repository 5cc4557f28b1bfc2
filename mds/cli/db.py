"""`mds init` and `mds db upgrade|downgrade|current`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mds.cli._options import JsonOpt, print_json, settings

db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


def init_project(project_dir: Path, db_url: str | None = None) -> dict:
    """Create ``mds.toml`` (if absent) and bring the database to the latest schema."""
    from mds.config import load_settings, write_project_file
    from mds.db import migrate

    project_dir.mkdir(parents=True, exist_ok=True)
    path = write_project_file(project_dir, db_url)
    s = load_settings(db_url=db_url, project_dir=project_dir)
    s.data_dir.mkdir(parents=True, exist_ok=True)
    rev = migrate.upgrade(s.db_url)
    return {"project_file": str(path), "database": s.db_url, "revision": rev, "data_dir": str(s.data_dir)}


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(
        directory: Annotated[Path, typer.Argument(help="Project directory.")] = Path("."),
        json_: JsonOpt = False,
    ) -> None:
        """Create a project (mds.toml + database at the latest schema) in DIRECTORY."""
        from mds.cli._options import STATE

        info = init_project(directory.resolve(), STATE.db_url)
        if json_:
            print_json(info)
        else:
            typer.echo(f"project {info['project_file']}\ndatabase {info['database']} at revision {info['revision']}")

    @db_app.command("upgrade")
    def upgrade(revision: Annotated[str, typer.Argument()] = "head", json_: JsonOpt = False) -> None:
        """Upgrade the database schema (default: to the latest revision)."""
        from mds.db import migrate

        url = settings().db_url
        rev = migrate.upgrade(url, revision)
        print_json({"database": url, "revision": rev}) if json_ else typer.echo(f"{url}: at revision {rev}")

    @db_app.command("downgrade")
    def downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")]) -> None:
        """Downgrade the database schema."""
        from mds.db import migrate

        url = settings().db_url
        typer.echo(f"{url}: at revision {migrate.downgrade(url, revision)}")

    @db_app.command("current")
    def current(json_: JsonOpt = False) -> None:
        """Show the database's revision and the code's latest revision."""
        from mds.db import migrate

        url = settings().db_url
        info = {"database": url, "revision": migrate.current(url), "head": migrate.head()}
        if json_:
            print_json(info)
        else:
            typer.echo(f"{url}: revision {info['revision']} (latest {info['head']})")

    app.add_typer(db_app, name="db")
