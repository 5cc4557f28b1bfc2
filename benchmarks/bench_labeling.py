"""Labelling throughput: aggregation of many ratings, and push / rate / pull against a real Label Studio.

    .venv/bin/python benchmarks/bench_labeling.py --videos 2000 --raters 5
    .venv/bin/python benchmarks/bench_labeling.py --ls-data-dir /tmp/ls-bench --ls-videos 200

The Label Studio part starts a local server (``labeling.server.LocalLabelStudio``) on a free port with the
given data directory (reuse one to skip the ~30 s first-start migrations), pushes a round of
``--ls-videos`` real clips, lets three scripted annotators rate every task through the API, and pulls.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bench_aggregate(n_videos: int, n_raters: int) -> dict[str, float]:
    import numpy as np

    from labeling.aggregate import recompute_labels, record_ratings
    from mds.db import migrate
    from mds.db.engine import make_sessionmaker
    from mds.db.models import Round, Video

    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{d}/bench.db"
        migrate.upgrade(url)
        rng = np.random.default_rng(0)
        with make_sessionmaker(url)() as s:
            r = Round(number=1, strategy="bench", budget=n_videos)
            s.add(r)
            vs = [Video(name=f"v{i}", uri=f"/pool/v{i}.mp4") for i in range(n_videos)]
            s.add_all(vs)
            s.flush()
            truth = rng.uniform(1, 5, n_videos)
            ratings = [
                (v.id, f"r{k}", float(np.clip(np.round(q + rng.normal(0, 0.6)), 1, 5)))
                for v, q in zip(vs, truth)
                for k in range(n_raters)
            ]
            t0 = time.perf_counter()
            record_ratings(s, r.id, ratings, recompute=False)
            s.commit()
            t1 = time.perf_counter()
            labels = recompute_labels(s, [v.id for v in vs], source="simulated", round_id=r.id)
            s.commit()
            t2 = time.perf_counter()
        return {"ratings": len(ratings), "record_s": t1 - t0, "aggregate_s": t2 - t1, "labels": len(labels)}


def bench_labelstudio(data_dir: Path, n_videos: int) -> dict[str, float]:
    from labeling.client import LabelStudioClient
    from labeling.pull import pull
    from labeling.push import PushOptions, push_round
    from labeling.server import LocalLabelStudio, free_port, install_label_studio
    from mds.db import migrate
    from mds.db.engine import make_sessionmaker
    from mds.db.models import Round, Selection, Video
    from tests.fixtures.clips import write_clip

    srv = LocalLabelStudio(
        data_dir=data_dir,
        document_root=data_dir.parent / "media",
        port=free_port(),
        executable=install_label_studio(),
    )
    t0 = time.perf_counter()
    srv.start(timeout=300)
    out = {"server_start_s": time.perf_counter() - t0}
    try:
        client = LabelStudioClient(srv.url, srv.token)
        with tempfile.TemporaryDirectory() as d:
            url = f"sqlite:///{d}/bench.db"
            migrate.upgrade(url)
            clips = srv.document_root / f"bench-{int(time.time())}"
            clips.mkdir(parents=True)
            with make_sessionmaker(url)() as s:
                r = Round(number=1, strategy="bench", budget=n_videos, status="selected")
                s.add(r)
                s.flush()
                for i in range(n_videos):
                    p = clips / f"c{i}.mp4"
                    write_clip(p, seed=i, n=8)
                    v = Video(name=p.name, uri=str(p))
                    s.add(v)
                    s.flush()
                    s.add(Selection(round_id=r.id, video_id=v.id, pick_order=i))
                s.commit()
                t0 = time.perf_counter()
                res = push_round(
                    s, client, 1, PushOptions(ratings_per_video=3, document_root=srv.document_root)
                )
                out["push_s"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                push_round(s, client, 1, PushOptions(ratings_per_video=3, document_root=srv.document_root))
                out["push_again_s"] = time.perf_counter() - t0
                users = [
                    client.create_user(f"b{k}-{int(time.time())}", f"b{k}-{int(time.time())}@bench.local")
                    for k in range(3)
                ]
                tasks = client.list_tasks(res.project_id, full=False)
                t0 = time.perf_counter()
                for t in tasks:
                    for k, u in enumerate(users):
                        client.create_annotation(
                            t["id"],
                            [
                                {
                                    "from_name": "quality",
                                    "to_name": "video",
                                    "type": "rating",
                                    "value": {"rating": 1 + (t["id"] + k) % 5},
                                }
                            ],
                            completed_by=u,
                        )
                out["annotate_per_call_ms"] = (time.perf_counter() - t0) / (3 * len(tasks)) * 1000
                t0 = time.perf_counter()
                pr = pull(s, client)
                out["pull_s"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                pull(s, client)
                out["pull_again_s"] = time.perf_counter() - t0
                out.update(tasks=len(tasks), annotations=pr.created, labels=pr.labels)
    finally:
        srv.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=2000)
    ap.add_argument("--raters", type=int, default=5)
    ap.add_argument(
        "--ls-data-dir", type=Path, default=None, help="run the Label Studio part with this data dir"
    )
    ap.add_argument("--ls-videos", type=int, default=200)
    a = ap.parse_args()
    for k, v in bench_aggregate(a.videos, a.raters).items():
        print(f"aggregate  {k:>22}: {v:.3f}" if isinstance(v, float) else f"aggregate  {k:>22}: {v}")
    if a.ls_data_dir:
        for k, v in bench_labelstudio(a.ls_data_dir.resolve(), a.ls_videos).items():
            print(f"labelstudio {k:>21}: {v:.3f}" if isinstance(v, float) else f"labelstudio {k:>21}: {v}")


if __name__ == "__main__":
    main()
