"""Encoder loading (real open_clip paths with a tiny config), the vector store, embed_pool and imports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from mds.db.engine import session_scope
from mds.db.models import DifficultyScore, EmbeddingRecord, Video
from mds.errors import ConfigError
from mds.video.frames import SamplingConfig

TINY = "mds-tiny-clip"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def register_tiny_clip(tmp: Path) -> str:
    """Register the tiny open_clip config through the public API; returns its model name."""
    import open_clip

    if TINY not in open_clip.list_models():
        d = tmp / "clip_cfg"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{TINY}.json").write_text(json.dumps(TINY_CFG))
        open_clip.add_model_config(d)
    return TINY


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    return register_tiny_clip(tmp_path_factory.mktemp("tinyclip"))


def add_videos(db_url: str, paths: list[Path], split: str = "pool", dataset: str = "default",
               meta: list[dict] | None = None) -> list[int]:
    with session_scope(db_url) as s:
        vids = [Video(uri=str(p), name=p.name, split=split, dataset=dataset, meta=(meta[i] if meta else {}))
                for i, p in enumerate(paths)]
        s.add_all(vids)
        s.flush()
        return [v.id for v in vids]


def test_sampling_in_key_and_explicit_random_init(tiny_clip: str) -> None:
    from selection.embeddings.encoder import ClipEncoder, EncoderSpec

    with pytest.raises(ConfigError, match="--pretrained none"):
        EncoderSpec(model=tiny_clip).resolve()
    enc = ClipEncoder(EncoderSpec(model=tiny_clip, pretrained="none", sampling=SamplingConfig(num_frames=4)), device="cpu")
    assert enc.key == f"open_clip:{tiny_clip}:random-s0:F4"
    assert enc.dim == 32
    frames = np.random.default_rng(0).integers(0, 255, (5, 40, 50, 3), dtype=np.uint8)
    v = enc.encode(frames, batch_size=2)
    assert v.shape == (5, 32)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(v[0], v[1])


def test_random_init_is_seeded_and_leaves_the_global_rng_alone(tiny_clip: str) -> None:
    import torch

    from selection.embeddings.encoder import ClipEncoder, EncoderSpec

    spec = EncoderSpec(model=tiny_clip, pretrained="none", sampling=SamplingConfig(num_frames=4))
    frames = np.random.default_rng(1).integers(0, 255, (3, 40, 50, 3), dtype=np.uint8)
    torch.manual_seed(123)
    a = ClipEncoder(spec, device="cpu").encode(frames)
    after_first = torch.rand(1)
    torch.manual_seed(123)
    torch.rand(1)  # a different global RNG state must not change the weights
    b = ClipEncoder(spec, device="cpu").encode(frames)
    np.testing.assert_array_equal(a, b)  # same key, same vectors: runs and caches are reproducible
    torch.manual_seed(123)
    torch.rand(0)
    assert torch.equal(torch.rand(1), after_first)  # building an encoder does not consume the caller's RNG


def test_weights_file_and_dir_load_the_saved_weights(tiny_clip: str, tmp_path: Path) -> None:
    import open_clip
    import torch

    from selection.embeddings.encoder import ClipEncoder, EncoderSpec

    torch.manual_seed(1)
    model = open_clip.create_model(tiny_clip, pretrained=None)
    ckpt = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), ckpt)
    frames = np.random.default_rng(1).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    a = ClipEncoder(EncoderSpec(model=tiny_clip, pretrained=str(ckpt)), device="cpu")
    assert a.key.startswith(f"open_clip:{tiny_clip}:file-") and a.key.endswith(":F8")
    # The same weights reload bit-identically; a random init differs.
    b = ClipEncoder(EncoderSpec(model=tiny_clip, pretrained=str(ckpt)), device="cpu")
    r = ClipEncoder(EncoderSpec(model=tiny_clip, pretrained="none"), device="cpu")
    np.testing.assert_array_equal(a.encode(frames), b.encode(frames))
    assert not np.allclose(a.encode(frames), r.encode(frames))
    # HF-style directory: open_clip_config.json + weights.
    d = tmp_path / "wdir"
    d.mkdir()
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CFG, "preprocess_cfg": {}}))
    with pytest.raises(ConfigError, match="no checkpoint"):
        EncoderSpec(model=tiny_clip, pretrained=str(d)).resolve()
    torch.save(model.state_dict(), d / "open_clip_pytorch_model.bin")
    c = ClipEncoder(EncoderSpec(model=tiny_clip, pretrained=str(d)), device="cpu")
    np.testing.assert_allclose(c.encode(frames), a.encode(frames), atol=1e-5)


def test_missing_weights_are_one_line_errors(tiny_clip: str, tmp_path: Path) -> None:
    from selection.embeddings.encoder import ClipEncoder, EncoderSpec

    with pytest.raises(ConfigError, match="not found"):
        EncoderSpec(model=tiny_clip, pretrained=str(tmp_path / "nope.pt")).resolve()
    with pytest.raises(ConfigError, match="not in the local Hugging Face cache"):
        EncoderSpec(pretrained="hf-hub:nobody/no-such-clip").resolve()
    with pytest.raises(ConfigError) as e:
        ClipEncoder(EncoderSpec(model="ViT-B-32", pretrained="laion2b_s34b_b79k"), device="cpu")
    assert "\n" not in str(e.value)


def test_store_roundtrip_and_torn_tail(tmp_path: Path) -> None:
    from selection.embeddings.store import EmbeddingStore

    st = EmbeddingStore(tmp_path, "k:1", dim=4)
    a, b = np.ones((2, 4)), np.arange(12, dtype=np.float32).reshape(3, 4)
    (la, oa, _), (lb, ob, nb) = st.append([a, b])
    # Simulate a crash mid-write: half a row at the end of the shard.
    with open(st.root / la, "ab") as fh:
        fh.write(b"\x00" * 3)
    (lc, oc, nc), = st.append([np.full((1, 4), 7.0)])
    assert (oa, ob, oc) == (0, 2, 5)
    st2 = EmbeddingStore(tmp_path, "k:1")
    np.testing.assert_array_equal(st2.read(lb, ob, nb), b.astype(np.float16))
    np.testing.assert_array_equal(st2.read(lc, oc, nc), np.full((1, 4), 7.0, np.float16))
    st2.add_pooled([10, 11], np.eye(4)[:2])
    st2.add_pooled([11], np.eye(4)[2:3])  # replace
    np.testing.assert_array_equal(st2.pooled([11, 10]), np.eye(4)[[2, 0]].astype(np.float32))
    assert sorted(st2.indexed_ids().tolist()) == [10, 11]


def test_embed_pool_incremental_resumable_with_failures(db_url: str, clip_dir: Path, tmp_path: Path,
                                                        tiny_clip: str) -> None:
    from selection.embeddings.embed import embed_pool, sync_index
    from selection.embeddings.encoder import ClipEncoder, EncoderSpec
    from selection.embeddings.store import EmbeddingStore

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 300)
    clips = sorted(clip_dir.glob("*.mp4"))
    ids = add_videos(db_url, clips[:3] + [bad])
    enc = ClipEncoder(EncoderSpec(model=tiny_clip, pretrained="none", sampling=SamplingConfig(num_frames=4)), device="cpu")
    data = tmp_path / "data"
    r1 = embed_pool(db_url, data_dir=data, encoder=enc, batch_size=5, chunk_videos=2, progress=False)
    assert (r1.embedded, r1.failed, r1.skipped, r1.frames) == (3, 1, 0, 12)
    with session_scope(db_url) as s:
        recs = {r.video_id: r for r in s.scalars(select(EmbeddingRecord))}
    assert recs[ids[3]].status == "failed" and "BrokenVideoError" in recs[ids[3]].error
    assert all(recs[i].status == "ok" and recs[i].n_frames == 4 and recs[i].dim == 32 for i in ids[:3])
    st = EmbeddingStore(data, enc.key)
    stored = st.read(recs[ids[1]].location, recs[ids[1]].offset, 4)
    from mds.video.frames import sample_frames

    direct = enc.encode(sample_frames(clips[1], SamplingConfig(num_frames=4)).frames)
    np.testing.assert_allclose(stored.astype(np.float32), direct, atol=2e-3)
    # Incremental: nothing to do; a new clip is embedded alone; the failed one is not retried by default.
    new = add_videos(db_url, [clips[3]])
    r2 = embed_pool(db_url, data_dir=data, encoder=enc, progress=False)
    assert (r2.embedded, r2.failed, r2.skipped) == (1, 0, 4)
    # Crash between records and index: the next run repairs the index from the records.
    st.index_path.unlink()
    assert sync_index(db_url, st) == 4
    assert sorted(st.indexed_ids().tolist()) == sorted(ids[:3] + new)


def test_import_scores_and_embeddings(db_url: str, tmp_path: Path) -> None:
    from selection.embeddings.store import EmbeddingStore
    from selection.imports import import_embeddings, import_scores

    paths = [tmp_path / f"SDR_Music_{i}.mp4" for i in range(3)]
    ids = add_videos(db_url, paths)
    (tmp_path / "g.json").write_text(json.dumps({"SDR_Music_0.mp4": {"score": 3.0}, "SDR_Music_1": {"score": 2.0},
                                                 "unknown.mp4": {"score": 1.0}}))
    rep = import_scores(db_url, tmp_path / "g.json", predictor="sdr130")
    assert rep.imported == 2 and rep.unknown == ["unknown.mp4"]
    (tmp_path / "g2.txt").write_text("SDR_Music_2.mp4 4.5\nSDR_Music_0.mp4 3.5\n")
    import_scores(db_url, tmp_path / "g2.txt", predictor="sdr130")
    with session_scope(db_url) as s:
        got = dict(s.execute(select(DifficultyScore.video_id, DifficultyScore.score)
                             .where(DifficultyScore.predictor == "import:sdr130")).all())
    assert got == {ids[0]: 3.5, ids[1]: 2.0, ids[2]: 4.5}
    feats = np.random.default_rng(0).normal(size=(3, 5, 8)).astype(np.float32)
    np.savez(tmp_path / "e.npz", names=np.array([p.name for p in paths]), features=feats)
    rep = import_embeddings(db_url, tmp_path / "e.npz", encoder="import:rn101", data_dir=tmp_path / "d")
    assert rep.imported == 3
    # The per-video cache layout of the reference implementation (a folder of npz).
    cache = tmp_path / "cache"
    cache.mkdir()
    np.savez(cache / "SDR_Music_0_features.npz", features=feats[0] * 2, video_name="SDR_Music_0.mp4")
    import_embeddings(db_url, cache, encoder="import:rn101", data_dir=tmp_path / "d")
    with session_scope(db_url) as s:
        r = s.scalar(select(EmbeddingRecord).where(EmbeddingRecord.video_id == ids[0]))
    st = EmbeddingStore(tmp_path / "d", "import:rn101")
    np.testing.assert_allclose(st.read(r.location, r.offset, r.n_frames), feats[0] * 2, rtol=1e-3, atol=1e-3)
