"""Correlation metrics of VQA: SRCC, KRCC, PLCC and RMSE after the VQEG 4-parameter logistic fit.

The fit follows the MDS-VQA evaluation code (method.md §6.1)::

    y_hat = (b1 - b2) / (1 + exp(-(x - b3) / b4)) + b2
    b0 = [max(mos), min(mos), mean(pred), std(pred) / 4],  scipy curve_fit(maxfev=10000)

If the fitted values contain NaN or are constant (or the fit fails), the raw
predictions are used instead. SRCC, KRCC, PLCC and RMSE are then computed between
the fitted values and the MOS. SRCC and KRCC are invariant to the (monotone) fit
only while it stays strictly increasing; as in the reference, they are computed on
the fitted values.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "Correlations",
    "correlations",
    "evaluate_files",
    "fit_logistic4",
    "logistic4",
    "read_scores",
]


@dataclass(frozen=True)
class Correlations:
    """Agreement between predictions and MOS (``fitted``: whether the 4PL fit was used)."""

    srcc: float
    krcc: float
    plcc: float
    rmse: float
    n: int
    fitted: bool

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The VQEG 4-parameter logistic ``(b1 - b2) / (1 + exp(-(x - b3) / b4)) + b2``."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return (b1 - b2) / (1.0 + np.exp(-(x - b3) / b4)) + b2


def fit_logistic4(pred: np.ndarray, mos: np.ndarray) -> tuple[np.ndarray, bool]:
    """Map predictions onto the MOS scale with the 4PL fit; ``(values, fitted)``.

    Falls back to the raw predictions when the fit fails, yields NaN or is constant.
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    beta0 = [float(np.max(mos)), float(np.min(mos)), float(np.mean(pred)), float(np.std(pred)) / 4.0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            popt, _ = curve_fit(logistic4, pred, mos, p0=beta0, maxfev=10000)
        fitted = logistic4(pred, *popt)
    except (RuntimeError, ValueError, ZeroDivisionError, TypeError):  # TypeError: fewer points than parameters
        return pred, False
    if np.isnan(fitted).any() or np.ptp(fitted) == 0:
        return pred, False
    return fitted, True


def _validate(pred: Iterable[float], mos: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(list(pred) if not isinstance(pred, np.ndarray) else pred, dtype=np.float64).ravel()
    m = np.asarray(list(mos) if not isinstance(mos, np.ndarray) else mos, dtype=np.float64).ravel()
    if p.shape != m.shape:
        raise ValueError(f"predictions and MOS differ in length ({p.size} vs {m.size})")
    if p.size < 3:
        raise ValueError(f"need at least 3 (prediction, MOS) pairs, got {p.size}")
    if not (np.isfinite(p).all() and np.isfinite(m).all()):
        raise ValueError("predictions and MOS must be finite numbers")
    return p, m


def correlations(pred: Iterable[float], mos: Iterable[float], *, fit: bool = True) -> Correlations:
    """SRCC, KRCC, PLCC and RMSE of ``pred`` against ``mos`` (after the 4PL fit unless ``fit=False``)."""
    p, m = _validate(pred, mos)
    return _correlations(p, m, fit=fit)


def _correlations(p: np.ndarray, m: np.ndarray, *, fit: bool) -> Correlations:
    from scipy import stats

    y, fitted = fit_logistic4(p, m) if fit else (p, False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: NaN correlation, reported as such
        srcc = float(stats.spearmanr(y, m).statistic)
        krcc = float(stats.kendalltau(y, m).statistic)
        plcc = float(stats.pearsonr(y, m).statistic) if np.ptp(y) > 0 and np.ptp(m) > 0 else math.nan
    rmse = float(np.sqrt(np.mean((y - m) ** 2)))
    return Correlations(srcc=srcc, krcc=krcc, plcc=plcc, rmse=rmse, n=int(p.size), fitted=fitted)


# --- score files ---------------------------------------------------------------------------------


def read_scores(path: str | Path) -> dict[str, float]:
    """Read ``{name: score}`` from a score file, in file order.

    Formats: ``name value`` text lines (space or tab separated; ``#`` comments),
    JSON ``{name: score}`` or ``{name: {"score": x, ...}}`` or a list of
    ``{"name": ..., "score": ...}``, CSV with a header (a name column: ``name``,
    ``video``, ``file`` or ``id``; a score column: ``score``, ``mos``,
    ``prediction``, ``value`` — else the first two columns), and Parquet with the
    same columns.
    """
    from mds.errors import ParseError

    path = Path(path)
    if not path.is_file():
        raise ParseError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return _scores_from_json(json.loads(path.read_text(encoding="utf-8")), path)
        if suffix in (".csv", ".tsv", ".parquet", ".pq"):
            return _scores_from_table(path)
        return _scores_from_text(path)
    except ParseError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise ParseError(f"{path}: cannot read scores: {e}") from None


def _scores_from_json(obj: object, path: Path) -> dict[str, float]:
    from mds.errors import ParseError

    out: dict[str, float] = {}
    if isinstance(obj, Mapping):
        for name, v in obj.items():
            if isinstance(v, Mapping):
                if "score" not in v:
                    raise ParseError(f"{path}: entry {name!r} has no 'score'")
                v = v["score"]
            out[str(name)] = _as_float(v, name, path)
        return out
    if isinstance(obj, list):
        for i, row in enumerate(obj):
            if not isinstance(row, Mapping):
                raise ParseError(f"{path}: item {i} is not an object")
            name = row.get("name", row.get("video"))
            if name is None or "score" not in row:
                raise ParseError(f"{path}: item {i} needs 'name' and 'score'")
            out[str(name)] = _as_float(row["score"], name, path)
        return out
    raise ParseError(f"{path}: expected a JSON object or list")


def _as_float(v: object, name: object, path: Path) -> float:
    from mds.errors import ParseError

    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ParseError(f"{path}: score of {name!r} is not a number: {v!r}") from None
    if not math.isfinite(x):
        raise ParseError(f"{path}: score of {name!r} is not finite")
    return x


NAME_COLUMNS = ("name", "video", "video_name", "file", "filename", "path", "uri", "id")
SCORE_COLUMNS = ("score", "mos", "prediction", "pred", "value", "difficulty")


def _scores_from_table(path: Path) -> dict[str, float]:
    import pandas as pd

    from mds.errors import ParseError

    if path.suffix.lower() in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    if df.shape[1] < 2:
        raise ParseError(f"{path}: need a name column and a score column")
    cols = {str(c).lower(): c for c in df.columns}
    name_col = next((cols[c] for c in NAME_COLUMNS if c in cols), df.columns[0])
    score_col = next((cols[c] for c in SCORE_COLUMNS if c in cols and cols[c] != name_col), None)
    if score_col is None:
        score_col = next(c for c in df.columns if c != name_col)
    return {str(n): _as_float(s, n, path) for n, s in zip(df[name_col], df[score_col])}


def _scores_from_text(path: Path) -> dict[str, float]:
    from mds.errors import ParseError

    out: dict[str, float] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        if len(parts) < 2:
            raise ParseError(f"{path}:{lineno}: expected 'name value'")
        name, value = " ".join(parts[:-1]), parts[-1]
        out[name] = _as_float(value, name, Path(f"{path}:{lineno}"))
    return out


def _match_key(name: str) -> str:
    """Names match with or without a video suffix (the reference strips ``.mp4`` when matching)."""
    base = name.rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return stem if dot and ext.lower() in {"mp4", "mkv", "mov", "webm", "avi", "m4v", "yuv"} else base


def _load_pair(
    predictions: str | Path | Mapping[str, float], labels: str | Path | Mapping[str, float]
) -> tuple[dict[str, float], dict[str, float]]:
    pred = predictions if isinstance(predictions, Mapping) else read_scores(predictions)
    lab = labels if isinstance(labels, Mapping) else read_scores(labels)
    return {_match_key(k): v for k, v in pred.items()}, {_match_key(k): v for k, v in lab.items()}


def _subset_names(subset: str | Path | Sequence[str]) -> list[str]:
    from mds.errors import ParseError

    if isinstance(subset, (str, Path)):
        sp = Path(subset)
        if not sp.is_file():
            raise ParseError(f"{sp}: no such file")
        raw = [ln.split()[0] for ln in sp.read_text(encoding="utf-8").splitlines() if ln.strip()]
    else:
        raw = list(subset)
    return [_match_key(s) for s in raw]


def evaluate_files(
    predictions: str | Path | Mapping[str, float],
    labels: str | Path | Mapping[str, float],
    *,
    subset: str | Path | Sequence[str] | None = None,
    fit: bool = True,
) -> tuple[Correlations, dict[str, int]]:
    """Correlations of a prediction file against a label file on their common names (or ``subset``).

    Returns the metrics and counts: ``matched``, ``missing_predictions`` (labelled
    or subset names without a prediction), ``unlabelled`` (predictions without a label).
    """
    from mds.errors import ParseError

    pk, lk = _load_pair(predictions, labels)
    if subset is None:
        names = [k for k in lk if k in pk]
        wanted = list(lk)
    else:
        wanted = _subset_names(subset)
        names = [k for k in wanted if k in pk and k in lk]
    counts = {
        "matched": len(names),
        "missing_predictions": sum(1 for k in wanted if k not in pk),
        "unlabelled": sum(1 for k in pk if k not in lk),
    }
    if len(names) < 3:
        raise ParseError(f"only {len(names)} names are in both the predictions and the labels")
    p = np.array([pk[k] for k in names])
    m = np.array([lk[k] for k in names])
    return correlations(p, m, fit=fit), counts


@dataclass(frozen=True)
class ErrorRatio:
    """Failure identification as a multiple: mean |prediction − label| of a subset over that of all."""

    subset_error: float
    all_error: float
    n_subset: int
    n_all: int

    @property
    def ratio(self) -> float:
        return self.subset_error / self.all_error if self.all_error > 0 else float("nan")

    def as_dict(self) -> dict[str, float | int]:
        return {"subset_error": self.subset_error, "all_error": self.all_error, "error_ratio": self.ratio,
                "n_subset": self.n_subset, "n_all": self.n_all}


def error_ratio_files(
    predictions: str | Path | Mapping[str, float],
    labels: str | Path | Mapping[str, float],
    subset: str | Path | Sequence[str],
) -> ErrorRatio:
    """Mean absolute error of the predictions on ``subset`` (e.g. a selection) as a multiple of
    their mean absolute error on every labelled name (e.g. the pool). Predictions and labels
    must be on the same scale (raw, no fit): this is the base model's error, not a correlation."""
    from mds.errors import ParseError

    pk, lk = _load_pair(predictions, labels)
    every = [k for k in lk if k in pk]
    chosen = [k for k in _subset_names(subset) if k in pk and k in lk]
    if not chosen or not every:
        raise ParseError("no subset name is in both the predictions and the labels")
    err = {k: abs(pk[k] - lk[k]) for k in every}
    return ErrorRatio(subset_error=float(np.mean([err[k] for k in chosen])), all_error=float(np.mean(list(err.values()))),
                      n_subset=len(chosen), n_all=len(every))
