"""Make a video reachable by the Label Studio server, as the original file (never a transcode).

* URLs (``http(s)://``, ``s3://``, ``gs://``, ...) are used as they are.
* Local files are served by Label Studio's local-files endpoint
  (``/data/local-files/?d=<path relative to the document root>``). That endpoint
  only serves files whose folder is covered by a local-files storage of the
  project, so the folder is returned for :meth:`LabelStudioClient.ensure_local_storage`.
  A file outside the document root (or directly in it, which Label Studio
  refuses) is linked into ``<document root>/mds-media/`` with a symbolic link,
  so the bytes served are still the original file's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from mds.errors import LabelingError

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
LINK_DIR = "mds-media"


@dataclass(frozen=True)
class MediaRef:
    """Where Label Studio finds one video."""

    url: str
    storage_dir: str | None = None  # folder needing a local-files storage (local files only)
    linked: bool = False


def media_ref(uri: str, video_id: int, name: str, document_root: Path | None) -> MediaRef:
    """The task URL for a video ``uri`` (see the module docstring)."""
    if _URL.match(uri) and not uri.startswith("file://"):
        return MediaRef(url=uri)
    path = Path(uri.removeprefix("file://"))
    if document_root is None:
        raise LabelingError(
            f"video {video_id} is a local file ({path}) but no Label Studio document root is set: "
            "set [labelstudio] document_root in mds.toml or MDS_LABEL_STUDIO_DOCUMENT_ROOT"
        )
    root = Path(document_root).resolve()
    path = Path(os.path.realpath(path.parent)) / path.name
    if not path.is_file():
        raise LabelingError(f"video {video_id}: file not found: {path}")
    linked = False
    if root not in path.parents or path.parent == root:
        link_dir = root / LINK_DIR
        link_dir.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name or path.name)
        link = link_dir / f"{video_id}-{safe}"
        if link.is_symlink() and Path(os.readlink(link)) != path:
            link.unlink()
        if not link.exists():
            try:
                link.symlink_to(path)
            except OSError as e:
                raise LabelingError(f"cannot link {path} into {link_dir}: {e.strerror}") from None
        path, linked = link, True
    rel = path.relative_to(root).as_posix()
    return MediaRef(
        url=f"/data/local-files/?d={quote(rel, safe='/')}", storage_dir=str(path.parent), linked=linked
    )
