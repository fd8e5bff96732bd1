"""The change-detection run over an image pair, strip by strip (pure NumPy; no file knowledge).

A *source* gives, for rows [row0, row1) of a common grid, both dates' reflectances and the masks;
a *sink* stores the CVA (magnitude, angle) and the class map. The service plugs in GeoTIFF
readers and writers, the OSCD harness plain arrays: both run this same code.

Passes (memory is bounded by the strip size plus one byte per pixel for the change mask, and
four more while its regions are labelled):

1. take the stable candidates among up to ``max_samples`` pixels (deterministic, spread evenly)
   and fit the radiometric normalisation of date 2 onto date 1;
2. accumulate the noise covariance of the filtered differences over all stable candidates;
3. compute the filtered difference, its chi-squared statistic, magnitude and angle; write the
   CVA; mark changed pixels; then drop change regions smaller than ``min_area``;
4. fit K-means on a sample of the changed pixels' (magnitude, angle);
5. assign the classes and write the class map (0 no change, 1..K, 255 no data).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from components.common.errors import ServiceError
from components.common.logs import Progress

from . import cva
from .classify import PolarClasses, fit_polar_classes
from .normalisation import Normalisation, TooFewPixels, fit_normalisation

log = logging.getLogger(__name__)

NO_CHANGE = 0
NODATA_CLASS = 255
STRIP_ROWS = 512
MAX_SAMPLES = 1_000_000  # pixels for the normalisation fit
KMEANS_SAMPLES = 200_000  # changed pixels for the K-means fit
_GOLDEN = 0.6180339887498949  # low-discrepancy selection of pixels by their index


@dataclass(frozen=True)
class DetectionConfig:
    """The numbers the method needs, from the service parameters (see ``from_params``)."""

    confidence: float
    reference: tuple[float, ...]
    n_classes: int
    filter_size: int = 3
    min_area: int = 4
    diagonal: bool = False
    normalise: bool = True
    max_samples: int = MAX_SAMPLES
    kmeans_samples: int = KMEANS_SAMPLES

    @classmethod
    def from_params(cls, params) -> "DetectionConfig":
        return cls(confidence=params.levelConfidence, reference=params.reference,
                   n_classes=params.numberClasses, filter_size=params.filter_size,
                   min_area=params.min_area, diagonal=params.noise_model == "Diagonal",
                   normalise=params.normalisation == "Regression")


@dataclass
class Block:
    """Rows of the common grid: reflectances (bands, rows, cols) of both dates; ``valid``: data in
    both dates, cloud-free, inside the AoI; ``same_class``: same scene class in both dates (None
    when the scene classification is unknown)."""

    x1: np.ndarray
    x2: np.ndarray
    valid: np.ndarray
    same_class: np.ndarray | None = None

    @property
    def candidates(self) -> np.ndarray:
        """Pixels that may serve as stable references."""
        return self.valid if self.same_class is None else self.valid & self.same_class


class Source(Protocol):
    shape: tuple[int, int]
    bands: int

    def read(self, row0: int, row1: int) -> Block: ...


class Sink(Protocol):
    def write_cva(self, row0: int, magnitude: np.ndarray, angle: np.ndarray) -> None: ...

    def read_cva(self, row0: int, row1: int) -> tuple[np.ndarray, np.ndarray]: ...

    def write_classes(self, row0: int, classes: np.ndarray) -> None: ...


@dataclass
class Detection:
    """What the run found: the fitted models and the counts for the report."""

    normalisation: Normalisation
    noise: cva.NoiseModel
    threshold: float
    classes: PolarClasses
    pixels: int
    valid_pixels: int
    changed_pixels: int
    changed_before_area_filter: int
    class_stats: list[dict] = field(default_factory=list)

    @property
    def valid_percent(self) -> float:
        return 100.0 * self.valid_pixels / max(self.pixels, 1)

    @property
    def changed_percent(self) -> float:
        """Changed pixels in percent of the valid ones."""
        return 100.0 * self.changed_pixels / max(self.valid_pixels, 1)


class ArraySource:
    """A source over in-memory arrays (bands, rows, cols)."""

    def __init__(self, x1: np.ndarray, x2: np.ndarray, valid: np.ndarray, same_class: np.ndarray | None = None):
        self.x1, self.x2, self.valid, self.same_class = x1, x2, valid, same_class
        self.shape = valid.shape
        self.bands = x1.shape[0]

    def read(self, row0: int, row1: int) -> Block:
        same = None if self.same_class is None else self.same_class[row0:row1]
        return Block(self.x1[:, row0:row1].astype(np.float32), self.x2[:, row0:row1].astype(np.float32),
                     self.valid[row0:row1].copy(), same)


class ArraySink:
    """A sink keeping the CVA and the class map in memory."""

    def __init__(self, shape: tuple[int, int]):
        self.magnitude = np.full(shape, cva.NODATA, np.float32)
        self.angle = np.full(shape, cva.NODATA, np.float32)
        self.classes = np.full(shape, NODATA_CLASS, np.uint8)

    def write_cva(self, row0, magnitude, angle):
        self.magnitude[row0:row0 + len(magnitude)] = magnitude
        self.angle[row0:row0 + len(angle)] = angle

    def read_cva(self, row0, row1):
        return self.magnitude[row0:row1], self.angle[row0:row1]

    def write_classes(self, row0, classes):
        self.classes[row0:row0 + len(classes)] = classes


def _strips(rows: int, strip_rows: int):
    for row0 in range(0, rows, strip_rows):
        yield row0, min(row0 + strip_rows, rows)


def _spread_selection(row0: int, shape: tuple[int, int], cols: int, fraction: float) -> np.ndarray:
    """A deterministic, evenly spread selection of about ``fraction`` of the pixels of rows
    starting at ``row0`` (independent of how the image is cut into strips)."""
    if fraction >= 1.0:
        return np.ones(shape, bool)
    idx = (np.arange(shape[0], dtype=np.float64)[:, None] + row0) * cols + np.arange(shape[1], dtype=np.float64)
    return np.modf(idx * _GOLDEN)[0] < fraction


def _filtered(source: Source, norm: Normalisation, row0: int, row1: int, size: int) -> tuple[np.ndarray, Block]:
    """The filtered difference of rows [row0, row1), read with the filter's halo."""
    halo = size // 2
    r0, r1 = max(0, row0 - halo), min(source.shape[0], row1 + halo)
    block = source.read(r0, r1)
    d = cva.filtered_difference(block.x1, norm.apply(block.x2), block.valid, size)
    a, b = row0 - r0, row0 - r0 + (row1 - row0)
    same = None if block.same_class is None else block.same_class[a:b]
    return d[:, a:b], Block(block.x1[:, a:b], block.x2[:, a:b], block.valid[a:b], same)


