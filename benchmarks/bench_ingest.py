"""Ingest benchmark: a 100,000-row metadata-only manifest into SQLite and PostgreSQL, and probe throughput.

Run from the repository root::

    .venv/bin/python benchmarks/bench_ingest.py                 # 100k rows + 200 clips, both databases
    .venv/bin/python benchmarks/bench_ingest.py --rows 10000 --clips 50 --no-pg

The manifest goes through the same API as ``mds pool import --no-probe``: each row
becomes a video (metadata in ``Video.meta``), a ``manifest`` label (MOS, std,
count, scale) and an imported prediction (``pred_base``). The probe figure is
``mds pool add`` on generated H.264 clips (PyAV decode check + sha256), with one
thread and with the default thread pool. Wall-clock and CPU seconds of this process are
reported: on a shared machine the CPU figure is the steadier one (PostgreSQL's own CPU
time is not included in it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CATEGORIES = ["Animal", "Sports", "Vlog", "Gaming", "Music", "News", "Travel", "Food"]


def write_manifest(path: Path, rows: int, seed: int = 0) -> Path:
    """A CSV manifest with paths, metadata, MOS columns, a split and one prediction column."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "title", "tags", "category", "asr", "prompt", "dataset", "split", "mos", "mos_std",
                    "n_ratings", "scale_min", "scale_max", "pred_base"])  # fmt: skip
        for i in range(rows):
            cat = rng.choice(CATEGORIES)
            split = "test" if i % 5 == 0 else ("source" if i % 7 == 0 else "pool")
            w.writerow([
                f"/data/bench/videos/{cat}/v{i:07d}.mp4", f"{cat} clip {i}", json.dumps([cat.lower(), f"t{i % 50}"]),
                cat, f"spoken words of clip {i}", f"a {cat.lower()} scene, number {i}", f"ds{i % 3}", split,
                f"{rng.uniform(1, 5):.4f}", f"{rng.uniform(0.2, 1.0):.4f}", rng.randint(5, 30), 1, 5,
                f"{rng.uniform(1, 5):.4f}",
            ])  # fmt: skip
    return path


def fresh_sqlite(tmp: Path, name: str) -> str:
    from mds.db import migrate

    url = f"sqlite:///{tmp / name}"
    migrate.upgrade(url)
    return url


def fresh_pg(server: str) -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    from mds.db import migrate

    admin = make_url(server)
    name = f"mds_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(host=admin.host, port=admin.port or 5432, user=admin.username, dbname=admin.database,
                         autocommit=True) as conn:  # fmt: skip
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    return url


def drop_pg(server: str, url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    from mds.db.engine import get_engine

    get_engine(url).dispose()
    admin = make_url(server)
    with psycopg.connect(host=admin.host, port=admin.port or 5432, user=admin.username, dbname=admin.database,
                         autocommit=True) as conn:  # fmt: skip
        conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def bench_manifest(url: str, manifest: Path, backend: str) -> dict:
    from mds.pool import import_manifest, pool_stats

    t0, c0 = time.perf_counter(), time.process_time()
    s = import_manifest(url, manifest, probe=False)
    first, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert s.failed == 0 and s.added > 0, s.line()
    t0 = time.perf_counter()
    again = import_manifest(url, manifest, probe=False)
    second = time.perf_counter() - t0
    assert again.unchanged == s.added, again.line()
    st = pool_stats(url)
    assert st["videos"] == s.added and st["labelled"] == s.added
    return {"backend": backend, "rows": s.added, "import_s": round(first, 2), "rows_per_s": round(s.added / first),
            "import_cpu_s": round(first_cpu, 2), "reimport_unchanged_s": round(second, 2)}  # fmt: skip


def bench_probe(tmp: Path, clips: int, workers: list[int]) -> list[dict]:
    from mds.pool import add_paths
    from tests.fixtures.clips import write_clip

    folder = tmp / "clips"
    t0 = time.perf_counter()
    for i in range(clips):
        write_clip(folder / f"c{i:04d}.mp4", seed=i, n=64, width=320, height=240, gop=16)
    gen_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in folder.iterdir())
    out = []
    for w in workers:
        url = fresh_sqlite(tmp, f"probe_{w}.db")
        t0, c0 = time.perf_counter(), time.process_time()
        s = add_paths(url, [folder], workers=w)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert s.added == clips and s.failed == 0, s.line()
        out.append({"clips": clips, "clip": "320x240 H.264, 64 frames (4 s at 16 fps)", "mean_bytes": size // clips,
                    "workers": w, "seconds": round(dt, 2), "cpu_s": round(cpu, 2), "clips_per_s": round(clips / dt, 1),
                    "generate_s": round(gen_s, 1)})  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--workers", default="1,default", help="comma list of probe thread counts ('default' allowed)")
    ap.add_argument("--pg-server", default=os.environ.get("MDS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    from mds.pool import default_workers

    workers = [default_workers() if w == "default" else int(w) for w in args.workers.split(",") if w]
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "load_avg_start": os.getloadavg()}, "manifest": [], "probe": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        manifest = write_manifest(tmp / "manifest.csv", args.rows)
        results["manifest"].append(bench_manifest(fresh_sqlite(tmp, "bench.db"), manifest, "sqlite"))
        print(json.dumps(results["manifest"][-1]), flush=True)
        if not args.no_pg:
            url = fresh_pg(args.pg_server)
            try:
                results["manifest"].append(bench_manifest(url, manifest, "postgresql"))
            finally:
                drop_pg(args.pg_server, url)
            print(json.dumps(results["manifest"][-1]), flush=True)
        if args.clips:
            for r in bench_probe(tmp, args.clips, workers):
                results["probe"].append(r)
                print(json.dumps(r), flush=True)
    results["machine"]["load_avg_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results["machine"]))


if __name__ == "__main__":
    main()
