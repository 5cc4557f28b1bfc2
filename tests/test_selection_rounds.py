"""select_round on both database backends: candidates, filters, context, audit rows, reproducibility."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from mds.db.engine import session_scope
from mds.db.models import Label, Round, Selection
from mds.errors import SelectionError
from selection import CandidateFilter, select_round
from selection import select as select_mem
from tests.test_selection_embeddings import add_videos
from tests.test_selection_exactness import reference_greedy, synthetic


def seed_pool(db_url: str, tmp_path: Path, n: int = 30, f: int = 4, d: int = 8) -> tuple[list[int], list[float], list]:
    """Videos as ORM rows, scores and frame vectors imported through the public import functions."""
    from selection.imports import import_embeddings, import_scores

    g, feats = synthetic(n, f, d, seed=7, dup=2)
    paths = [tmp_path / f"v{i:03d}.mp4" for i in range(n)]
    meta = [{"category": "Music" if i % 3 == 0 else "Sports"} for i in range(n)]
    ids = add_videos(db_url, paths, dataset="sdr", meta=meta)
    (tmp_path / "g.txt").write_text("".join(f"{p.name} {x}\n" for p, x in zip(paths, g)))
    import_scores(db_url, tmp_path / "g.txt", predictor="g1")
    np.savez(tmp_path / "e.npz", names=np.array([p.name for p in paths]), features=np.stack(feats))
    import_embeddings(db_url, tmp_path / "e.npz", encoder="import:clip", data_dir=tmp_path / "data")
    return ids, g, feats


def test_select_round_mds_matches_reference(db_url: str, tmp_path: Path) -> None:
    ids, g, feats = seed_pool(db_url, tmp_path)
    rnd = select_round(db_url, strategy="mds", budget=8, data_dir=tmp_path / "data")
    # Stored vectors are float16; the features above were fp16-rounded too, so the reference sees the same data.
    expected = reference_greedy(g, feats, 8, 0.25)
    assert [s.video_id for s in rnd.selections] == [ids[i] for i in expected]
    assert rnd.status == "selected" and rnd.number == 1 and rnd.lambda_ == 0.25
    assert rnd.encoder == "import:clip" and rnd.config["predictor"] == "import:g1"
    assert rnd.config["strategy_params"]["lambda"] == 0.25 and rnd.config_hash
    s0, s1 = rnd.selections[0], rnd.selections[1]
    assert s0.pick_order == 0 and s0.diversity is None and s0.total == s0.difficulty == max(g)
    assert s1.total == pytest.approx(s1.difficulty + 0.25 * s1.diversity)
    assert {"rank_difficulty", "margin", "runner_up"} <= set(s1.extra)
    # Videos of an unfinished round are in flight: the next round picks others.
    rnd2 = select_round(db_url, strategy="mds", budget="10%", data_dir=tmp_path / "data")
    assert rnd2.number == 2 and rnd2.budget == 3  # 10% of the filtered pool of 30 (8 already picked)
    assert not {s.video_id for s in rnd.selections} & {s.video_id for s in rnd2.selections}
    assert rnd2.config["filters"]["exclude_in_flight"] is True
    with pytest.raises(SelectionError, match="already exists"):
        select_round(db_url, strategy="random", budget=2, round_number=1)
    # Filling a round created beforehand (the rounds orchestration does this).
    with session_scope(db_url) as s:
        pre = Round(number=7, strategy="pending", budget=0, status="embedded", config={"experiment": "x"}, steps={"score": {}})
        s.add(pre)
        s.flush()
        pre_id = pre.id
    filled = select_round(db_url, strategy="difficulty", budget=2, round_id=pre_id)
    assert filled.id == pre_id and filled.number == 7 and filled.status == "selected"
    assert filled.config["experiment"] == "x" and filled.strategy == "difficulty" and "score" in filled.steps
    assert len(filled.selections) == 2
    with pytest.raises(SelectionError, match="already has a selection"):
        select_round(db_url, strategy="difficulty", budget=2, round_id=pre_id)


def test_filters_labelled_context_and_seeded_random(db_url: str, tmp_path: Path) -> None:
    ids, g, feats = seed_pool(db_url, tmp_path)
    with session_scope(db_url) as s:
        s.add_all([Label(video_id=ids[i], source="manifest", mos=3.0) for i in (0, 1, 2)])
    flt = CandidateFilter(meta={"category": "Music"})
    r = select_round(db_url, strategy="difficulty", budget=4, filters=flt, data_dir=tmp_path / "data")
    picked = [s.video_id for s in r.selections]
    music = [ids[i] for i in range(len(ids)) if i % 3 == 0 and i not in (0, 1, 2)]
    assert set(picked) <= set(music)
    assert r.steps["select"]["candidates"]["labelled"] == 1  # video 0 is Music and labelled
    # count_labelled: labelled videos act as already selected in the diversity term.
    rc = select_round(db_url, strategy="mds", budget=3, count_labelled=True, lambda_=3.0,
                      filters=CandidateFilter(exclude_in_flight=False), data_dir=tmp_path / "data")
    assert rc.config["count_labelled"] and rc.steps["select"]["candidates"]["context"] == 3
    assert rc.selections[0].diversity is not None
    cand = [i for i in range(len(ids)) if i >= 3]
    mem = select_mem("mds", 3, ids=[ids[i] for i in cand], difficulty=[g[i] for i in cand],
                     features=[feats[i].astype(np.float16) for i in cand],
                     context_features=[feats[i].astype(np.float16) for i in (0, 1, 2)], lambda_=3.0)
    assert [s.video_id for s in rc.selections] == mem.ids
    a = select_round(db_url, strategy="random", budget=5, seed=3, filters=CandidateFilter(exclude_in_flight=False))
    b = select_round(db_url, strategy="random", budget=5, seed=3, filters=CandidateFilter(exclude_in_flight=False))
    assert [s.video_id for s in a.selections] == [s.video_id for s in b.selections]
    assert a.config_hash == b.config_hash and a.seed == 3
    with session_scope(db_url) as s:
        assert s.scalar(select(Round).where(Round.id == a.id)).strategy == "random"
        assert len(s.scalars(select(Selection).where(Selection.round_id == a.id)).all()) == 5


def test_errors_are_one_line(db_url: str, tmp_path: Path) -> None:
    seed_pool(db_url, tmp_path, n=6)
    with pytest.raises(SelectionError, match="exceeds"):
        select_round(db_url, strategy="difficulty", budget=50)
    with pytest.raises(SelectionError, match="unknown strategy"):
        select_round(db_url, strategy="nope", budget=2)
    with pytest.raises(SelectionError, match="no candidates"):
        select_round(db_url, strategy="random", budget=2, filters=CandidateFilter(split="test"))
    with pytest.raises(SelectionError, match="not a count"):
        select_round(db_url, strategy="random", budget="many")


def test_difficulty_round_on_sdr_pool_reproduces_released_figure(sqlite_url: str, shared_dir: Path, tmp_path: Path) -> None:
    """The 1,624 SDR pool as rows in sdr_130 order (= ascending id), scores imported, top-64 by the strategy."""
    import json

    from mds.metrics import evaluate_files
    from selection.imports import import_scores

    sdr = shared_dir / "data" / "mdsvqa-sdr"
    names = list(json.loads((sdr / "sdr_130.json").read_text()))
    ids = add_videos(sqlite_url, [tmp_path / n for n in names], dataset="sdr")
    rep = import_scores(sqlite_url, sdr / "sdr_130.json", predictor="sdr_130")
    assert rep.imported == 1624 and not rep.unknown
    rnd = select_round(sqlite_url, strategy="difficulty", budget=64)
    by_id = dict(zip(ids, names))
    picked = [by_id[s.video_id] for s in rnd.selections]
    m, _ = evaluate_files(sdr / "baseline_sdr.scores.json", sdr / "sdr_mos.txt", subset=picked)
    assert (round(m.srcc, 4), round(m.plcc, 4)) == (0.3175, 0.3846)
