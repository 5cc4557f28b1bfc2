"""The notebooks (jupytext percent scripts) execute top to bottom on the tiny demo pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.demo_helpers import tiny_pool_dir

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_pool_dir(tmp_path_factory)


def test_notebooks_are_there() -> None:
    names = {p.stem for p in NOTEBOOKS}
    assert {"strategy_comparison", "selection_anatomy", "label_studio_round"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, pool_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jupytext
    from nbclient import NotebookClient

    monkeypatch.setenv("MDS_NOTEBOOK_SIZE", "tiny")
    monkeypatch.setenv("MDS_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.setenv("MDS_NOTEBOOK_POOL", str(pool_dir))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("MDS_LABEL_STUDIO_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    nb = jupytext.read(path)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") in ("display_data", "execute_result") for o in outputs)
