"""``mds simulate``: oracle replay on the tiny demo pool with the real learning and selection code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.demo_helpers import tiny_clip_model, tiny_pool_dir

FAST = {"base": {"epochs": 40}, "failure": {"epochs": 15}, "finetune": {"epochs": 15}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return tiny_pool_dir(tmp_path_factory), tiny_clip_model(tmp_path_factory)


def _cfg(pool: Path, model: str, out: Path, **kw):
    from mds.simulate import parse_config

    raw = {"pool": str(pool), "out": str(out), "strategies": ["random", "mds"], "budgets": ["3"], "seeds": [0, 1],
           "rounds": 2, "encoder": {"model": model, "pretrained": "none", "frames": 4}, **FAST, **kw}
    return parse_config(raw)


def test_config_files_and_errors(tmp_path: Path) -> None:
    from mds.errors import ConfigError
    from mds.simulate import load_config

    (tmp_path / "e.toml").write_text('pool = "p"\nseeds = [1, 2]\nbudgets = ["5%", 4]\nlambda = 0.5\n'
                                     '[encoder]\nmodel = "ViT-S-32"\n')
    cfg = load_config(tmp_path / "e.toml")
    assert cfg.pool == str((tmp_path / "p").resolve()) and cfg.budgets == ["5%", "4"] and cfg.lambda_ == 0.5
    (tmp_path / "e.json").write_text(json.dumps({"pool": "p", "strategies": ["mds", "coreset"]}))
    with pytest.raises(ConfigError, match="unknown strategies"):
        load_config(tmp_path / "e.json")
    (tmp_path / "f.json").write_text(json.dumps({"pool": "p", "budget": 3}))
    with pytest.raises(ConfigError, match="unknown keys"):
        load_config(tmp_path / "f.json")
    (tmp_path / "h.json").write_text(json.dumps({"pool": "p", "source_errors": "oracle"}))
    with pytest.raises(ConfigError, match="source_errors must be one of"):
        load_config(tmp_path / "h.json")
    assert cfg.source_errors == "in_sample" and cfg.target_errors == "selection" and cfg.g_ensemble == 1
    (tmp_path / "g.toml").write_text("pool = [")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(tmp_path / "g.toml")


def test_replay_is_reproducible_and_well_formed(setup: tuple[Path, str], tmp_path: Path) -> None:
    from mds.simulate import load_pool_arrays, run_simulation

    pool, model = setup
    cfg = _cfg(pool, model, tmp_path / "out")
    arrays = load_pool_arrays(cfg.pool, cfg.encoder)
    assert arrays.frames.shape[:2] == (40, 4) and arrays.X.shape[0] == 40
    a = run_simulation(cfg, arrays=arrays)
    b = run_simulation(cfg, arrays=arrays)
    assert a.rounds == b.rounds and a.picks == b.picks
    df = a.frame()
    assert len(df) == 2 * 2 * 3  # seeds x strategies x (round 0 + 2 rounds)
    # round 0 is the shared base model of the seed
    r0 = df[df["round"] == 0].set_index(["seed", "strategy"])["test_srcc"]
    for seed in (0, 1):
        assert r0[(seed, "random")] == r0[(seed, "mds")]
    picks = a.picks_frame()
    pool_rows = set(arrays.pool.tolist())
    for (seed, strat), grp in picks.groupby(["seed", "strategy"]):
        assert len(grp) == 6 and grp.row.is_unique and set(grp.row) <= pool_rows
    mds_picks = picks[picks.strategy == "mds"]
    assert mds_picks.difficulty.notna().all() and (mds_picks.pick_order > 0).any()
    assert mds_picks[mds_picks.pick_order > 0].diversity.notna().all()
    rest = df[df["round"] > 0]
    assert rest.error_ratio.gt(0).all() and rest.sel_diversity.gt(0).all()
    assert np.isfinite(rest.test_srcc).all()
    # labels come from the simulated panel: close to, but not exactly, the pseudo-MOS
    assert 0 < picks.eval("abs(label - true_mos)").mean() < 1.0


def test_oracle_labels_and_seeds_matter(setup: tuple[Path, str], tmp_path: Path) -> None:
    from mds.simulate import load_pool_arrays, run_simulation

    pool, model = setup
    cfg = _cfg(pool, model, tmp_path, labels="oracle", strategies=["random"], rounds=1)
    res = run_simulation(cfg, arrays=load_pool_arrays(cfg.pool, cfg.encoder))
    p = res.picks_frame()
    assert (p.label == p.true_mos).all()
    assert set(p[p.seed == 0].row) != set(p[p.seed == 1].row)


def test_cli_writes_results_plots_and_report(setup: tuple[Path, str], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mds.cli import app
    from mds.simulate import SimResult

    pool, model = setup
    cfg = {"pool": str(pool), "strategies": ["random", "mds", "difficulty"], "budgets": ["3"], "seeds": [0],
           "rounds": 1, "encoder": {"model": model, "pretrained": "none", "frames": 4}, **FAST}
    (tmp_path / "exp.json").write_text(json.dumps(cfg))
    res = CliRunner().invoke(app, ["simulate", str(tmp_path / "exp.json"), "--out", str(tmp_path / "res"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    for key in ("json", "rounds", "picks", "curves", "map", "error_ratio", "report"):
        assert Path(out["outputs"][key]).is_file(), key
    loaded = SimResult.load(tmp_path / "res")
    assert {r["strategy"] for r in loaded.rounds} == {"random", "mds", "difficulty"}
    html = (tmp_path / "res" / "report.html").read_text()
    assert html.count("data:image/png;base64") >= 4
    assert set(out["error_ratio"]) == {"random", "mds", "difficulty"}
    import pandas as pd

    assert len(pd.read_parquet(tmp_path / "res" / "rounds.parquet")) == 6


def test_g_learns_from_out_of_sample_errors(setup: tuple[Path, str], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """g's supervision: cross-fitted errors on the source set and, for picks, the error of the model
    in use when they were selected (not of a model already fine-tuned on their labels)."""
    import mds.learning
    from mds.learning import predict_quality, train_base
    from mds.learning.arrays import crossfit_predictions
    from mds.simulate import load_pool_arrays, run_simulation

    real = mds.learning.fit_failure_predictor
    calls: list[tuple[np.ndarray, np.ndarray]] = []

    def recording(base, X, err, groups, **kw):  # records the supervision, then trains for real
        calls.append((np.array(X), np.array(err)))
        return real(base, X, err, groups, **kw)

    monkeypatch.setattr(mds.learning, "fit_failure_predictor", recording)
    pool, model = setup
    cfg = _cfg(pool, model, tmp_path, strategies=["mds"], seeds=[0], source_errors="crossfit")
    a = load_pool_arrays(cfg.pool, cfg.encoder)
    res = run_simulation(cfg, arrays=a)
    src = a.source
    assert len(calls) == 2 and len(calls[0][1]) == len(src) and len(calls[1][1]) == len(src) + 3
    oof = crossfit_predictions(a.X[src], a.mos[src], a.datasets[src], folds=cfg.crossfit_folds, seed=0, **cfg.base)
    for _, err in calls:
        np.testing.assert_allclose(err[: len(src)], np.abs(oof - a.mos[src]), rtol=1e-6)
    base = train_base(a.X[src], a.mos[src], a.datasets[src], seed=0, **cfg.base)
    assert np.abs(oof - a.mos[src]).mean() > np.abs(predict_quality(base, a.X[src]) - a.mos[src]).mean()
    r1 = res.picks_frame().query("round == 1").sort_values("pick_order")
    # round 1 selects with the base model: its prediction then is what round 2's g learns from
    np.testing.assert_allclose(r1.pred_at_selection, predict_quality(base, a.X[r1.row.to_numpy()]), rtol=1e-6)
    np.testing.assert_allclose(calls[1][1][len(src):], np.abs(r1.pred_at_selection - r1.label), rtol=1e-6)

    # the in-sample rule (kept for comparison) gives different supervision for the same picks
    calls.clear()
    run_simulation(_cfg(pool, model, tmp_path, strategies=["mds"], seeds=[0], source_errors="in_sample",
                        target_errors="current"), arrays=a)
    in_sample = calls[1][1]
    assert not np.allclose(in_sample[len(src):], np.abs(r1.pred_at_selection - r1.label))
    assert in_sample[: len(src)].mean() < np.abs(oof - a.mos[src]).mean()


def test_crossfit_by_content_holds_out_whole_contents(setup: tuple[Path, str], tmp_path: Path) -> None:
    from mds.errors import ConfigError
    from mds.learning.arrays import crossfit_predictions, group_folds
    from mds.simulate import load_pool_arrays
    from mds.simulate.replay import source_errors

    labels = ["a", "b", "a", "c", "d", "b", "e", "e"]
    folds = group_folds(labels, 3, seed=1)
    for lab in set(labels):  # a group never straddles two folds
        assert len({int(f) for f, v in zip(folds, labels) if v == lab}) == 1
    assert set(folds.tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(folds, group_folds(labels, 3, seed=1))
    with pytest.raises(ValueError, match="distinct groups"):
        group_folds(["a", "a", "b"], 3)

    pool, model = setup
    cfg = _cfg(pool, model, tmp_path, strategies=["mds"], seeds=[0], source_errors="crossfit",
               crossfit_by="content", crossfit_folds=3)
    a = load_pool_arrays(cfg.pool, cfg.encoder)
    src = a.source
    contents = [a.meta[i]["content"] for i in src]
    oof = crossfit_predictions(a.X[src], a.mos[src], a.datasets[src], seed=0, fold_of=group_folds(contents, 3, 0),
                               **cfg.base)
    err = source_errors(a, cfg, None, 0)
    np.testing.assert_allclose(err, np.abs(oof - a.mos[src]), rtol=1e-6)
    # random folds (no crossfit_by) give other supervision
    assert not np.allclose(err, source_errors(a, _cfg(pool, model, tmp_path, source_errors="crossfit",
                                                      crossfit_folds=3), None, 0))
    with pytest.raises(ConfigError, match="no metadata key"):
        source_errors(a, _cfg(pool, model, tmp_path, source_errors="crossfit", crossfit_by="camera"), None, 0)
