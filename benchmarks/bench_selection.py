"""Selection benchmarks (scripts, not tests).

exact:  exact MDS-VQA greedy vs a transcription of the reference per-pair loop on inputs shaped
        like the released run (N=1,624 videos x 30 frames x 512-d, K=64, g = the released sdr_130.json).
pooled: pooled-vector greedy at N = 10k / 100k / 1M x 512-d, K = 1,000: time, peak memory, and the
        time as a multiple of the memory-bandwidth bound (K passes over the N x d matrix).

    .venv/bin/python benchmarks/bench_selection.py exact [--reference-iters 64]
    .venv/bin/python benchmarks/bench_selection.py pooled --n 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SDR = ROOT.parent / "shared" / "data" / "mdsvqa-sdr" / "sdr_130.json"


def clustered_frames(n: int, f: int, d: int, seed: int = 0) -> np.ndarray:
    """Unit-norm frame vectors around per-video centres, stored as float16 (like CLIP features)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, d)).astype(np.float32)
    out = np.empty((n, f, d), dtype=np.float16)
    for i in range(n):
        v = centres[rng.integers(64)] + 0.8 * rng.normal(size=d).astype(np.float32)
        x = v[None, :] + 0.5 * rng.normal(size=(f, d)).astype(np.float32)
        out[i] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def reference_loop(g: np.ndarray, feats: list[np.ndarray], k: int, lam: float, iters: int) -> tuple[list[int], int]:
    """The reference per-pair loop (method.md §4), stopped after ``iters`` picks; returns picks and pair count."""
    from scipy.spatial.distance import cdist

    def chamfer(a: np.ndarray, b: np.ndarray) -> float:
        return float((cdist(a, b).min(axis=1).mean() + cdist(b, a).min(axis=1).mean()) / 2)

    n = len(g)
    first = int(np.argmax(g))
    sel = [first]
    s = np.zeros(n)
    pairs = 0
    for j in range(n):
        if j != first:
            s[j] = chamfer(feats[first], feats[j])
            pairs += 1
    for step in range(1, min(k, iters)):
        scores = np.full(n, -np.inf)
        for j in range(n):
            if j not in sel:
                scores[j] = g[j] + lam * s[j] / step
        new = int(np.argmax(scores))
        sel.append(new)
        if step + 1 < k:
            for j in range(n):
                if j not in sel:
                    s[j] += chamfer(feats[new], feats[j])
                    pairs += 1
    return sel, pairs


def bench_exact(args: argparse.Namespace) -> dict:
    from selection import select
    from selection.distances import FrameBank

    g_all = json.loads(SDR.read_text())
    g = np.array([v["score"] for v in g_all.values()], dtype=np.float64)
    n, f, d, k, lam = len(g), 30, 512, 64, 0.25
    feats16 = clustered_frames(n, f, d)
    res: dict = {"N": n, "F": f, "D": d, "K": k, "lambda": lam, "threads": 2}

    timings = {}
    modes = (
        ("float64", np.float64, False, False),
        ("float64+prune", np.float64, True, False),
        ("float32", np.float32, False, False),
        ("float32+prune", np.float32, True, False),
        ("float32+lazy", np.float32, False, True),
        ("float32+prune+lazy", np.float32, True, True),  # the default
    )
    for label, dtype, prune, lazy in modes:
        t0 = time.perf_counter()
        bank = FrameBank.from_list(feats16, dtype=dtype)
        t1 = time.perf_counter()
        r = select("mds", k, difficulty=g, features=bank, lambda_=lam, prune=prune, lazy=lazy)
        t2 = time.perf_counter()
        full = (k - 1) * r.params["evaluated"]  # one batched pass over all candidate rows per pick
        timings[label] = {"prepare_s": t1 - t0, "select_s": t2 - t1, "picks": r.positions,
                          "evaluated": r.params["evaluated"], "verified_pairs": r.params["verified_pairs"],
                          "distance_pairs": r.params["lazy_pairs"] if lazy else full}
    ours = timings["float64"]["picks"]

    feats64 = [x.astype(np.float64) for x in feats16]  # converted once (favours the reference)
    iters = min(args.reference_iters, k)
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    ref_picks, pairs = reference_loop(g, feats64, k, lam, iters)
    res["load_average_before_reference"] = load_before
    t_ref = time.perf_counter() - t0
    total_pairs = (n - 1) + sum(n - 1 - s for s in range(1, k - 1))
    ref_full = t_ref * total_pairs / pairs
    res["reference"] = {"iterations_run": iters, "pairs_run": pairs, "seconds_run": t_ref,
                        "pairs_full": total_pairs, "seconds_full": ref_full, "extrapolated": iters < k}
    res["same_picks"] = {lab: t["picks"][:iters] == ref_picks[:iters] for lab, t in timings.items()}
    for t in timings.values():
        t["speedup_vs_reference"] = ref_full / t["select_s"]
        t["speedup_incl_prepare"] = ref_full / (t["select_s"] + t["prepare_s"])
        t.pop("picks")
    res["ours"] = timings
    res["first_picks"] = ours[:10]
    res["load_average"] = os.getloadavg()
    return res


