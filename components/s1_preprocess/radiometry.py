"""Radiometric kernels: calibration LUTs, thermal noise, GRD border noise. Pure NumPy.

* Calibration (ESA S1 Level-1 calibration note, as SNAP and ``xarray-sentinel`` do it):
  ``value = |DN|^2 / A^2`` with ``A`` (sigmaNought, betaNought or gamma) bilinearly interpolated
  from the LUT given at (line, pixel) nodes.
* Thermal noise: ``N(line, pixel)`` from the noise annotation, subtracted in the DN^2 domain before
  calibration: ``|DN|^2 - N``. For IPF >= 2.9 ``N = range vector x azimuth vector``, the azimuth
  vector taken from the block (sub-swath / azimuth segment rectangle) holding the pixel. Values
  that fall below ``NOISE_FLOOR_DN2`` are clamped to it (SNAP's ThermalNoiseRemoval does the same
  with 1e-5), never to 0, so dB stays finite.
* GRD border noise: ESA masks it itself from IPF 2.90 (samples set to 0, which are NoData here);
  for every product the border is trimmed like SNAP's Remove-GRD-Border-Noise with its two
  parameters: scanning inward from the first/last valid sample of each line (and of each column
  for the first/last lines), samples whose noise-removed intensity is below ``trim_threshold``
  (DN^2) are removed until the first one that is not, at most ``border_limit`` samples deep.

LUTs are evaluated block by block with :class:`LineLUT`: each vector is first resampled to every
image column (linear in pixel, constant beyond its ends), then rows are linear between the two
vectors around them (constant beyond the first and last vector) - exactly the bilinear
interpolation on the LUT grid that ``xarray_sentinel.calibrate_intensity`` uses.
"""

from __future__ import annotations

import numpy as np

from .product import IPF_AZIMUTH_NOISE, Image

NOISE_FLOOR_DN2 = 1e-5
CALIBRATION_LUT = {"Sigma": "sigmaNought", "Beta": "betaNought", "Gamma": "gamma"}


class LineLUT:
    """A LUT given as vectors at image ``lines``, each sampled at its own ``pixels``."""

    def __init__(self, lines, pixels_list, values_list, width: int):
        order = np.argsort(np.asarray(lines, np.float64), kind="stable")
        self.lines = np.asarray(lines, np.float64)[order]
        cols = np.arange(width, dtype=np.float64)
        self.table = np.stack([np.interp(cols, np.asarray(pixels_list[i], np.float64),
                                         np.asarray(values_list[i], np.float64)) for i in order])
        self.width = width

    @classmethod
    def regular(cls, lines, pixels, values, width: int) -> "LineLUT":
        values = np.asarray(values)
        return cls(lines, [pixels] * values.shape[0], list(values), width)

    def rows(self, rows, c0: int = 0, c1: int | None = None) -> np.ndarray:
        """LUT values (float64) at the given image rows (array of floats) for columns c0:c1."""
        rows = np.asarray(rows, np.float64)
        c1 = self.width if c1 is None else c1
        table = self.table[:, c0:c1]
        if self.lines.size == 1:
            return np.broadcast_to(table[0], (rows.size, table.shape[1])).copy()
        i = np.clip(np.searchsorted(self.lines, rows, side="right") - 1, 0, self.lines.size - 2)
        l0, l1 = self.lines[i], self.lines[i + 1]
        w = np.clip((rows - l0) / np.where(l1 > l0, l1 - l0, 1.0), 0.0, 1.0)
        out = np.empty((rows.size, table.shape[1]))
        # a block of rows lies between a few vectors: one broadcast per pair, no gathers
        for k in np.unique(i):
            sel = np.flatnonzero(i == k)
            a, b = table[k], table[k + 1]
            if sel.size == sel[-1] - sel[0] + 1:  # contiguous rows (the usual case): in place
                view = out[sel[0]:sel[-1] + 1]
                np.multiply(b - a, w[sel, None], out=view)
                view += a
            else:
                out[sel] = a + (b - a) * w[sel, None]
        return out


def calibration_lut(image: Image, kind: str, width: int | None = None) -> LineLUT:
    """The calibration LUT (``kind`` Sigma, Beta or Gamma) of an image as a :class:`LineLUT`; the
    image's explicit constant when it has no calibration annotation."""
    if image.calibration_constant is not None:
        width = width or image.samples
        return LineLUT.regular([0.0], [0.0, width - 1.0], [[image.calibration_constant] * 2], width)
    cal = image.calibration
    return LineLUT.regular(cal.line.values, cal.pixel.values, cal[CALIBRATION_LUT[kind]].values,
                           width or image.samples)