def detect_changes(source: Source, cfg: DetectionConfig, sink: Sink, *, strip_rows: int = STRIP_ROWS) -> Detection:
    """Run the whole method over ``source``; the products go to ``sink``."""
    rows, cols = source.shape
    n_strips = -(-rows // strip_rows)

    # 1. normalisation on a sample of stable candidates
    fraction = min(1.0, cfg.max_samples / max(rows * cols, 1))
    s1, s2, n_valid = [], [], 0
    progress = Progress(n_strips, "sampling stable pixels", log)
    for row0, row1 in _strips(rows, strip_rows):
        block = source.read(row0, row1)
        n_valid += int(block.valid.sum())
        pick = block.candidates & _spread_selection(row0, block.valid.shape, cols, fraction)
        s1.append(block.x1[:, pick])
        s2.append(block.x2[:, pick])
        progress.advance()
    if n_valid == 0:
        raise ServiceError("no pixel has data in both dates (cloud-free, inside the AoI and the "
                           "footprints): nothing to compare")
    x1s, x2s = np.concatenate(s1, axis=1), np.concatenate(s2, axis=1)
    del s1, s2
    try:
        norm = fit_normalisation(x1s, x2s) if cfg.normalise else Normalisation.identity(source.bands, x1s.shape[1])
    except TooFewPixels as e:
        raise ServiceError(f"too few stable pixels to normalise the pair: {e} (valid, cloud-free and in "
                           f"the same scene class in both dates); enlarge the AoI") from None
    del x1s, x2s
    log.info("normalisation of date 2 onto date 1: gain %s, offset %s (%d stable of %d candidate pixels)",
             np.round(norm.gain, 4).tolist(), np.round(norm.offset, 5).tolist(), norm.n_stable, norm.n_candidates)

    # 2. noise covariance of the filtered difference over the stable candidates
    moments, n_noise = np.zeros((source.bands, source.bands)), 0
    progress = Progress(n_strips, "estimating noise", log)
    for row0, row1 in _strips(rows, strip_rows):
        d, block = _filtered(source, norm, row0, row1, cfg.filter_size)
        m, n = cva.second_moments(d, block.candidates)
        moments += m
        n_noise += n
        progress.advance()
    noise = cva.NoiseModel.from_moments(moments, n_noise, diagonal=cfg.diagonal)
    inverse = noise.inverse()
    threshold = cva.chi2_threshold(cfg.confidence, source.bands)
    log.info("noise sigma per band %s; chi-squared threshold %.2f (%d degrees of freedom, %g %%)",
             [float(f"{v:.4g}") for v in noise.sigma], threshold, source.bands, cfg.confidence)

    # 3. statistic, CVA, binary change mask
    changed = np.zeros((rows, cols), bool)
    reference = np.asarray(cfg.reference, np.float64)
    progress = Progress(n_strips, "change vector analysis", log)
    for row0, row1 in _strips(rows, strip_rows):
        d, block = _filtered(source, norm, row0, row1, cfg.filter_size)
        stat = cva.chi2_statistic(d, inverse)
        changed[row0:row1] = (stat > threshold) & block.valid
        rho, theta = cva.magnitude_angle(d, reference)
        rho[~block.valid] = cva.NODATA
        theta[~block.valid] = cva.NODATA
        sink.write_cva(row0, rho, theta)
        progress.advance()
    n_raw = int(changed.sum())
    changed = cva.remove_small_regions(changed, cfg.min_area)
    n_changed = int(changed.sum())
    log.info("changed pixels: %d of %d valid (%.3f %%); %d in regions smaller than %d pixels dropped",
             n_changed, n_valid, 100.0 * n_changed / n_valid, n_raw - n_changed, cfg.min_area)

    # 4. K-means on a sample of the changed pixels in the polar domain
    fraction = min(1.0, cfg.kmeans_samples / max(n_changed, 1))
    samples = []
    for row0, row1 in _strips(rows, strip_rows):
        part = changed[row0:row1]
        if part.any():
            rho, theta = sink.read_cva(row0, row1)
            pick = part & _spread_selection(row0, part.shape, cols, fraction)
            samples.append(np.stack([rho[pick], theta[pick]]))
    sample = np.concatenate(samples, axis=1) if samples else np.zeros((2, 0), np.float32)
    classes = fit_polar_classes(sample[0], sample[1], cfg.n_classes)
    if classes.k < cfg.n_classes:
        log.warning("only %d change classes instead of %d: too few distinct changed pixels", classes.k,
                    cfg.n_classes)

    # 5. class map and per-class statistics
    count = np.zeros(classes.k + 1, np.int64)
    sums = np.zeros((2, classes.k + 1))
    for row0, row1 in _strips(rows, strip_rows):
        rho, theta = sink.read_cva(row0, row1)
        part = changed[row0:row1]
        out = np.full(part.shape, NO_CHANGE, np.uint8)
        out[rho == cva.NODATA] = NODATA_CLASS
        if part.any():
            labels = classes.assign(rho[part], theta[part])
            out[part] = labels
            count += np.bincount(labels, minlength=classes.k + 1)
            sums[0] += np.bincount(labels, weights=rho[part].astype(np.float64), minlength=classes.k + 1)
            sums[1] += np.bincount(labels, weights=theta[part].astype(np.float64), minlength=classes.k + 1)
        sink.write_classes(row0, out)
    stats = [{"class": j, "pixels": int(count[j]),
              "percent_of_valid": round(100.0 * count[j] / n_valid, 4),
              "mean_magnitude": round(sums[0, j] / count[j], 6) if count[j] else None,
              "mean_angle_deg": round(sums[1, j] / count[j], 3) if count[j] else None,
              "centroid_magnitude": round(float(classes.centroids[j - 1, 0]), 6),
              "centroid_angle_deg": round(float(classes.centroids[j - 1, 1]), 3)}
             for j in range(1, classes.k + 1)]
    return Detection(norm, noise, threshold, classes, rows * cols, n_valid, n_changed, n_raw, stats)