def measure_bandwidth(nbytes: int = 1 << 30) -> float:
    """Read bandwidth in GB/s (best of 5 numpy sums over a 1 GiB float32 array)."""
    a = np.ones(nbytes // 4, dtype=np.float32)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        a.sum()
        best = max(best, nbytes / (time.perf_counter() - t) / 1e9)
    return best


def bench_pooled_one(n: int, d: int, k: int, approx_m: int | None) -> dict:
    from selection import select
    from selection.distances import PooledBank

    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    g = rng.uniform(1, 5, n)
    bank = PooledBank(x)
    data_bytes = x.nbytes
    out = {"N": n, "d": d, "K": k, "data_MB": data_bytes / 1e6}
    for label, opts in (("exact", {"prune": False}), ("exact+prune", {"prune": True})):
        t = time.perf_counter()
        r = select("mds-pooled", k, difficulty=g, features=bank, lambda_=0.25, **opts)
        dt = time.perf_counter() - t
        out[label] = {"seconds": dt, "evaluated": r.params["evaluated"]}
        if label == "exact":
            exact = r
    # Extra memory of the greedy beyond the N x d matrix (independent of K): traced on a short run.
    tracemalloc.start()
    select("mds-pooled", 20, difficulty=g, features=bank, lambda_=0.25, prune=False)
    out["select_peak_extra_MB"] = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    if approx_m:
        t = time.perf_counter()
        a = select("mds-pooled", k, difficulty=g, features=bank, lambda_=0.25, prefilter_m=approx_m, prune=False)
        dt = time.perf_counter() - t
        out["approx_topM"] = {"M": approx_m, "seconds": dt,
                              "agreement": len(set(a.ids) & set(exact.ids)) / k,
                              "objective": a.objective(0.25), "objective_exact": exact.objective(0.25)}
    out["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    return out


def bench_pooled(args: argparse.Namespace) -> dict:
    rows = []
    for n in args.n:
        # One process per size so that the peak RSS belongs to that size alone.
        cmd = [sys.executable, __file__, "pooled-one", "--n", str(n), "--k", str(args.k)]
        if args.approx_m:
            cmd += ["--approx-m", str(args.approx_m)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        rows.append(r)
        print(json.dumps(r), file=sys.stderr)
    # Measured after the children: a child inherits the parent's peak RSS at fork.
    bw = measure_bandwidth()
    for r in rows:
        bound = args.k * r["N"] * r["d"] * 4 / (bw * 1e9)
        r["bandwidth_bound_s"] = bound
        r["x_bound"] = r["exact"]["seconds"] / bound
    return {"bandwidth_GBps": bw, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("exact")
    e.add_argument("--reference-iters", type=int, default=64)
    p = sub.add_parser("pooled")
    p.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--approx-m", type=int, default=10_000)
    one = sub.add_parser("pooled-one")
    one.add_argument("--n", type=int, required=True)
    one.add_argument("--k", type=int, default=1000)
    one.add_argument("--approx-m", type=int, default=None)
    args = ap.parse_args()
    if args.cmd == "exact":
        print(json.dumps(bench_exact(args), indent=2))
    elif args.cmd == "pooled":
        print(json.dumps(bench_pooled(args), indent=2))
    else:
        m = args.approx_m if args.approx_m and args.approx_m < args.n else None
        print(json.dumps(bench_pooled_one(args.n, 512, args.k, m)))


if __name__ == "__main__":
    main()
