"""Normalisation of model inputs and outputs.

Every variable is transformed, then standardised: ``z = (f(x) - mean) / std``. Concentrations
(PM2.5, PM10, NO2, ...) are close to log-normal, so ``f(x) = log(x + 1 µg m-3)``; every other
variable uses ``f(x) = x``. A variable that is both a low-resolution input and a high-resolution
output (pm2p5) shares one set of statistics, so the generator can add a correction to the
upsampled input. Statistics are plain numbers, written into the tiles file and the model file.
"""

from __future__ import annotations

import numpy as np

from .readers import CONCENTRATIONS

LOG_OFFSET = 1.0  # µg m-3


def transform_of(name: str) -> str:
    return "log" if name in CONCENTRATIONS else "none"


def forward(values: np.ndarray, transform: str) -> np.ndarray:
    if transform == "log":
        return np.log(np.clip(values, 0.0, None) + LOG_OFFSET)
    return values


def inverse(values: np.ndarray, transform: str) -> np.ndarray:
    if transform == "log":
        return np.clip(np.exp(values) - LOG_OFFSET, 0.0, None)
    return values


def compute_stats(samples: dict[str, np.ndarray]) -> dict[str, dict]:
    """{name: {"transform", "mean", "std"}} from arrays of physical values (NaN ignored)."""
    stats = {}
    for name, values in samples.items():
        t = transform_of(name)
        v = forward(np.asarray(values, np.float64), t)
        v = v[np.isfinite(v)]
        mean = float(v.mean()) if v.size else 0.0
        std = float(v.std()) if v.size else 1.0
        stats[name] = {"transform": t, "mean": mean, "std": std if std > 1e-12 else 1.0}
    return stats


def normalise(values: np.ndarray, stat: dict) -> np.ndarray:
    return ((forward(np.asarray(values, np.float64), stat["transform"]) - stat["mean"]) / stat["std"]).astype(
        np.float32)


def denormalise(values: np.ndarray, stat: dict) -> np.ndarray:
    return inverse(np.asarray(values, np.float64) * stat["std"] + stat["mean"], stat["transform"])


def minmax(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> tuple[np.ndarray, float, float]:
    """Min-max scaling to 0..1 (with given bounds, or those of ``values``)."""
    lo = float(np.nanmin(values)) if lo is None else lo
    hi = float(np.nanmax(values)) if hi is None else hi
    span = hi - lo if hi > lo else 1.0
    return (values - lo) / span, lo, hi
