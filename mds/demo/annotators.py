"""Simulated annotators: a panel of raters with a per-rater bias and noise, and a few outliers.

Rating model (integer scores on the 1–5 ACR scale, as a Label Studio ``Rating`` gives)::

    ordinary rater r:  score = clip(round(MOS + b_r + e),     1, 5),  b_r ~ N(0, bias_sd), e ~ N(0, s_r)
    outlier rater r:   score = clip(round(6 - MOS + e), 1, 5)  with probability 0.5 (scale inverted),
                       else a uniform random integer 1..5

with ``s_r ~ U(noise_lo, noise_hi)``. Every rating is a deterministic function of
(panel seed, video key, rater), so a re-run of a round yields the same ratings.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class Rater:
    """One simulated annotator."""

    id: str
    bias: float
    noise: float
    outlier: bool


def _key_int(key: object) -> int:
    return int.from_bytes(hashlib.sha256(str(key).encode()).digest()[:8], "little")


@dataclass
class RaterPanel:
    """A fixed panel of simulated raters; ``rate`` draws ``n`` of them for one video."""

    raters: list[Rater]
    seed: int = 0
    scale: tuple[int, int] = (1, 5)
    config: dict = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        n_raters: int = 12,
        *,
        seed: int = 0,
        n_outliers: int = 2,
        bias_sd: float = 0.3,
        noise_lo: float = 0.3,
        noise_hi: float = 0.7,
    ) -> RaterPanel:
        if n_raters < 1 or not 0 <= n_outliers <= n_raters:
            raise ValueError("need n_raters >= 1 and 0 <= n_outliers <= n_raters")
        rng = np.random.default_rng([seed, 7])
        outliers = set(rng.choice(n_raters, size=n_outliers, replace=False).tolist())
        raters = [
            Rater(
                id=f"sim-rater-{i:02d}",
                bias=round(float(rng.normal(0.0, bias_sd)), 4),
                noise=round(float(rng.uniform(noise_lo, noise_hi)), 4),
                outlier=i in outliers,
            )
            for i in range(n_raters)
        ]
        cfg = dict(n_raters=n_raters, n_outliers=n_outliers, bias_sd=bias_sd, noise_lo=noise_lo, noise_hi=noise_hi)
        return cls(raters=raters, seed=seed, config=cfg)

    def rate(self, video_key: object, mos: float, n: int = 5) -> list[tuple[str, int]]:
        """``n`` ratings ``(rater_id, score)`` of a video whose true MOS is ``mos``."""
        n = min(n, len(self.raters))
        rng = np.random.default_rng([self.seed, _key_int(video_key)])
        chosen = rng.choice(len(self.raters), size=n, replace=False)
        lo, hi = self.scale
        out = []
        for i in sorted(int(c) for c in chosen):
            r = self.raters[i]
            e = rng.normal(0.0, r.noise)
            if r.outlier:
                s = 6 - mos + e if rng.random() < 0.5 else rng.integers(lo, hi + 1)
            else:
                s = mos + r.bias + e
            out.append((r.id, int(min(max(round(float(s)), lo), hi))))
        return out

    def as_dict(self) -> dict:
        return {"seed": self.seed, "scale": list(self.scale), "config": self.config,
                "raters": [asdict(r) for r in self.raters]}

    @classmethod
    def from_dict(cls, d: dict) -> RaterPanel:
        return cls(raters=[Rater(**r) for r in d["raters"]], seed=int(d["seed"]),
                   scale=tuple(d.get("scale", (1, 5))), config=dict(d.get("config", {})))
