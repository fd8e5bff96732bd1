"""Change Vector Analysis kernels (pure NumPy / SciPy, no file knowledge).

For B bands the difference vector of a pixel is ``X = x2_normalised - x1`` (date 2 minus date 1,
reflectance). Its magnitude is ``rho = |X|`` and its direction the angle ``theta`` between ``X``
and the reference vector ``r``: ``arccos(X . r / (|X| |r|))`` in degrees, 0..180.

Under "no change" the differences are modelled as zero-mean Gaussian noise with covariance
``S`` estimated on stable pixels; ``X^T S^-1 X`` then follows a chi-squared law with B degrees
of freedom and a pixel is changed when it exceeds the chi-squared quantile of the confidence
level. With the diagonal model ``S = diag(sigma_b^2)`` the statistic is ``sum_b (X_b/sigma_b)^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, stats

NODATA = -9999.0  # magnitude and angle of pixels without data
RIDGE = 1e-9  # relative regularisation of the noise covariance (bands with no noise)


def filtered_difference(x1: np.ndarray, x2n: np.ndarray, valid: np.ndarray, size: int) -> np.ndarray:
    """``x2n - x1`` (bands, rows, cols), median-filtered per band over ``size`` x ``size`` pixels.

    Pixels without data enter the filter as 0 (no change); their own value stays meaningless and
    is masked by the caller. ``size`` 1 returns the plain difference.
    """
    d = x2n - x1
    d[:, ~valid] = 0.0
    if size > 1:
        for b in range(d.shape[0]):
            d[b] = ndimage.median_filter(d[b], size=size, mode="nearest")
    return d


@dataclass(frozen=True)
class NoiseModel:
    """Second moments of the no-change differences: ``covariance`` (bands x bands)."""

    covariance: np.ndarray
    n_pixels: int
    diagonal: bool = False

    @classmethod
    def from_moments(cls, sum_outer: np.ndarray, n: int, *, diagonal: bool) -> "NoiseModel":
        """From ``sum over stable pixels of X X^T`` and their count (zero-mean model)."""
        cov = sum_outer / max(n, 1)
        if diagonal:
            cov = np.diag(np.diag(cov))
        return cls(cov, n, diagonal)

    @property
    def sigma(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance))

    def inverse(self) -> np.ndarray:
        cov = self.covariance
        scale = float(np.trace(cov)) / len(cov) if np.trace(cov) > 0 else 1.0
        return np.linalg.inv(cov + np.eye(len(cov)) * scale * RIDGE)

    def as_dict(self) -> dict:
        return {"model": "diagonal" if self.diagonal else "covariance", "stable_pixels": self.n_pixels,
                "sigma": [float(f"{v:.6g}") for v in self.sigma],
                "correlation": [[round(float(v), 4) for v in row] for row in _correlation(self.covariance)]}


def _correlation(cov: np.ndarray) -> np.ndarray:
    s = np.sqrt(np.diag(cov))
    s[s == 0] = 1.0
    return cov / np.outer(s, s)


def second_moments(d: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, int]:
    """``sum X X^T`` over the pixels of ``mask`` and their count."""
    z = d[:, mask].astype(np.float64)
    return z @ z.T, int(z.shape[1])


def chi2_statistic(d: np.ndarray, inverse_covariance: np.ndarray) -> np.ndarray:
    """``X^T S^-1 X`` per pixel for ``d`` of shape (bands, ...)."""
    z = d.reshape(d.shape[0], -1).astype(np.float64)
    out = np.einsum("in,ij,jn->n", z, inverse_covariance, z, optimize=True)
    return out.reshape(d.shape[1:]).astype(np.float32)


def chi2_threshold(confidence_percent: float, bands: int) -> float:
    """The chi-squared quantile with ``bands`` degrees of freedom at ``confidence_percent``."""
    return float(stats.chi2.ppf(confidence_percent / 100.0, bands))


def magnitude_angle(d: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude and angle (degrees, 0..180) of the difference vectors against ``reference``."""
    rho = np.sqrt(np.einsum("i...,i...->...", d, d, dtype=np.float64))
    r = np.asarray(reference, np.float64)
    r = r / np.linalg.norm(r)
    dot = np.tensordot(r, d, axes=(0, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(rho > 0, dot / rho, 1.0)
    theta = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return rho.astype(np.float32), theta.astype(np.float32)


def remove_small_regions(mask: np.ndarray, min_area: int) -> np.ndarray:
    """``mask`` without its 8-connected regions smaller than ``min_area`` pixels."""
    if min_area <= 1 or not mask.any():
        return mask
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_area
    keep[0] = False
    return keep[labels]
