"""How videos are made reachable by Label Studio (URLs as they are, local files under the document root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labeling.media import LINK_DIR, media_ref
from mds.errors import LabelingError


def test_urls_pass_through(tmp_path: Path) -> None:
    ref = media_ref("https://cdn.example.org/a b.mp4", 1, "a", None)
    assert ref.url == "https://cdn.example.org/a b.mp4" and ref.storage_dir is None


def test_local_file_under_root_and_outside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "set 1").mkdir(parents=True)
    inside = root / "set 1" / "clip #1.mp4"
    inside.write_bytes(b"x")
    ref = media_ref(str(inside), 3, inside.name, root)
    assert ref.url == "/data/local-files/?d=set%201/clip%20%231.mp4"
    assert ref.storage_dir == str((root / "set 1").resolve()) and not ref.linked

    outside = tmp_path / "elsewhere" / "v.mp4"
    outside.parent.mkdir()
    outside.write_bytes(b"original")
    ref = media_ref(str(outside), 7, "v.mp4", root)
    link = root / LINK_DIR / "7-v.mp4"
    assert ref.linked and ref.url == f"/data/local-files/?d={LINK_DIR}/7-v.mp4"
    assert os.path.realpath(link) == str(outside.resolve()) and link.read_bytes() == b"original"
    assert media_ref(str(outside), 7, "v.mp4", root) == ref  # idempotent


def test_local_file_errors(tmp_path: Path) -> None:
    with pytest.raises(LabelingError, match="document root"):
        media_ref(str(tmp_path / "a.mp4"), 1, "a.mp4", None)
    with pytest.raises(LabelingError, match="file not found"):
        media_ref(str(tmp_path / "missing.mp4"), 1, "missing.mp4", tmp_path)
