"""What a GDAL or QGIS user sees of an S2-preprocess product: band names, the spectral position
of each band in GDAL's standard IMAGERY metadata, and a quicklook that tells cloud, outside the
AoI and NoData apart, each with a legend entry."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from PIL import Image

from components.common.outputs import MASK_STYLES, CLOUD, NO_DATA, OUTSIDE_AOI
from components.s2_preprocess.params import S2PreprocessParams
from components.s2_preprocess.service import run
from tests.fixtures.s2_products import cloud_regions, nodata_mask, write_s2_product

SIZE = 120  # 10 m: 20 px at 60 m
ULX, ULY = 499980, 5900040  # the fixture tile's corner (UTM 29N)


@pytest.fixture(scope="module")
def product(tmp_path_factory):
    import pyproj

    base = tmp_path_factory.mktemp("s2meta")
    safe = write_s2_product(base / "in", size_10m=SIZE)
    # the whole tile but its lower-left corner: the grid keeps the tile's bounds
    to_ll = pyproj.Transformer.from_crs(32629, 4326, always_xy=True)
    corners = [(ULX, ULY), (ULX + 1200, ULY), (ULX + 1200, ULY - 1200), (ULX + 400, ULY - 1200), (ULX, ULY - 800)]
    ring = [to_ll.transform(x, y) for x, y in corners + corners[:1]]
    wkt = "POLYGON((" + ",".join(f"{x} {y}" for x, y in ring) + "))"
    return run(str(safe), S2PreprocessParams(resolution=60, bands=("B2", "B3", "B4"), cloudmask="L2A", aoi=wkt),
               str(base / "out"))


def test_bands_carry_gdal_wavelengths_not_custom_tags(product):
    with rasterio.open(product.product) as ds:
        assert ds.descriptions == ("B2", "B3", "B4")
        imagery = [ds.tags(i, ns="IMAGERY") for i in (1, 2, 3)]
        assert all("wavelength_nm" not in ds.tags(i) for i in (1, 2, 3))
    assert [float(t["CENTRAL_WAVELENGTH_UM"]) for t in imagery] == pytest.approx([0.4927, 0.5598, 0.6646])
    assert [float(t["FWHM_UM"]) for t in imagery] == pytest.approx([0.066, 0.036, 0.031])


def test_quicklook_tells_cloud_outside_aoi_and_nodata_apart(product):
    with rasterio.open(product.product) as ds:
        assert ds.shape == (20, 20)
        data = ds.read(1)
    r0, r1, c0, c1 = cloud_regions(SIZE, 60)["opaque"]
    cloud = (slice(r0, r1), slice(c0, c1))
    nodata = nodata_mask(SIZE, 60)
    # every region of the test holds NoData in the product: only the quicklook tells them apart
    assert (data[cloud] == 0).all() and (data[nodata] == 0).all() and data[19, 0] == 0
    with Image.open(product.quicklook) as im:
        assert im.mode == "RGBA"
        px = np.asarray(im)
    assert px.shape[0] >= 20 and px.shape[1] > 20  # the map, with a legend on its right
    seen = {"cloud": px[cloud].reshape(-1, 4), "nodata": px[:20, :20][nodata], "outside": px[19:20, 0:1].reshape(-1, 4)}
    for name, code in (("cloud", CLOUD), ("nodata", NO_DATA), ("outside", OUTSIDE_AOI)):
        assert (seen[name] == MASK_STYLES[code][1]).all(), name
    colours = {tuple(seen[n][0]) for n in seen}
    assert len(colours) == 3
    assert px[5, 10, 3] == 255 and tuple(px[5, 10]) not in colours  # a pixel with a value
