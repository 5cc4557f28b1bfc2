"""Interrupted training resumes from its saved state, follows the same path, and never duplicates rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from tests.fixtures.distortions import add_to_db, cached_set, shared_base


class Interrupt(KeyboardInterrupt):
    pass


def _stop_at(step: int):
    def on_step(s: int) -> None:
        if s == step:
            raise Interrupt()

    return on_step


@pytest.fixture(scope="module")
def arrays(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    clips, X = cached_set(shared_base(tmp_path_factory), "source", 40, 31)
    return X, np.array([c.quality for c in clips])


@pytest.mark.parametrize("save_every", [0, 3])
def test_array_training_resume_matches_uninterrupted(arrays, tmp_path: Path, save_every: int) -> None:
    from mds.learning.arrays import predict_quality, train_base
    from mds.learning.trainer import STATE_FILE, TrainConfig, train_pairwise

    X, q = arrays
    base = train_base(X, q, epochs=5)
    import torch

    def run(state_dir: Path | None, on_step=None):
        from mds.learning.arrays import lora_wrap

        torch.manual_seed(0)
        m = lora_wrap(base, r=4, alpha=8, dropout=0.1)  # dropout: the RNG state must be restored too
        Xt = torch.as_tensor(X)
        cfg = TrainConfig(epochs=6, batch_size=8, seed=1, save_every_steps=save_every, patience=0)
        res = train_pairwise(m, lambda idx: m(Xt[idx]), q, np.zeros(len(q)), np.arange(32), np.arange(32, 40), cfg,
                             state_dir=state_dir, on_step=on_step)
        return m, res

    ref, ref_res = run(None)
    with pytest.raises(Interrupt):
        run(tmp_path, _stop_at(13))  # mid-epoch 3 (4 batches per epoch)
    assert (tmp_path / STATE_FILE).is_file()
    resumed, res = run(tmp_path)
    assert res.resumed and res.steps == ref_res.steps == 24
    np.testing.assert_allclose(predict_quality(resumed, X), predict_quality(ref, X), rtol=0, atol=1e-6)


def test_failure_training_resumes_and_keeps_one_row(sqlite_url: str, tmp_path: Path,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    from mds.db.engine import make_sessionmaker
    from mds.db.models import Checkpoint
    from mds.learning.failure import train_failure_predictor
    from mds.learning.finetune import finetune, train_base_model

    clips, _ = cached_set(shared_base(tmp_path_factory), "source", 40, 31)
    add_to_db(sqlite_url, clips, split="source")
    data = tmp_path / "data"
    train_base_model(sqlite_url, data_dir=data, epochs=20)
    kw = {"data_dir": data, "epochs": 8, "patience": 0, "batch_size": 8}
    with pytest.raises(Interrupt):
        train_failure_predictor(sqlite_url, on_step=_stop_at(10), **kw)
    Session = make_sessionmaker(sqlite_url)
    with Session() as s:
        rows = list(s.scalars(select(Checkpoint).where(Checkpoint.kind == "failure_predictor")))
        assert [r.status for r in rows] == ["training"]
    rep = train_failure_predictor(sqlite_url, **kw)
    assert rep.resumed and not rep.reused
    with Session() as s:
        rows = list(s.scalars(select(Checkpoint).where(Checkpoint.kind == "failure_predictor")))
        assert [(r.status, r.version) for r in rows] == [("ready", "v1")]
        assert rows[0].id == rep.checkpoint_id
    # The resumed predictor equals one trained without interruption.
    fresh = train_failure_predictor(sqlite_url, force=True, **kw)
    assert fresh.predictor == "g-cpu-default@v2"
    assert fresh.metrics["train_spearman"] == pytest.approx(rep.metrics["train_spearman"], abs=1e-9)

    with pytest.raises(Interrupt):
        finetune(sqlite_url, data_dir=data, epochs=6, on_step=_stop_at(5))
    out = finetune(sqlite_url, data_dir=data, epochs=6)
    with Session() as s:
        rows = list(s.scalars(select(Checkpoint).where(Checkpoint.kind == "finetuned")))
        assert [(r.status, r.id) for r in rows] == [("ready", out["checkpoint_id"])]
        assert rows[0].metrics["resumed"] is True
