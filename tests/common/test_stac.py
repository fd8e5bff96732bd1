"""STAC items and run records: the item S2-preprocess writes for a synthetic L2A product (every
extension field, validated offline against the core and each declared extension's schema), the
validator itself (an unshipped or undeclared extension fails, each extension schema rejects a
wrong field), the file checksums, and the software versions in run.json. The items of the other
services are validated in their own tests (search for ``validate_item``)."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import rasterio

from components import __version__
from components.common import outputs, stac
from components.s2_preprocess.params import S2PreprocessParams
from components.s2_preprocess.service import run
from tests.fixtures.s2_products import write_s2_product
from tests.stac_schema import EXTENSIONS, extension_schemas, validate_item

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def s2_item(tmp_path_factory):
    folder = tmp_path_factory.mktemp("s2stac")
    product = write_s2_product(folder / "in", size_10m=60)
    result = run(str(product), S2PreprocessParams(bands=("B2", "B3", "B4", "B8A"), resolution=20, cloudmask="L2A"),
                 str(folder / "out"))
    return json.loads(Path(result.stac).read_text()), result, product


def test_s2_item_validates_with_every_extension(s2_item):
    item, _, _ = s2_item
    validate_item(item)
    assert sorted(item["stac_extensions"]) == sorted(
        f"https://stac-extensions.github.io/{name}/schema.json"
        for name in ("eo/v2.0.0", "raster/v2.0.0", "projection/v2.0.0", "file/v2.1.0", "processing/v1.2.0",
                     "sentinel-2/v1.0.0", "mgrs/v1.0.0"))


def test_s2_item_fields(s2_item):
    item, result, product = s2_item
    props = item["properties"]
    assert (props["mgrs:utm_zone"], props["mgrs:latitude_band"], props["mgrs:grid_square"]) == (29, "U", "NU")
    assert props["s2:processing_baseline"] == "04.00" and props["s2:product_uri"] == product.name
    assert props["platform"] == "sentinel-2a" and props["processing:level"] == "L2A"
    assert props["processing:software"]["GDAL"] == rasterio.__gdal_version__
    assert props["eo:cloud_cover"] == pytest.approx(result.metrics["cloud_percent"], abs=1e-3)
    assert "s2:tile" not in props
    bands = item["assets"]["data"]["bands"]
    assert [(b["name"], b["eo:common_name"]) for b in bands] == [("B2", "blue"), ("B3", "green"), ("B4", "red"),
                                                                 ("B8A", "nir08")]
    assert bands[3]["eo:center_wavelength"] == pytest.approx(0.8647)
    # baseline 04.00: reflectance = (DN - 1000) / 10000, as the COG itself says
    with rasterio.open(result.product) as ds:
        assert [(b["raster:scale"], b["raster:offset"]) for b in bands] == list(zip(ds.scales, ds.offsets))
    assert all(b["data_type"] == "uint16" and b["nodata"] == 0 and "scale" not in b for b in bands)
    links = {link["rel"]: link["href"] for link in item["links"]}
    assert links == {"self": str(Path(result.stac).absolute()), "derived_from": str(product.absolute())}


def test_every_asset_has_its_size_and_checksum(s2_item):
    item, result, _ = s2_item
    folder = Path(result.stac).parent
    assert set(item["assets"]) == {"data", "thumbnail", "metadata"}
    for asset in item["assets"].values():
        data = (folder / asset["href"]).read_bytes()
        assert asset["file:size"] == len(data)
        assert asset["file:checksum"] == "1220" + hashlib.sha256(data).hexdigest()


def test_an_extension_without_a_shipped_schema_fails(s2_item):
    item = copy.deepcopy(s2_item[0])
    item["stac_extensions"].append("https://stac-extensions.github.io/view/v1.0.0/schema.json")
    with pytest.raises(AssertionError, match="no schema shipped"):
        validate_item(item)


@pytest.mark.parametrize("extension", ["eo", "raster", "processing", "sentinel-2", "mgrs", "file", "projection"])
def test_a_field_of_an_undeclared_extension_fails(s2_item, extension):
    item = copy.deepcopy(s2_item[0])
    item["stac_extensions"] = [u for u in item["stac_extensions"] if f"/{extension}/" not in u]
    with pytest.raises(AssertionError, match="fields of undeclared extensions"):
        validate_item(item)


@pytest.mark.parametrize("where, field, value", [
    ("properties", "s2:tile", "29UNU"),  # not a field of the Sentinel-2 extension
    ("properties", "mgrs:utm_zone", "29"),
    ("properties", "eo:cloud_cover", 140.0),
    ("properties", "processing:software", "0.1.0"),
    ("properties", "proj:shape", [60]),
    ("band", "raster:scale", "0.0001"),
    ("band", "eo:common_name", "B2"),
    ("asset", "file:checksum", "not hex"),
])
def test_each_extension_schema_rejects_a_wrong_field(s2_item, where, field, value):
    item = copy.deepcopy(s2_item[0])
    target = {"properties": item["properties"], "asset": item["assets"]["data"],
              "band": item["assets"]["data"]["bands"][0]}[where]
    target[field] = value
    with pytest.raises(jsonschema.ValidationError):
        validate_item(item)


def test_class_names_and_nodata_follow_the_classification_extension(tmp_path):
    tif = tmp_path / "classes.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8", crs="EPSG:32633",
                       transform=rasterio.transform.from_origin(500000, 5000000, 10, 10), nodata=255) as ds:
        ds.write(np.zeros((1, 4, 4), np.uint8))
    item = stac.raster_item("classes", tif, tif.name, dt.datetime(2020, 1, 1), [stac.Band("class", nodata=255)])
    stac.add_classes(item, [stac.Class(1, "Winter Wheat", color=(255, 0, 16)), stac.Class(255, "no data", nodata=True)])
    stac.add_links(item, None, [("s3://bucket/source.SAFE", "source")])
    stac.write_item(item, tmp_path / "classes.json")
    written = json.loads((tmp_path / "classes.json").read_text())
    validate_item(written)
    assert written["assets"]["data"]["classification:classes"] == [
        {"value": 1, "name": "winter_wheat", "title": "Winter Wheat", "color_hint": "FF0010"},
        {"value": 255, "name": "no_data", "title": "no data", "nodata": True}]
    assert written["links"] == [{"rel": "derived_from", "href": "s3://bucket/source.SAFE", "title": "source"}]


def test_a_class_maps_gdal_sidecar_is_an_asset_of_its_item(tmp_path):
    tif = tmp_path / "classes.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8", crs="EPSG:32633",
                       transform=rasterio.transform.from_origin(500000, 5000000, 10, 10), nodata=255) as ds:
        ds.write(np.ones((1, 4, 4), np.uint8))
    classes = [stac.Class(1, "Water", color=(0, 0, 255)), stac.Class(255, "no data", nodata=True)]
    sidecar = outputs.write_categories(tif, classes)
    item = stac.raster_item("classes", tif, tif.name, dt.datetime(2020, 1, 1), [stac.Band("class", nodata=255)])
    stac.add_classes(item, classes)
    stac.write_item(item, tmp_path / "classes.json")
    written = json.loads((tmp_path / "classes.json").read_text())
    validate_item(written)
    asset = written["assets"]["data-gdal-metadata"]
    assert asset["href"] == sidecar.name == "classes.tif.aux.xml"
    assert asset["roles"] == ["metadata"] and asset["file:size"] == sidecar.stat().st_size


def test_a_nan_nodata_is_written_as_stac_spells_it(tmp_path):
    tif = tmp_path / "f.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=2, height=2, count=1, dtype="float32", crs="EPSG:4326",
                       transform=rasterio.transform.from_origin(0, 1, 0.5, 0.5), nodata=float("nan")) as ds:
        ds.write(np.zeros((1, 2, 2), np.float32))
    item = stac.raster_item("f", tif, tif.name, dt.datetime(2020, 1, 1), [stac.Band("v", nodata=float("nan"))])
    stac.write_item(item, tmp_path / "f.json")
    written = json.loads((tmp_path / "f.json").read_text(), parse_constant=pytest.fail)  # strict JSON: no NaN
    assert written["assets"]["data"]["bands"][0]["nodata"] == "nan"
    validate_item(written)


def test_an_item_naming_a_file_not_written_is_refused(tmp_path):
    tif = tmp_path / "a.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=2, height=2, count=1, dtype="uint8", crs="EPSG:4326",
                       transform=rasterio.transform.from_origin(0, 1, 0.5, 0.5)) as ds:
        ds.write(np.zeros((1, 2, 2), np.uint8))
    item = stac.raster_item("a", tif, tif.name, dt.datetime(2020, 1, 1), [stac.Band("b")])
    stac.add_sidecars(item, "a_quicklook.png")
    with pytest.raises(FileNotFoundError, match="a_quicklook.png"):
        stac.write_item(item, tmp_path / "a.json")
    assert not (tmp_path / "a.json").exists()


def test_shipped_schemas_are_the_versions_declared_and_their_licence_is_noted():
    schemas = extension_schemas()
    for uri in (stac.EO, stac.RASTER, stac.PROCESSING, stac.SENTINEL2):
        assert uri in schemas
    from pystac.extensions import classification, file, mgrs, projection, sar, sat

    for uri in (projection.SCHEMA_URI, file.SCHEMA_URI, mgrs.SCHEMA_URI, sat.SCHEMA_URI, sar.SCHEMA_URI,
                classification.SCHEMA_URI_PATTERN.format(version=classification.DEFAULT_VERSION)):
        assert uri in schemas
    notes = (EXTENSIONS / "README.md").read_text()
    assert "Apache" in notes and all(f"stac-extensions/{p.parent.parent.name}" in notes
                                     for p in EXTENSIONS.glob("*/*/schema.json"))


def test_run_record_names_the_software_versions():
    import scipy  # noqa: F401  (loaded: recorded)

    record = outputs.run_record("x", __version__, {}, [], {}, {}, dt.datetime.now(dt.timezone.utc))
    software = record["software"]
    assert software["eo-kfp-services"] == __version__ and software["numpy"] == np.__version__
    assert (software["rasterio"], software["GDAL"], software["PROJ"]) == (
        rasterio.__version__, rasterio.__gdal_version__, rasterio.__proj_version__)
    assert software["scipy"] == sys.modules["scipy"].__version__


def test_torch_is_recorded_only_when_the_run_loaded_it():
    code = ("import json, sys; from components.common.outputs import software_versions as v; a = v(); "
            "import torch; print(json.dumps([a, v(), torch.__version__]))")
    without, with_torch, version = json.loads(subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True,
                                                             capture_output=True, text=True).stdout)
    assert "torch" not in without and with_torch["torch"] == version
