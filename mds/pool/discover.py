"""Turn command-line arguments (files, folders, globs) into the list of files to ingest."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".mpg", ".mpeg",
        ".ts", ".mts", ".m2ts", ".3gp", ".3g2", ".ogv", ".mxf", ".y4m", ".gif",
    }
)  # fmt: skip

_GLOB_CHARS = set("*?[")


def is_video_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def discover(args: Iterable[str | Path], *, recursive: bool = True) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand ``args`` into absolute file paths, in a stable order, without duplicates.

    * a file is taken as it is, whatever its extension (it was named explicitly);
    * a folder contributes its video files (by extension), recursively by default;
    * a pattern with ``* ? [`` is a glob (``**`` crosses folders); matched folders are walked.

    Returns ``(files, missing)`` where ``missing`` holds ``(arg, reason)`` for arguments
    that match nothing.
    """
    files: list[Path] = []
    seen: set[Path] = set()
    missing: list[tuple[str, str]] = []

    def take(p: Path) -> None:
        p = p.absolute()
        if p not in seen:
            seen.add(p)
            files.append(p)

    def walk(folder: Path) -> int:
        found = []
        if recursive:
            for root, dirs, names in os.walk(folder):
                dirs.sort()
                found.extend(Path(root) / n for n in names if is_video_name(n))
        else:
            found = [p for p in folder.iterdir() if p.is_file() and is_video_name(p)]
        for p in sorted(found):
            take(p)
        return len(found)

    for arg in args:
        s = os.path.expanduser(str(arg))
        if _GLOB_CHARS & set(s) and not Path(s).exists():
            matches = sorted(glob.glob(s, recursive=True))
            if not matches:
                missing.append((str(arg), "pattern matches no file"))
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    walk(mp)
                else:
                    take(mp)
            continue
        p = Path(s)
        if p.is_dir():
            walk(p)
        elif p.exists() or p.is_symlink():
            take(p)
        else:
            missing.append((str(arg), "no such file or folder"))
    return files, missing
