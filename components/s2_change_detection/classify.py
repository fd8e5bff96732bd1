"""K-means classification of the changed pixels in the polar domain (magnitude, angle).

Both features are standardised (zero mean, unit standard deviation over the fitted sample) so
that reflectance and degrees weigh alike. The seeding is k-means++ with a fixed random seed and
several restarts (the lowest inertia wins), so a run is reproducible. Classes are numbered
1..K by increasing centroid angle (then magnitude).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEED = 0
RESTARTS = 4
MAX_ITERATIONS = 100
TOLERANCE = 1e-6


@dataclass(frozen=True)
class PolarClasses:
    """Centroids (K, 2) in (magnitude, angle) units and the standardisation used to fit them."""

    centroids: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    @property
    def k(self) -> int:
        return len(self.centroids)

    def assign(self, rho: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Class 1..K of each (rho, theta) pair (uint8, same shape)."""
        if self.k == 0:
            return np.zeros(np.shape(rho), np.uint8)
        f = _standardise(np.stack([np.ravel(rho), np.ravel(theta)], axis=1), self.mean, self.scale)
        c = _standardise(self.centroids, self.mean, self.scale)
        labels = _nearest(f, c)
        return (labels + 1).astype(np.uint8).reshape(np.shape(rho))


def _standardise(f: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (np.asarray(f, np.float64) - mean) / scale


def _nearest(f: np.ndarray, c: np.ndarray) -> np.ndarray:
    d2 = (f * f).sum(1)[:, None] - 2.0 * f @ c.T + (c * c).sum(1)[None, :]
    return np.argmin(d2, axis=1)


def _kmeans_pp(f: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [f[rng.integers(len(f))]]
    d2 = ((f - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        idx = rng.choice(len(f), p=d2 / total) if total > 0 else rng.integers(len(f))
        centres.append(f[idx])
        d2 = np.minimum(d2, ((f - f[idx]) ** 2).sum(1))
    return np.array(centres)


def _lloyd(f: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, float]:
    for _ in range(MAX_ITERATIONS):
        labels = _nearest(f, centres)
        new = centres.copy()
        for j in range(len(centres)):
            members = f[labels == j]
            if len(members):
                new[j] = members.mean(0)
        shift = float(np.abs(new - centres).max())
        centres = new
        if shift < TOLERANCE:
            break
    labels = _nearest(f, centres)
    return centres, float(((f - centres[labels]) ** 2).sum())


def fit_polar_classes(rho: np.ndarray, theta: np.ndarray, k: int, *, seed: int = SEED,
                      restarts: int = RESTARTS) -> PolarClasses:
    """Fit K classes on samples of changed pixels; fewer classes when fewer distinct samples."""
    f = np.stack([np.ravel(rho), np.ravel(theta)], axis=1).astype(np.float64)
    if len(f) == 0:
        return PolarClasses(np.zeros((0, 2)), np.zeros(2), np.ones(2))
    mean = f.mean(0)
    scale = f.std(0)
    scale[~(scale > 0)] = 1.0
    z = _standardise(f, mean, scale)
    k = min(k, len(np.unique(z, axis=0)))
    rng = np.random.default_rng(seed)
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        centres, inertia = _lloyd(z, _kmeans_pp(z, k, rng))
        if inertia < best_inertia - 1e-12:
            best, best_inertia = centres, inertia
    centroids = best * scale + mean
    order = np.lexsort((centroids[:, 0], centroids[:, 1]))
    return PolarClasses(centroids[order], mean, scale)
