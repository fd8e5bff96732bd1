"""Pairs of synthetic Sentinel-2 L2A products (real SAFE layout, see tests/fixtures/s2_products)
with planted changes.

The second product is written with another noise seed and a later date; then, in its 10 m band
files, rectangles get a known reflectance change and the whole scene a per-band gain and offset
(a radiometric difference the normalisation must absorb):

    reflectance2 = GAIN * (reflectance1_scene + noise + planted delta) + OFFSET

The first product is cloud-free; the second has the fixture's clouds (SCL 3, 8, 9, 10), which
the service must mask. Golden values (where the changes are, their magnitude and angle) follow
from ``PLANTED`` alone.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from tests.fixtures.s2_products import JP2_LAYOUT, _write_jp2, write_s2_product

BANDS = ("B02", "B03", "B04", "B08")
GAIN = np.array([1.04, 1.06, 1.08, 0.95])
OFFSET = np.array([0.010, 0.005, 0.0, 0.020])
DN_OFFSET = 1000  # BOA_ADD_OFFSET of baseline 04.00 (negated)
QUANTIFICATION = 10000.0


@dataclass(frozen=True)
class Planted:
    name: str
    rows: tuple[int, int]  # 10 m pixel rows [r0, r1) for a 120 px tile
    cols: tuple[int, int]
    delta: tuple[float, float, float, float]  # reflectance change of B2, B3, B4, B8

    @property
    def magnitude(self) -> float:
        return float(np.linalg.norm(self.delta))

    def angle(self, reference=(1.0, 0.0, 0.0, 0.0)) -> float:
        d, r = np.asarray(self.delta), np.asarray(reference, float)
        return float(np.degrees(np.arccos(d @ r / (np.linalg.norm(d) * np.linalg.norm(r)))))

    def mask(self, shape) -> np.ndarray:
        m = np.zeros(shape, bool)
        m[self.rows[0]:self.rows[1], self.cols[0]:self.cols[1]] = True
        return m


# In vegetation (two) and in the bare-soil patch, away from clouds, water and the no-data corner.
PLANTED = (
    Planted("brighter", (50, 58), (80, 88), (0.08, 0.07, 0.10, -0.10)),
    Planted("nir_loss", (72, 80), (50, 58), (0.0, 0.01, 0.02, -0.20)),
    Planted("darker", (54, 62), (54, 62), (-0.08, -0.10, -0.15, -0.22)),
)
SIZE = 120
TILE = "T29UNU"


def band_file(safe: Path, band: str) -> Path:
    return Path(glob.glob(str(safe / "GRANULE" / "*" / "IMG_DATA" / "R10m" / f"*_{band}_10m.jp2"))[0])


def plant_changes(safe: Path, planted=PLANTED, gain=GAIN, offset=OFFSET) -> None:
    """Rewrite the 10 m band files of ``safe`` with the planted changes and the radiometric change."""
    for i, band in enumerate(BANDS):
        path = band_file(safe, band)
        with rasterio.open(path) as ds:
            dn = ds.read(1)
            transform, epsg = ds.transform, ds.crs.to_epsg()
        refl = (dn.astype(np.float64) - DN_OFFSET) / QUANTIFICATION
        for p in planted:
            refl[p.rows[0]:p.rows[1], p.cols[0]:p.cols[1]] += p.delta[i]
        refl = gain[i] * refl + offset[i]
        out = np.clip(np.rint(refl * QUANTIFICATION + DN_OFFSET), 1, 32767).astype(np.uint16)
        out[dn == 0] = 0
        path.unlink()
        _write_jp2(path, out, transform, epsg, JP2_LAYOUT[10], None)


def write_pair(root: Path, *, tile2: str = TILE, plant: bool = True, as_zip: bool = False) -> tuple[Path, Path]:
    """(first, second) products under ``root``; the second with planted changes unless ``plant`` is
    False. ``tile2`` gives the second product another tile name."""
    first = write_s2_product(root / "a", size_10m=SIZE, seed=1, clouds=False, sensing="20220601T112121")
    second = write_s2_product(root / "b", size_10m=SIZE, seed=2, clouds=True, sensing="20220820T112119",
                              tile=tile2)
    if plant:
        plant_changes(second)
    if as_zip:
        import shutil

        zipped = shutil.make_archive(str(second), "zip", root_dir=second.parent, base_dir=second.name)
        shutil.rmtree(second)
        second = Path(zipped)
    return first, second
