"""How predictable are the base model's errors on a demo pool? (the limit behind the outcome figures)

For each seed the CPU default base model f0 is trained on the labelled source set, and
its absolute error on every target-pool video is the truth. Each *signal* below scores
the pool without its labels (except the ceiling rows); the script reports
Spearman(signal, error) and the mean error of the signal's top 5% as a multiple of the
pool mean (what round 1 of a difficulty-only selection would pick).

Signals:

* ``g``: the default failure predictor (LoRA on f0 + head), trained on f0's in-sample
  source errors — round 1 of ``mds simulate`` / ``mds round start``;
* ``g, cross-fitted``: g trained on 5-fold out-of-fold source errors;
* ``g, leave-one-distortion-out``: out-of-fold errors where each fold is one source
  distortion kind (mimics meeting an unseen distortion);
* ``g, leave-content-out``: out-of-fold errors with whole contents held out (5 folds, the
  ``crossfit_by = "content"`` option of ``mds simulate``);
* ``MC-dropout spread``: std of f0's score over 32 passes with its dropout on;
* ``ensemble spread``: std of the scores of 5 base models trained with other seeds;
* ``ceiling: g on 80% of the pool's true errors``: 5-fold cross-validation on the
  target pool itself (about 150 labelled target videos per fold) — what g could reach
  with far more target labels than any round has;
* ``oracle``: the true error (the best possible top 5%);
* ``random``.

Run: ``.venv/bin/python benchmarks/outcome_diagnostics.py [POOL] [--seeds 5]`` (about a
minute on a built small pool: ``mds demo-pool --size small --out demo-out/pool --no-db``).
Prints a Markdown table and writes ``outcome-diagnostics.json`` next to the pool.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _grouped_oof_errors(X: np.ndarray, y: np.ndarray, grp: np.ndarray, folds: np.ndarray, seed: int) -> np.ndarray:
    """|out-of-fold prediction - MOS| with the base architecture, one model per fold value."""
    from mds.learning.arrays import crossfit_predictions

    return np.abs(crossfit_predictions(X, y, grp, seed=seed, fold_of=folds) - y)


def _mc_dropout_spread(model, X: np.ndarray, passes: int = 32, seed: int = 0) -> np.ndarray:
    import torch

    torch.manual_seed(seed)
    model.train()
    with torch.no_grad():
        scores = np.stack([model(torch.as_tensor(X, dtype=torch.float32)).numpy() for _ in range(passes)])
    model.eval()
    return scores.std(axis=0)


def run(pool: str, seeds: list[int]) -> dict:
    from scipy.stats import spearmanr

    from mds.learning import fit_failure_predictor, predict_difficulty, predict_quality, train_base
    from mds.learning.arrays import group_folds
    from mds.simulate.config import EncoderConfig
    from mds.simulate.data import load_pool_arrays

    a = load_pool_arrays(pool, EncoderConfig(model="ViT-S-32", pretrained="none", frames=4))
    src, tgt = a.source, a.pool
    Xs, ys, gs, Xp = a.X[src], a.mos[src], a.datasets[src], a.X[tgt]
    kinds = np.array([a.meta[i]["distortion"] for i in src])
    contents = np.array([a.meta[i]["content"] for i in src])
    k = max(1, round(0.05 * len(tgt)))
    rows: dict[str, list[tuple[float, float]]] = {}

    def record(name: str, score: np.ndarray, err: np.ndarray) -> None:
        top = np.argsort(-score, kind="stable")[:k]
        rows.setdefault(name, []).append((float(spearmanr(score, err).statistic), float(err[top].mean() / err.mean())))

    for seed in seeds:
        rng = np.random.default_rng(seed)
        f0 = train_base(Xs, ys, gs, seed=seed)
        err = np.abs(predict_quality(f0, Xp) - a.mos[tgt])

        def g_on(errors: np.ndarray, f0=f0, seed=seed) -> np.ndarray:
            return predict_difficulty(fit_failure_predictor(f0, Xs, errors, gs, seed=seed), Xp)

        # computed in this order (the cross-fitted folds draw from rng before the ceiling's folds)
        record("g (default: in-sample source errors)", g_on(np.abs(predict_quality(f0, Xs) - ys)), err)
        record("g, cross-fitted source errors",
               g_on(_grouped_oof_errors(Xs, ys, gs, rng.permutation(len(src)) % 5, seed)), err)
        record("g, leave-one-distortion-out errors", g_on(_grouped_oof_errors(Xs, ys, gs, kinds, seed)), err)
        record("g, leave-content-out errors", g_on(_grouped_oof_errors(Xs, ys, gs, group_folds(contents, 5, seed), seed)),
               err)
        record("MC-dropout spread of f0", _mc_dropout_spread(f0, Xp, seed=seed), err)
        record("ensemble spread (5 base models)", np.stack(
            [predict_quality(train_base(Xs, ys, gs, seed=1000 + 10 * seed + j), Xp) for j in range(5)]).std(0), err)
        # ceiling: g trained on the target pool's own true errors, 5-fold cross-validated
        folds = rng.permutation(len(tgt)) % 5
        cv = np.empty(len(tgt))
        for f in range(5):
            tr, te = folds != f, folds == f
            g = fit_failure_predictor(f0, Xp[tr], err[tr], seed=seed)
            cv[te] = predict_difficulty(g, Xp[te])
        record("ceiling: g on 80% of the pool's true errors (CV)", cv, err)
        record("oracle (true error)", err, err)
        record("random", rng.random(len(tgt)), err)

    summary = {
        name: {"spearman_mean": float(np.mean([r[0] for r in v])), "spearman_std": float(np.std([r[0] for r in v])),
               "top5pct_ratio_mean": float(np.mean([r[1] for r in v])),
               "top5pct_ratio_std": float(np.std([r[1] for r in v]))}
        for name, v in rows.items()
    }
    return {"pool": str(pool), "seeds": seeds, "n_source": len(src), "n_pool": len(tgt), "k": k, "signals": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pool", nargs="?", default="demo-out/pool")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    out = run(args.pool, list(range(args.seeds)))
    Path(args.pool, "outcome-diagnostics.json").write_text(json.dumps(out, indent=1))
    print(f"pool {out['pool']}: {out['n_source']} source, {out['n_pool']} pool videos; top 5% = {out['k']} videos; "
          f"{len(out['seeds'])} seeds (mean ± std)\n")
    print("| signal | Spearman(signal, f0's error) | error of its top 5% / pool mean |")
    print("|---|---|---|")
    for name, s in out["signals"].items():
        print(f"| {name} | {s['spearman_mean']:+.2f} ± {s['spearman_std']:.2f} | "
              f"{s['top5pct_ratio_mean']:.2f} ± {s['top5pct_ratio_std']:.2f}× |")


if __name__ == "__main__":
    main()
