"""Shared fixtures for tests against a real Label Studio server.

One server per test session on a free loopback port, with the same start code
as ``mds labelstudio start`` (:class:`labeling.server.LocalLabelStudio`). The
server's virtualenv (``<repo>/.venv-ls``) is created on first use
(:func:`labeling.server.install_label_studio`: idempotent, file-locked, about
70 s); ``MDS_LABEL_STUDIO_BIN`` points at an existing executable instead. Each
test makes its own projects.

Load with ``pytest_plugins = ["tests.labelstudio_fixtures"]``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A running Label Studio (:class:`LocalLabelStudio`); its document root is ``.document_root``."""
    from labeling.server import LocalLabelStudio, find_label_studio_bin, free_port, install_label_studio

    exe = find_label_studio_bin() if os.environ.get("MDS_LABEL_STUDIO_BIN") else install_label_studio()
    base = tmp_path_factory.mktemp("labelstudio")
    srv = LocalLabelStudio(
        data_dir=base / "data", document_root=base / "media", port=free_port(), executable=exe
    )
    srv.start(timeout=180)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def ls_running(ls_server):
    """The session server, restarted first if an earlier test stopped it."""
    if ls_server.process is None or ls_server.process.poll() is not None:
        ls_server.process = None
        ls_server.start(timeout=120)
    return ls_server


@pytest.fixture
def ls_client(ls_running):
    from labeling.client import LabelStudioClient

    return LabelStudioClient(ls_running.url, ls_running.token)


@dataclass
class Rater:
    """A scripted annotator: a real Label Studio user who submits through the API."""

    name: str
    user_id: int

    def rate(self, client, task_id: int, rating: float, *, control: str = "quality") -> int:
        result = [{"from_name": control, "to_name": "video", "type": "rating", "value": {"rating": rating}}]
        return client.create_annotation(task_id, result, completed_by=self.user_id, lead_time=2.5)

    def skip(self, client, task_id: int) -> int:
        return client.create_annotation(task_id, [], completed_by=self.user_id, was_cancelled=True)


@pytest.fixture(scope="session")
def ls_raters(ls_server) -> list[Rater]:
    """Five annotator accounts on the session server."""
    from labeling.client import LabelStudioClient

    c = LabelStudioClient(ls_server.url, ls_server.token)
    return [
        Rater(f"rater{i}@mds.local", c.create_user(f"rater{i}", f"rater{i}@mds.local")) for i in range(1, 6)
    ]


def make_round(
    session,
    videos_dir: Path,
    *,
    n: int,
    number: int = 1,
    evaluator: str | None = "vqr1",
    outside_dir: Path | None = None,
    prefix: str = "clip",
) -> list[int]:
    """Write ``n`` real clips, add them to the pool, and record round ``number`` selecting them in order.

    With ``outside_dir`` the last clip lives there (outside the document root).
    Base predictions (scores 1.4, 2.6, ...) are stored for ``evaluator``.
    Returns the video ids in pick order.
    """
    from mds.db.models import Prediction, Round, Selection, Video
    from tests.fixtures.clips import write_clip

    videos_dir.mkdir(parents=True, exist_ok=True)
    r = Round(
        number=number, strategy="mds", budget=n, seed=0, evaluator=evaluator, status="selected", steps={}
    )
    session.add(r)
    session.flush()
    ids = []
    for i in range(n):
        d = outside_dir if (outside_dir is not None and i == n - 1) else videos_dir
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{prefix}{number}_{i}.mp4"
        write_clip(path, seed=100 * number + i, n=8)
        v = Video(
            name=path.name, uri=str(path), split="pool", meta={"title": f"Clip {i}", "prompt": f"prompt {i}"}
        )
        session.add(v)
        session.flush()
        session.add(
            Selection(
                round_id=r.id,
                video_id=v.id,
                pick_order=i,
                difficulty=1.0 - i / n,
                diversity=0.5,
                total=1.5 - i / n,
                extra={},
            )
        )
        if evaluator:
            session.add(
                Prediction(
                    video_id=v.id,
                    evaluator=evaluator,
                    evaluator_version="t",
                    variant="",
                    score=1.4 + 1.2 * i,
                    parsed={},
                    parse_status="ok",
                )
            )
        ids.append(v.id)
    session.commit()
    return ids
