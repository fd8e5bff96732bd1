"""Relative radiometric normalisation of one date to the other (pure NumPy).

Per band, the reflectance of the second date is mapped onto the first by a linear regression
(ordinary least squares of date 1 on date 2) fitted on *stable* pixels: valid and cloud-free in
both dates, in the same scene class in both when the classification is known, and among the
least changed. "Least changed" is found by iteration: fit on all candidates, compute the
per-band differences, scale them by their robust spread (1.4826 x median absolute deviation),
keep the half of the candidates with the smallest sum of squared scaled differences, refit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ITERATIONS = 3
STABLE_QUANTILE = 0.5  # fraction of the candidates kept as stable at each iteration
MIN_PIXELS = 50  # fewer candidate pixels than this cannot support a regression per band
MAD_TO_SIGMA = 1.4826


class TooFewPixels(ValueError):
    """Not enough pixels to estimate the normalisation."""


@dataclass(frozen=True)
class Normalisation:
    """``x2_normalised = gain * x2 + offset`` per band; ``n_stable`` pixels supported the last fit."""

    gain: np.ndarray
    offset: np.ndarray
    n_candidates: int
    n_stable: int

    @classmethod
    def identity(cls, bands: int, n: int = 0) -> "Normalisation":
        return cls(np.ones(bands), np.zeros(bands), n, n)

    def apply(self, x2: np.ndarray) -> np.ndarray:
        """Normalise ``x2`` of shape (bands, ...) to the radiometry of date 1 (float32)."""
        shape = (-1,) + (1,) * (x2.ndim - 1)
        return (x2 * self.gain.reshape(shape).astype(np.float32)
                + self.offset.reshape(shape).astype(np.float32)).astype(np.float32, copy=False)

    def as_dict(self) -> dict:
        return {"gain": [round(float(v), 6) for v in self.gain],
                "offset": [round(float(v), 6) for v in self.offset],
                "candidate_pixels": self.n_candidates, "stable_pixels": self.n_stable}


def robust_sigma(d: np.ndarray) -> np.ndarray:
    """Per-row robust standard deviation (1.4826 x MAD) of ``d`` of shape (bands, n)."""
    med = np.median(d, axis=1, keepdims=True)
    return MAD_TO_SIGMA * np.median(np.abs(d - med), axis=1)


def _ols(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Gain and offset of y ~ gain * x + offset; gain 1 when x does not vary."""
    xm, ym = x.mean(dtype=np.float64), y.mean(dtype=np.float64)
    var = np.mean((x - xm) ** 2, dtype=np.float64)
    if not var > 0:
        return 1.0, float(ym - xm)
    gain = float(np.mean((x - xm) * (y - ym), dtype=np.float64) / var)
    return gain, float(ym - gain * xm)


def fit_normalisation(x1: np.ndarray, x2: np.ndarray, *, iterations: int = ITERATIONS,
                      stable_quantile: float = STABLE_QUANTILE) -> Normalisation:
    """Fit the normalisation of date 2 onto date 1 on candidate pixels.

    ``x1`` and ``x2`` have shape (bands, n): the reflectances of the candidate stable pixels
    (already restricted to valid, cloud-free, same-class pixels).
    """
    bands, n = x1.shape
    if n < MIN_PIXELS:
        raise TooFewPixels(f"{n} candidate stable pixels, at least {MIN_PIXELS} needed")
    x1 = x1.astype(np.float64)
    x2 = x2.astype(np.float64)
    stable = np.ones(n, bool)
    gain, offset = np.ones(bands), np.zeros(bands)
    for i in range(iterations):
        for b in range(bands):
            gain[b], offset[b] = _ols(x1[b, stable], x2[b, stable])
        if i == iterations - 1:
            break
        d = gain[:, None] * x2 + offset[:, None] - x1
        sigma = robust_sigma(d[:, stable])
        sigma[~(sigma > 0)] = 1.0
        score = ((d / sigma[:, None]) ** 2).sum(axis=0)
        stable = score <= np.quantile(score, stable_quantile)
        if stable.sum() < MIN_PIXELS:  # ties at zero: keep every candidate with the smallest scores
            stable = score <= np.sort(score)[MIN_PIXELS - 1]
    return Normalisation(gain.copy(), offset.copy(), n, int(stable.sum()))
