"""What a GDAL or QGIS user sees of the S2-CD products: the class names as GDAL's category names
and raster attribute table (read back by GDAL itself), the CVA bands' units in GDAL's unit field,
and a class-map quicklook with a legend that tells cloud, outside the AoI and NoData apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from components.common.outputs import CLOUD, MASK_STYLES, NO_DATA, OUTSIDE_AOI
from components.s2_change_detection.params import S2ChangeParams
from components.s2_change_detection.rendering import NO_CHANGE_RGBA
from components.s2_change_detection.service import run
from tests.fixtures.s2_products import cloud_regions, nodata_mask
from tests.gdal_read import categories
from tests.s2_change_detection.pairs import SIZE, write_pair

ULX, ULY = 499980, 5900040  # the fixture tile's corner (UTM 29N)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    import pyproj

    base = tmp_path_factory.mktemp("s2cdmeta")
    first, second = write_pair(base / "pair")
    # the whole tile but its lower-left corner: the grid keeps the tile's bounds
    to_ll = pyproj.Transformer.from_crs(32629, 4326, always_xy=True)
    corners = [(ULX, ULY), (ULX + 1200, ULY), (ULX + 1200, ULY - 1200), (ULX + 400, ULY - 1200), (ULX, ULY - 800)]
    ring = [to_ll.transform(x, y) for x, y in corners + corners[:1]]
    aoi = "POLYGON((" + ",".join(f"{x} {y}" for x, y in ring) + "))"
    params = S2ChangeParams.from_strings({"projection": "UTM(Auto)", "numberClasses": 3, "aoi": aoi})
    return run(str(first), str(second), params, str(base / "out"))


def test_class_names_are_gdal_categories_and_attribute_table(result):
    assert Path(result.product + ".aux.xml").is_file()
    names, rows = categories(Path(result.product))
    assert names[0] == "no change" and names[255] == "no data"
    assert names[1:4] == ["change 1", "change 2", "change 3"] and set(names[4:255]) == {""}
    with rasterio.open(result.product) as ds:
        palette = ds.colormap(1)
    by_value = {int(r["Value"]): r for r in rows}
    assert set(by_value) == {0, 1, 2, 3, 255}
    for value in (0, 1, 2, 3):
        row = by_value[value]
        assert row["Class_Name"] == names[value]
        assert tuple(int(row[c]) for c in ("Red", "Green", "Blue", "Alpha")) == palette[value]
    assert "mean magnitude" in by_value[1]["Description"]


def test_cva_units_in_gdals_unit_field(result):
    with rasterio.open(result.cva) as ds:
        assert ds.descriptions == ("magnitude", "angle") and ds.units == ("1", "deg")
        assert "UNIT" not in ds.tags(1) and "UNIT" not in ds.tags(2)


def test_class_quicklook_has_a_legend_and_tells_cloud_outside_and_nodata_apart(result):
    with rasterio.open(result.product) as ds:
        classes = ds.read(1)
    with Image.open(result.quicklook) as im:
        px = np.asarray(im.convert("RGBA"))
    assert px.shape[0] >= SIZE and px.shape[1] > SIZE
    grid, legend = px[:SIZE, :SIZE], px[:, SIZE:]
    outside, nodata = (SIZE - 1, 0), nodata_mask(SIZE, 10)
    assert classes[outside] == 255 and (classes[nodata] == 255).all()
    assert tuple(grid[outside]) == MASK_STYLES[OUTSIDE_AOI][1]
    assert (grid[nodata] == MASK_STYLES[NO_DATA][1]).all()
    r0, r1, c0, c1 = cloud_regions(SIZE, 10)["opaque"]  # clouds of the second date
    assert (classes[r0:r1, c0:c1] == 255).all()
    assert (grid[r0:r1, c0:c1] == MASK_STYLES[CLOUD][1]).all()
    assert (grid[classes == 0] == NO_CHANGE_RGBA).all()
    # a legend swatch for every class in the map and for NoData
    with rasterio.open(result.product) as ds:
        palette = ds.colormap(1)
    swatches = {tuple(p) for p in legend.reshape(-1, 4)}
    for value in (0, 1, 2, 3):
        assert palette[value] in swatches, value
    assert MASK_STYLES[NO_DATA][1] in swatches and MASK_STYLES[CLOUD][1] in swatches
