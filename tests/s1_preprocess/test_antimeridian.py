"""A scene across the antimeridian. ESA writes its longitudes in [-180, 180], so they jump from
about 179.9 to -179.9 inside the footprint and the geolocation grid. The fixture is the Rome GRD
crop turned about the Earth's axis until the antimeridian runs through it: the geometry stays
exact, so the product must be the one the crop gives where it lies, moved by the turn."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import rasterio

from components.s1_preprocess.cli import main_grd
from tests.fixtures import s1_products
from tests.stac_schema import validate_item


@pytest.fixture(scope="module")
def crops(real_grd, tmp_path_factory):
    """The crop's product where it lies, and the crop turned so that the antimeridian runs
    through the middle of that product."""
    root = tmp_path_factory.mktemp("antimeridian")
    plain = _product(s1_products.write_grd(root / "plain", source=real_grd, pols=("VV",)), root / "out")
    bounds = plain[1]
    turn = 180.0 - (bounds.left + bounds.right) / 2 + 0.0123  # not a whole number of pixels either
    turned = s1_products.turn_about_axis(s1_products.write_grd(root / "turned", source=real_grd, pols=("VV",)),
                                         turn)
    return plain, turned, turn


def _product(product, out, *args):
    assert main_grd(["--input", str(product), "--outdir", str(out), "--speckle", "None", "--resolution", "100",
                     *args]) == 0
    record = json.loads((out / "run.json").read_text())
    with rasterio.open(out / record["outputs"]["product"]) as ds:
        data, bounds = ds.read(1, masked=True), ds.bounds
    item = json.loads((out / record["outputs"]["stac"]).read_text())
    return data, bounds, item


def test_a_scene_across_the_antimeridian_is_the_scene_moved(crops, tmp_path):
    (data, bounds, _), turned, turn = crops
    moved, moved_bounds, item = _product(turned, tmp_path / "turned")
    # one scene's width, with longitudes running on beyond 180 (GDAL's grid went round the globe)
    assert moved_bounds.left < 180.0 < moved_bounds.right
    assert moved_bounds.left == pytest.approx(bounds.left + turn, abs=0.002)
    assert moved.shape[1] == pytest.approx(data.shape[1], abs=1) and moved.shape[0] == data.shape[0]
    assert moved.count() == pytest.approx(data.count(), rel=0.01)  # the whole scene, no hole at 180
    assert moved.mean() == pytest.approx(data.mean(), rel=0.02)
    # STAC: the footprint cut at the antimeridian, the bbox's west east of its east (RFC 7946)
    validate_item(item)
    assert item["geometry"]["type"] == "MultiPolygon"
    west, _, east, _ = item["bbox"]
    assert 179.9 < west < 180.0 and -180.0 < east < -179.9


@pytest.mark.parametrize("side", [-1, 1])
def test_an_aoi_on_either_side_of_the_antimeridian(crops, tmp_path, side):
    (_, bounds, _), turned, _ = crops
    lon = 180.0 + side * (bounds.right - bounds.left) / 5
    lat = (bounds.bottom + bounds.top) / 2
    lon = (lon + 180.0) % 360.0 - 180.0  # as a user writes it: in [-180, 180]
    d = 0.004  # inside the 5 km x 4 km crop
    aoi = f"POLYGON(({lon - d} {lat - d},{lon + d} {lat - d},{lon + d} {lat + d},{lon - d} {lat + d},{lon - d} {lat - d}))"
    data, aoi_bounds, _ = _product(turned, tmp_path / "aoi", "--AoI", aoi)
    assert data.count() / data.size > 0.8  # the AoI's pixels, less those its edge cuts
    assert (aoi_bounds.left + aoi_bounds.right) / 2 == pytest.approx(lon % 360.0, abs=0.002)
