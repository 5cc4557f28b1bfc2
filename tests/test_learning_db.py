"""The learning loop against the database (SQLite and PostgreSQL): base -> g -> scores -> fine-tune, lineage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from tests.fixtures.distortions import add_to_db, cached_set, shared_base


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = shared_base(tmp_path_factory)
    return {"source": cached_set(base, "source", 40, 31)[0], "pool": cached_set(base, "target", 30, 32)[0],
            "test": cached_set(base, "target", 20, 33)[0]}


def _setup(db_url: str, clips: dict) -> dict[str, list[int]]:
    return {split: add_to_db(db_url, cs, split=split) for split, cs in clips.items()}


def test_learning_loop_with_lineage(db_url: str, clips: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mds.db.engine import make_sessionmaker
    from mds.db.models import Checkpoint, DifficultyScore, Label, Prediction, Round
    from mds.evaluators.cpu_default import CpuDefaultEvaluator
    from mds.learning import checkpoints as ck
    from mds.learning.data import inputs_for
    from mds.learning.failure import load_failure_model, score_failure_predictor, train_failure_predictor
    from mds.learning.finetune import promote, run_finetune_job, train_base_model

    data = tmp_path / "data"
    monkeypatch.setenv("MDS_DATA_DIR", str(data))
    ids = _setup(db_url, clips)
    Session = make_sessionmaker(db_url)

    base = train_base_model(db_url)
    assert base["promoted"] and base["version"] == "v1"
    assert (Path(base["path"]) / "model.safetensors").is_file()

    g = train_failure_predictor(db_url, epochs=15)
    gdir = Path(ck.checkpoint_dir(data, "cpu-default", "failure_predictor", "g-cpu-default", "v1"))
    assert {"adapter_config.json", "adapter_model.safetensors", "head.safetensors", "failure.json"} <= {
        p.name for p in gdir.iterdir()}
    with Session() as s:
        row = s.get(Checkpoint, g.checkpoint_id)
        assert (row.kind, row.status, row.parent_id) == ("failure_predictor", "ready", base["checkpoint_id"])
        assert row.config["evaluator_version"] == g.evaluator_version
        # Supervision came from stored predictions of the base checkpoint on the labelled videos.
        n_pred = s.scalar(select(func.count()).select_from(Prediction).where(
            Prediction.evaluator == "cpu-default", Prediction.evaluator_version == g.evaluator_version))
        assert n_pred == len(ids["source"])
        assert ck.resolve_checkpoint(s, "g-cpu-default@v1").id == row.id
        assert ck.resolve_checkpoint(s, "g-cpu-default", kind="failure_predictor").id == row.id
        assert ck.resolve_checkpoint(s, str(row.id)).id == row.id

    rep = score_failure_predictor(db_url, "g-cpu-default@v1", batch_size=7)
    assert (rep.scored, rep.skipped, rep.failed) == (len(ids["pool"]), 0, 0)
    assert rep.tie_fraction is not None and rep.tie_fraction < 0.1
    again = score_failure_predictor(db_url)
    assert (again.scored, again.skipped) == (0, len(ids["pool"]))
    with Session() as s:
        rows = list(s.scalars(select(DifficultyScore).order_by(DifficultyScore.video_id)))
        assert {r.predictor for r in rows} == {"g-cpu-default@v1"} and {r.checkpoint_id for r in rows} == {row.id}
        # The reloaded predictor reproduces the stored scores.
        X, _ok, _ = inputs_for(s, data, "quality", [r.video_id for r in rows])
        np.testing.assert_allclose(load_failure_model(gdir).predict(X), [r.score for r in rows], rtol=0, atol=1e-6)

    # Same data and settings: the finished predictor is reused, no new row.
    assert train_failure_predictor(db_url, epochs=15).reused

    # One labelled round on the target pool, then the worker's fine-tuning job.
    with Session() as s:
        rnd = Round(number=1, strategy="mds", budget=12, evaluator="cpu-default")
        s.add(rnd)
        s.flush()
        for vid, c in list(zip(ids["pool"], clips["pool"], strict=True))[:12]:
            s.add(Label(video_id=vid, source="simulated", kind="scalar", mos=c.quality, round_id=rnd.id))
        s.commit()
        rid = rnd.id
    res = run_finetune_job(db_url, {"round_id": rid})
    assert res["round_id"] == rid and res["parent_id"] == base["checkpoint_id"] and res["round_ids"] == [rid]
    assert not res["promoted"]
    assert res["before"]["per_dataset"]["target"]["n"] == len(ids["test"])
    assert {"srcc", "plcc"} <= set(res["after"]["per_dataset"]["target"])
    ftdir = Path(res["path"])
    assert {"adapter_config.json", "adapter_model.safetensors", "lineage.json"} <= {p.name for p in ftdir.iterdir()}
    with Session() as s:
        assert ck.current_base_checkpoint(s, "cpu-default").id == base["checkpoint_id"]  # not promoted yet
    before_version = CpuDefaultEvaluator().version

    promote(db_url, res["checkpoint_id"])
    with Session() as s:
        cur = ck.current_base_checkpoint(s, "cpu-default")
        assert cur.id == res["checkpoint_id"] and cur.kind == "finetuned"
    ev = CpuDefaultEvaluator()  # finds the promoted model without a database (CURRENT file)
    assert Path(ev.checkpoint_path()) == ftdir.resolve()
    assert ev.version != before_version

    # The next fine-tune starts from the promoted one and stacks its adapter in the lineage.
    res2 = run_finetune_job(db_url, {"round_id": rid, "promote": True})
    lineage = json.loads((Path(res2["path"]) / "lineage.json").read_text())
    assert len(lineage["adapters"]) == 2 and res2["parent_id"] == res["checkpoint_id"] and res2["promoted"]
    with Session() as s:
        kinds = [r.kind for r in s.scalars(select(Checkpoint).order_by(Checkpoint.id))]
        assert kinds == ["base", "failure_predictor", "finetuned", "finetuned"]
        assert all(r.status == "ready" for r in s.scalars(select(Checkpoint)))


def test_imported_predictions_and_feature_head(db_url: str, clips: dict, tmp_path: Path) -> None:
    """A base mds cannot run: predictions imported as ``import:<name>``, g = ranking head on imported vectors."""
    from mds.db.engine import make_sessionmaker
    from mds.db.models import Checkpoint, Prediction
    from mds.learning.failure import score_failure_predictor, train_failure_predictor
    from mds.quality.store import features_for_paths

    ids = _setup(db_url, clips)
    rng = np.random.default_rng(0)
    with make_sessionmaker(db_url)() as s:
        for vid, c in zip(ids["source"], clips["source"], strict=True):
            # A model on a 0-100 scale that is reliable on blur and blind to noise.
            score = 100 - 60 * c.levels["blur"] + rng.normal(0, 2)
            s.add(Prediction(video_id=vid, evaluator="import:cnn", evaluator_version="file", score=score))
        s.commit()
    allclips = clips["source"] + clips["pool"]
    X = features_for_paths([c.path for c in allclips])
    feats = tmp_path / "feats.npz"
    np.savez(feats, names=np.array([c.path.name for c in allclips]), features=X)
    rep = train_failure_predictor(db_url, evaluator="import:cnn", features=f"file:{feats}", data_dir=tmp_path / "d",
                                  epochs=20)
    with make_sessionmaker(db_url)() as s:
        row = s.get(Checkpoint, rep.checkpoint_id)
        assert row.parent_id is None and row.config["mode"] == "features" and row.config["input"] == f"file:{feats}"
    sc = score_failure_predictor(db_url, rep.predictor, data_dir=tmp_path / "d")
    assert sc.scored == len(ids["pool"]) and sc.failed == 0


def test_errors_are_clear(db_url: str, tmp_path: Path) -> None:
    from mds.errors import TrainingError
    from mds.learning.failure import score_failure_predictor, train_failure_predictor
    from mds.learning.finetune import finetune, train_base_model

    with pytest.raises(TrainingError, match="train-base"):
        train_failure_predictor(db_url, data_dir=tmp_path)
    with pytest.raises(TrainingError, match="labelled source videos"):
        train_base_model(db_url, data_dir=tmp_path)
    with pytest.raises(TrainingError, match="failure train"):
        score_failure_predictor(db_url, data_dir=tmp_path)
    with pytest.raises(TrainingError, match="train-base"):
        finetune(db_url, data_dir=tmp_path)


def test_feature_head_on_stored_embeddings(db_url: str, clips: dict, tmp_path: Path) -> None:
    """``features=ENCODER`` reads pooled vectors from the embedding store (here: vectors imported under a key)."""
    from mds.learning.failure import score_failure_predictor, train_failure_predictor
    from mds.learning.finetune import train_base_model
    from selection.imports import import_embeddings

    ids = _setup(db_url, clips)
    data = tmp_path / "data"
    rng = np.random.default_rng(1)
    allclips = clips["source"] + clips["pool"]
    frames = {c.path.name: rng.normal(size=(3, 16)).astype(np.float32) for c in allclips}
    f = tmp_path / "emb.npz"
    np.savez(f, **frames)
    import_embeddings(db_url, f, encoder="toy-encoder", data_dir=data, normalise=True)
    train_base_model(db_url, data_dir=data, epochs=20)
    rep = train_failure_predictor(db_url, features="toy-encoder", data_dir=data, epochs=10)
    assert rep.predictor.startswith("g-cpu-default-toy-encoder@")
    sc = score_failure_predictor(db_url, rep.predictor, data_dir=data)
    assert sc.scored == len(ids["pool"]) and sc.failed == 0
