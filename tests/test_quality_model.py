"""The CPU default base model is a real model: it ranks held-out clips by their known distortion level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.distortions import add_to_db, make_set

N_TRAIN, N_TEST = 240, 80


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    from mds.db import migrate
    from mds.learning.finetune import train_base_model

    d = tmp_path_factory.mktemp("quality-model")
    url = f"sqlite:///{d / 'q.db'}"
    migrate.upgrade(url)
    clips = make_set(d / "clips", "mixed", N_TRAIN + N_TEST, seed0=11)
    train, test = clips[:N_TRAIN], clips[N_TRAIN:]
    add_to_db(url, train, split="source", dataset="mixed")
    test_ids = add_to_db(url, test, split="test", dataset="mixed")
    res = train_base_model(url, data_dir=d / "data")
    return url, d, res, test, test_ids


def test_heldout_srcc_on_known_distortions(trained) -> None:
    from mds.evaluators import create_evaluator
    from mds.evaluators.base import VideoInput
    from mds.metrics import correlations

    _url, d, res, test, test_ids = trained
    ev = create_evaluator("cpu-default", data_dir=str(d / "data"))
    results = ev.predict([VideoInput(path=str(c.path), video_id=i) for c, i in zip(test, test_ids, strict=True)])
    assert all(r.parse_status == "ok" for r in results)
    pred = np.array([r.pred_scalar for r in results])
    assert ((pred >= 1.0) & (pred <= 5.0)).all()
    c = correlations(pred, [t.quality for t in test])
    print(f"\ncpu-default held-out SRCC {c.srcc:.3f} PLCC {c.plcc:.3f} (n={c.n})")
    assert c.srcc >= 0.75
    # The registered checkpoint reports the same held-out figure.
    assert res["metrics"]["test"]["srcc"] == pytest.approx(c.srcc, abs=1e-9)


def test_error_is_absolute_difference_on_model_scale(trained) -> None:
    from mds.evaluators import create_evaluator
    from mds.evaluators.base import EvalResult

    _url, d, *_ = trained
    ev = create_evaluator("cpu-default", data_dir=str(d / "data"))
    assert ev.error(EvalResult(1, "ok", pred_scalar=3.5), 2.25) == pytest.approx(1.25)
    assert ev.error(EvalResult(1, "failed"), 2.0) is None


def test_version_follows_the_checkpoint_content(trained, tmp_path: Path) -> None:
    import shutil

    from mds.evaluators.cpu_default import CpuDefaultEvaluator
    from mds.quality.model import QualityNet

    _url, d, res, *_ = trained
    a = CpuDefaultEvaluator(checkpoint=res["path"], data_dir=str(d / "data"))
    moved = tmp_path / "moved"
    shutil.copytree(res["path"], moved)
    b = CpuDefaultEvaluator(checkpoint=str(moved), data_dir=str(tmp_path / "other"))
    assert a.version == b.version  # same weights, other location and cache dir: same version
    m = QualityNet.load(moved)
    with __import__("torch").no_grad():
        m.out.bias += 0.1
    m.save(moved)
    c = CpuDefaultEvaluator(checkpoint=str(moved))
    assert c.version != a.version


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    from mds.errors import EvaluatorError
    from mds.evaluators.base import VideoInput
    from mds.evaluators.cpu_default import CpuDefaultEvaluator

    ev = CpuDefaultEvaluator(data_dir=str(tmp_path))
    with pytest.raises(EvaluatorError, match="train-base"):
        ev.predict([VideoInput(path="x.mp4", video_id=1)])
