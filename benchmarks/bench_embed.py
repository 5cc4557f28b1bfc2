"""Embedding throughput: decode + ViT-B-32 (random init, explicitly) on 2 CPU threads (a script, not a test).

ours:      ``embed_pool`` as ``mds embed`` runs it: F uniformly sampled frames per video, frames of
           several videos batched (64 per forward), decoding in a thread pool, vectors stored + indexed.
reference: the reference approach (method.md §3): decode every frame, one frame per forward pass.

Both run on the same generated clips.

    .venv/bin/python benchmarks/bench_embed.py [--clips 3 --frames-per-clip 150 --size 320x240 --F 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--frames-per-clip", type=int, default=150)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--F", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--model", default="ViT-B-32")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    from mds._compat import ensure_torchvision

    ensure_torchvision()
    from mds.db import migrate
    from mds.db.engine import session_scope
    from mds.db.models import Video
    from mds.video.frames import SamplingConfig
    from selection.embeddings.embed import embed_pool
    from selection.embeddings.encoder import ClipEncoder, EncoderSpec
    from tests.fixtures.clips import write_clip

    w, h = (int(x) for x in args.size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="bench_embed_"))
    clips = [write_clip(tmp / f"c{i}.mp4", n=args.frames_per_clip, width=w, height=h, fps=30, seed=i, gop=30)
             for i in range(args.clips)]
    total_frames = args.clips * args.frames_per_clip

    t = time.perf_counter()
    enc = ClipEncoder(EncoderSpec(model=args.model, pretrained="none", sampling=SamplingConfig(num_frames=args.F)),
                      device="cpu", threads=2)
    load_s = time.perf_counter() - t

    url = f"sqlite:///{tmp / 'b.db'}"
    migrate.upgrade(url)
    with session_scope(url) as s:
        s.add_all([Video(uri=str(c), name=c.name) for c in clips])
    t = time.perf_counter()
    rep = embed_pool(url, data_dir=tmp / "data", encoder=enc, batch_size=args.batch_size, progress=False)
    ours_s = time.perf_counter() - t
    assert rep.embedded == args.clips and rep.failed == 0
    print(json.dumps({"ours_seconds": ours_s, "frames": rep.frames}), file=sys.stderr, flush=True)

    import av
    from PIL import Image

    t = time.perf_counter()
    n_ref = 0
    with torch.inference_mode():
        for c in clips:
            with av.open(str(c)) as cont:
                feats = []
                for frame in cont.decode(video=0):  # every frame
                    x = enc.preprocess(Image.fromarray(frame.to_ndarray(format="rgb24"))).unsqueeze(0)
                    y = enc.model.encode_image(x)  # batch size 1
                    feats.append(torch.nn.functional.normalize(y, dim=-1).numpy())
                n_ref += len(feats)
    ref_s = time.perf_counter() - t

    out = {
        "model": f"{args.model} (random init)", "threads": 2, "clips": args.clips,
        "clip": f"{args.frames_per_clip} frames {w}x{h} @30fps", "model_load_s": load_s,
        "ours": {"frames_per_video": args.F, "batch": args.batch_size, "seconds": ours_s,
                 "videos_per_s": args.clips / ours_s, "frames_per_s": rep.frames / ours_s},
        "reference": {"frames_per_video": n_ref // args.clips, "batch": 1, "seconds": ref_s,
                      "videos_per_s": args.clips / ref_s, "frames_per_s": n_ref / ref_s},
    }
    out["speedup_videos_per_s"] = out["ours"]["videos_per_s"] / out["reference"]["videos_per_s"]
    out["frame_throughput_ratio"] = out["ours"]["frames_per_s"] / out["reference"]["frames_per_s"]
    assert n_ref == total_frames
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
