"""The edges of what S2-preprocess accepts for its grid: the coarsest resolution still writes a
product, an AoI larger than the tile (up to the whole world) keeps the whole tile, and a compound
CRS (horizontal + heights) is used by its horizontal part. The refusals are in test_bad_inputs."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from components.s2_preprocess.params import S2PreprocessParams
from components.s2_preprocess.service import run
from tests.fixtures.s2_products import write_s2_product

WORLD = "POLYGON((-180 -90,180 -90,180 90,-180 90,-180 -90))"
NEAR_WORLD = "POLYGON((-179 -89,179 -89,179 89,-179 89,-179 -89))"


@pytest.fixture(scope="module")
def l2a(tmp_path_factory):
    return write_s2_product(tmp_path_factory.mktemp("limits"), size_10m=60)  # a 600 m tile


@pytest.fixture(scope="module")
def without_aoi(l2a, tmp_path_factory):
    result = run(str(l2a), S2PreprocessParams(), str(tmp_path_factory.mktemp("whole")))
    with rasterio.open(result.product) as ds:
        return ds.read(), result.metrics


def test_the_coarsest_resolution_leaves_two_pixels_a_side(l2a, tmp_path):
    result = run(str(l2a), S2PreprocessParams(resolution=300), str(tmp_path / "out"))
    with rasterio.open(result.product) as ds:
        assert (ds.width, ds.height) == (2, 2)


@pytest.mark.parametrize("wkt", [WORLD, NEAR_WORLD], ids=["world", "near-world"])
def test_an_aoi_around_the_tile_keeps_the_whole_tile(wkt, l2a, without_aoi, tmp_path):
    result = run(str(l2a), S2PreprocessParams(aoi=wkt), str(tmp_path / "out"))
    data, metrics = without_aoi
    with rasterio.open(result.product) as ds:
        np.testing.assert_array_equal(ds.read(), data)
    assert result.metrics["valid_percent"] == metrics["valid_percent"] > 50


def test_a_world_aoi_also_keeps_the_tile_in_another_crs(l2a, tmp_path):
    plain = run(str(l2a), S2PreprocessParams(projection="EPSG:3035"), str(tmp_path / "plain"))
    world = run(str(l2a), S2PreprocessParams(projection="EPSG:3035", aoi=WORLD), str(tmp_path / "world"))
    with rasterio.open(plain.product) as a, rasterio.open(world.product) as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_a_compound_crs_is_used_by_its_horizontal_part(l2a, tmp_path):
    result = run(str(l2a), S2PreprocessParams(projection="EPSG:7415"), str(tmp_path / "out"))  # RD New + NAP height
    with rasterio.open(result.product) as ds:
        assert ds.crs.is_projected and (ds.read(1) != 0).any()
