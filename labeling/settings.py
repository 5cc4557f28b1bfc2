"""The ``[labelstudio]`` table of mds.toml, with environment overrides.

Example::

    [labelstudio]
    url = "http://127.0.0.1:8080"        # MDS_LABEL_STUDIO_URL
    token_env = "MDS_LABEL_STUDIO_TOKEN"  # or token = "..."; default: the local server's credentials file
    data_dir = ".mds/labelstudio"         # server data (SQLite DB, media, credentials)
    document_root = "."                   # MDS_LABEL_STUDIO_DOCUMENT_ROOT; local videos are served below it
    bin = "/opt/ls/bin/label-studio"      # MDS_LABEL_STUDIO_BIN; default <repo>/.venv-ls/bin/label-studio
    ratings_per_video = 3
    webhook_secret_env = "MDS_WEBHOOK_SECRET"
    webhook_host = "127.0.0.1"
    webhook_port = 8765
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from mds.config import Settings


@dataclass
class LabelStudioSettings:
    url: str
    data_dir: Path
    document_root: Path
    bin: str | None
    ratings_per_video: int
    webhook_secret: str | None
    webhook_host: str
    webhook_port: int

    @property
    def port(self) -> int:
        return urlparse(self.url).port or 8080

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or "127.0.0.1"


def _path(value: str | None, base: Path, default: Path) -> Path:
    if not value:
        return default
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def ls_settings(settings: Settings) -> LabelStudioSettings:
    sec = settings.section("labelstudio")
    return LabelStudioSettings(
        url=(os.environ.get("MDS_LABEL_STUDIO_URL") or sec.get("url") or "http://127.0.0.1:8080").rstrip("/"),
        data_dir=_path(sec.get("data_dir"), settings.project_dir, settings.data_dir / "labelstudio"),
        document_root=_path(
            os.environ.get("MDS_LABEL_STUDIO_DOCUMENT_ROOT") or sec.get("document_root"),
            settings.project_dir,
            settings.project_dir,
        ),
        bin=sec.get("bin"),
        ratings_per_video=int(sec.get("ratings_per_video", 3)),
        webhook_secret=os.environ.get(sec.get("webhook_secret_env") or "MDS_WEBHOOK_SECRET")
        or sec.get("webhook_secret"),
        webhook_host=str(sec.get("webhook_host", "127.0.0.1")),
        webhook_port=int(sec.get("webhook_port", 8765)),
    )
