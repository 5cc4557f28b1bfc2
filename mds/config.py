"""Settings with one precedence rule: explicit argument > environment > project file > default.

The project file is ``mds.toml``, found in the working directory or its parents
(``mds init`` writes one). Its location is the *project directory*; the default
SQLite database and the data directory (embeddings, FAISS indexes,
checkpoints) live there.

Example ``mds.toml``::

    [database]
    url = "sqlite:///mds.db"          # relative SQLite paths are relative to the project dir

    [paths]
    data_dir = ".mds"

    [labelstudio]
    url = "http://127.0.0.1:8080"
    token_env = "MDS_LABEL_STUDIO_TOKEN"
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mds.errors import ConfigError

PROJECT_FILE = "mds.toml"
ENV_DB = "MDS_DATABASE_URL"
ENV_PROJECT = "MDS_PROJECT_DIR"
ENV_DATA_DIR = "MDS_DATA_DIR"


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest directory (from ``start`` upwards) holding ``mds.toml``; else ``start``.

    ``MDS_PROJECT_DIR`` overrides the search.
    """
    env = os.environ.get(ENV_PROJECT)
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / PROJECT_FILE).is_file():
            return d
    return here


def _read_project_file(project_dir: Path) -> dict[str, Any]:
    path = project_dir / PROJECT_FILE
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


def _absolutise_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        rel = url[len(prefix):]
        if rel and not rel.startswith(":"):
            return prefix + str((base / rel).resolve())
    return url


@dataclass
class Settings:
    """Resolved settings for one invocation."""

    project_dir: Path
    db_url: str
    data_dir: Path
    raw: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """A table of ``mds.toml`` (empty if absent)."""
        value = self.raw.get(name, {})
        return value if isinstance(value, dict) else {}


def load_settings(db_url: str | None = None, project_dir: Path | str | None = None) -> Settings:
    """Resolve settings. ``db_url`` (e.g. from ``--db``) wins over everything else."""
    pdir = Path(project_dir).resolve() if project_dir else find_project_dir()
    raw = _read_project_file(pdir)
    url = db_url or os.environ.get(ENV_DB) or raw.get("database", {}).get("url") or "sqlite:///mds.db"
    url = _absolutise_sqlite(url, pdir)
    data = os.environ.get(ENV_DATA_DIR) or raw.get("paths", {}).get("data_dir") or ".mds"
    data_dir = Path(data)
    if not data_dir.is_absolute():
        data_dir = (pdir / data_dir).resolve()
    return Settings(project_dir=pdir, db_url=url, data_dir=data_dir, raw=raw)


def write_project_file(project_dir: Path, db_url: str | None = None) -> Path:
    """Create ``mds.toml`` in ``project_dir`` (kept as is if it exists)."""
    path = project_dir / PROJECT_FILE
    if path.exists():
        return path
    url = db_url or "sqlite:///mds.db"
    path.write_text(
        "# mds project settings; environment variables (MDS_DATABASE_URL, ...) override them.\n"
        "[database]\n"
        f'url = "{url}"\n\n'
        "[paths]\n"
        'data_dir = ".mds"\n',
        encoding="utf-8",
    )
    return path