class NoiseModel:
    """Thermal noise power N (DN^2) of an image, evaluated by blocks."""

    def __init__(self, image: Image, ipf_version: float):
        rng = image.noise_range
        self.range = None if rng is None else LineLUT(rng.lines, rng.pixels, rng.luts, image.samples)
        self.blocks = image.noise_azimuth if ipf_version >= IPF_AZIMUTH_NOISE else []

    @property
    def empty(self) -> bool:
        return self.range is None

    def rows(self, rows, c0: int, c1: int) -> np.ndarray:
        rows = np.asarray(rows, np.float64)
        if self.range is None:
            return np.zeros((rows.size, c1 - c0))
        noise = self.range.rows(rows, c0, c1)
        for b in self.blocks:
            rsel = (rows >= b.first_line) & (rows <= b.last_line)
            a0, a1 = max(c0, b.first_sample), min(c1, b.last_sample + 1)
            if not rsel.any() or a1 <= a0:
                continue
            factor = np.interp(rows[rsel], b.lines, b.lut)
            at = np.flatnonzero(rsel)
            if at[-1] - at[0] + 1 == at.size:  # the rows of a block: contiguous, a view (no gather)
                noise[at[0]:at[-1] + 1, a0 - c0:a1 - c0] *= factor[:, None]
            else:
                noise[at[:, None], np.arange(a0 - c0, a1 - c0)[None, :]] *= factor[:, None]
        return noise


def intensity(dn: np.ndarray) -> np.ndarray:
    """|DN|^2 as float64 (uint16 GRD amplitudes or complex SLC samples)."""
    if np.iscomplexobj(dn):
        return dn.real.astype(np.float64) ** 2 + dn.imag.astype(np.float64) ** 2
    return np.square(dn, dtype=np.float64)  # cast then square, without a temporary


def denoise(power: np.ndarray, noise: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """|DN|^2 - N, clamped below at NOISE_FLOOR_DN2 where valid (in place on ``power``)."""
    power -= noise
    np.maximum(power, NOISE_FLOOR_DN2, out=power, where=valid)
    return power


def calibrate(power: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Calibrated backscatter (linear) from (denoised) |DN|^2 and the interpolated LUT A."""
    out = np.multiply(lut, lut)  # power / lut^2, with one temporary instead of two
    if out.shape != np.broadcast_shapes(out.shape, power.shape):  # a LUT that broadcasts (a column)
        return np.divide(power, out)
    return np.divide(power, out, out=out)


# -- GRD border noise -----------------------------------------------------------------------

def border_trim_rows(power: np.ndarray, valid: np.ndarray, border_limit: int,
                     trim_threshold: float, left: bool = True, right: bool = True) -> np.ndarray:
    """Boolean mask (True = removed) of the near- and far-range border noise of each row
    (``left``/``right``: whether that side of the block is the image edge)."""
    h, w = power.shape
    removed = np.zeros((h, w), bool)
    if border_limit <= 0 or w == 0:
        return removed
    good = valid & (power >= trim_threshold)
    cols = np.arange(w)[None, :]
    for flip in [f for f, side in ((False, left), (True, right)) if side]:
        v = valid[:, ::-1] if flip else valid
        g = good[:, ::-1] if flip else good
        has = v.any(axis=1)
        first = np.where(has, v.argmax(axis=1), w)
        first_good = np.where(g.any(axis=1), g.argmax(axis=1), w)
        stop = np.minimum(first_good, first + border_limit)
        band = (cols >= first[:, None]) & (cols < stop[:, None])
        removed |= band[:, ::-1] if flip else band
    return removed


def border_trim_columns(power: np.ndarray, valid: np.ndarray, border_limit: int,
                        trim_threshold: float, from_top: bool) -> np.ndarray:
    """Per column, the number of lines to trim from the first (``from_top``) or last valid line
    of a strip of lines at the top or bottom of the image; returned as (first_removed, count)."""
    p = power if from_top else power[::-1]
    v = valid if from_top else valid[::-1]
    h = p.shape[0]
    good = v & (p >= trim_threshold)
    first = np.where(v.any(axis=0), v.argmax(axis=0), h)
    first_good = np.where(good.any(axis=0), good.argmax(axis=0), h)
    count = np.clip(np.minimum(first_good, first + border_limit) - first, 0, None)
    return first, count
