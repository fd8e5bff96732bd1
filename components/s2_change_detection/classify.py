"""K-means classification of the changed pixels in the polar domain (magnitude, angle).

Both features are standardised (zero mean, unit standard deviation over the fitted sample) so
that reflectance and degrees weigh alike. The fit is scikit-learn's K-means (k-means++ seeding,
Lloyd iterations) with a fixed random seed and several restarts (the lowest inertia wins), so a
run is reproducible. Classes are numbered 1..K by increasing centroid angle (then magnitude).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEED = 0
RESTARTS = 4
MAX_ITERATIONS = 100
TOLERANCE = 1e-6  # relative to the mean variance of the standardised features (scikit-learn's tol)


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


def fit_polar_classes(rho: np.ndarray, theta: np.ndarray, k: int, *, seed: int = SEED,
                      restarts: int = RESTARTS) -> PolarClasses:
    """Fit K classes on samples of changed pixels; fewer classes when fewer distinct samples."""
    from sklearn.cluster import KMeans  # only the fit needs it (a second of import time)

    f = np.stack([np.ravel(rho), np.ravel(theta)], axis=1).astype(np.float64)
    if len(f) == 0:
        return PolarClasses(np.zeros((0, 2)), np.zeros(2), np.ones(2))
    mean = f.mean(0)
    scale = f.std(0)
    scale[~(scale > 0)] = 1.0
    z = _standardise(f, mean, scale)
    # K-means cannot find more clusters than distinct points (scikit-learn would warn and
    # return duplicated centroids); pairs counted as complex numbers, a 1-D sort
    k = min(k, len(np.unique(z[:, 0] + 1j * z[:, 1])))
    km = KMeans(n_clusters=k, init="k-means++", n_init=restarts, max_iter=MAX_ITERATIONS, tol=TOLERANCE,
                random_state=seed, algorithm="lloyd").fit(z)
    centroids = km.cluster_centers_ * scale + mean
    order = np.lexsort((centroids[:, 0], centroids[:, 1]))
    return PolarClasses(centroids[order], mean, scale)
