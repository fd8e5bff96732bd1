"""A measurement TIFF that is not one (a float image, three bands, a PNG under the .tiff name)
is refused with one line instead of being calibrated into a meaningless product."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import rasterio

from components.s1_preprocess.cli import main_grd


def _replace(tiff, driver: str, count: int, dtype: str) -> None:
    with rasterio.open(tiff) as ds:
        height, width = ds.height, ds.width
    tiff.unlink()
    data = np.full((count, height, width), 100, dtype)
    with rasterio.open(tiff, "w", driver=driver, width=width, height=height, count=count, dtype=dtype) as ds:
        ds.write(data)
    for sidecar in tiff.parent.glob(tiff.name + ".aux.xml"):
        sidecar.unlink()


@pytest.mark.parametrize("driver, count, dtype, found", [
    ("GTiff", 1, "float32", "a GTiff of 1 band(s) of float32"),
    ("GTiff", 3, "uint16", "a GTiff of 3 band(s) of uint16"),
    ("PNG", 1, "uint16", "a PNG of 1 band(s) of uint16"),
])
def test_a_measurement_of_another_kind_is_refused(grd_product, tmp_path, capsys, driver, count, dtype, found):
    product = tmp_path / grd_product.name
    shutil.copytree(grd_product, product)
    tiff = next((product / "measurement").glob("*-vv-*.tiff"))
    _replace(tiff, driver, count, dtype)
    code = main_grd(["--input", str(product), "--polarization", "VV", "--outdir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(lines) == 1 and f"measurement {tiff.name} is not a GRD measurement: {found}, where one band of " \
                               "uint16 DN in a GeoTIFF is expected" in lines[0], err
    assert not (tmp_path / "out").exists()
