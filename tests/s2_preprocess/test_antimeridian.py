"""A tile across the antimeridian (UTM zone 60, as T60UXE): its footprint is written with
longitudes of both signs, jumping from about 179.99 to -179.99. An AoI on either side of 180
must find the tile, and a product in lon/lat must be the tile's width, not the globe's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from components.s2_preprocess.params import S2PreprocessParams
from components.s2_preprocess.service import run
from tests.fixtures.s2_products import write_s2_product
from tests.stac_schema import validate_item

ULY = 5900040.0  # 53.20 to 53.21 N
SIZE = 120  # 10 m pixels: a 1.2 km tile


@pytest.fixture(scope="module")
def tile(tmp_path_factory):
    x180, _ = Transformer.from_crs(4326, 32660, always_xy=True).transform(180.0, 53.2)
    ulx = round(x180 - SIZE * 10 / 2, -1)  # the antimeridian through the middle of the tile
    return write_s2_product(tmp_path_factory.mktemp("t60"), tile="T60UXE", epsg=32660, ulx=ulx, uly=ULY,
                            size_10m=SIZE, clouds=False, nodata_corner=False)


def _run(product, out, **params):
    result = run(str(product), S2PreprocessParams(bands=("B2",), resolution=20, **params), str(out))
    with rasterio.open(result.product) as ds:
        data, bounds, crs = ds.read(1, masked=True), ds.bounds, ds.crs
    return data, bounds, crs, json.loads(open(result.stac).read())


def test_a_tile_across_the_antimeridian_in_lon_lat(tile, tmp_path):
    utm, _, _, _ = _run(tile, tmp_path / "utm")
    data, bounds, crs, item = _run(tile, tmp_path / "lonlat", projection="EPSG:4326")
    assert crs.to_epsg() == 4326
    assert bounds.left < 180.0 < bounds.right and bounds.right - bounds.left < 0.05  # 1.2 km, not 360 degrees
    # the pixels east of 180 are the tile's (the warp found them across the antimeridian)
    east = data[:, int((180.0 - bounds.left) / (bounds.right - bounds.left) * data.shape[1]) + 1:]
    assert east.count() > 0.3 * east.size
    assert abs(np.ma.median(data) - np.ma.median(utm)) <= 0.02 * np.ma.median(utm)
    for stac in (item, _run(tile, tmp_path / "utm2")[3]):
        validate_item(stac)
        assert stac["geometry"]["type"] == "MultiPolygon"  # cut at the antimeridian (RFC 7946)
        west, _, east_lon, _ = stac["bbox"]
        assert 179.9 < west < 180.0 and -180.0 < east_lon < -179.9


@pytest.mark.parametrize("lon", [179.996, -179.996])
def test_an_aoi_on_either_side_of_the_antimeridian(tile, tmp_path, lon):
    d = 0.002
    aoi = f"POLYGON(({lon - d} 53.204,{lon + d} 53.204,{lon + d} 53.208,{lon - d} 53.208,{lon - d} 53.204))"
    data, _, _, _ = _run(tile, tmp_path / "aoi", aoi=aoi)
    assert data.count() > 0.5 * data.size
