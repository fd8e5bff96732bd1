"""The osm-features command line on the real extracts: GeoPackage output, clipping, the help
listing every parameter, and object storage in and out (a real SeaweedFS server)."""

from __future__ import annotations

import json

import pyogrio
import pyogrio.raw
import pytest
import shapely
from shapely.geometry import shape

from components.osm_features.cli import main
from components.osm_features.dictionary import load_dictionary
from components.osm_features.params import OsmFeaturesParams

from tests.stac_schema import validate_item

from .conftest import VADUZ_WKT, run_cli


def test_geopackage_has_one_layer_per_class(liechtenstein, liechtenstein_vaduz, tmp_path):
    classes = "transport,energy,hospital,building"
    run = run_cli(liechtenstein, tmp_path / "gpkg", "--features", classes, "--AoI", VADUZ_WKT,
                  "--format", "gpkg")
    assert run.product.suffix == ".gpkg"
    assert run.stac["assets"]["data"]["type"] == "application/geopackage+sqlite3"
    validate_item(run.stac)
    d = load_dictionary()
    wanted = d.expand(classes.split(","))
    layers = dict(pyogrio.list_layers(run.product))
    assert set(layers) == set(wanted)
    expected = {k: v["features"] for k, v in liechtenstein_vaduz.classes.items() if k in wanted}
    for name in wanted:
        info = pyogrio.read_info(run.product, layer=name)
        assert info["features"] == expected[name], name
        assert info["crs"] == "EPSG:4326"
        assert list(info["fields"])[:5] == ["class", "category", "osm_type", "osm_id", "osm_timestamp"]
    buildings = pyogrio.read_info(run.product, layer="building")
    assert buildings["geometry_type"] == "MultiPolygon"
    types = dict(zip(buildings["fields"], buildings["dtypes"]))
    assert types["osm_id"] == "int64" and types["levels"] == "int64" and types["height_m"] == "float64"
    _, _, geoms, _ = pyogrio.raw.read(run.product, layer="building")
    assert all(g.is_valid for g in shapely.from_wkb(geoms))


def test_clip_keeps_geometries_inside_the_aoi(liechtenstein, liechtenstein_vaduz, tmp_path):
    run = run_cli(liechtenstein, tmp_path / "clip", "--features", "roads,rail_line,school,industrial_area",
                  "--AoI", VADUZ_WKT, "--clip", "true")
    aoi = shapely.from_wkt(VADUZ_WKT).buffer(1e-7)
    features = run.geojson()["features"]
    assert features
    for f in features:
        g = shape(f["geometry"])
        assert g.is_valid and aoi.contains(g), f["id"]
    unclipped = {k: v["features"] for k, v in liechtenstein_vaduz.classes.items()}
    for name, stats in run.classes.items():
        assert stats["features"] <= unclipped[name]


def test_help_lists_every_parameter(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for spec in OsmFeaturesParams.specs():
        assert f"--{spec.name}" in text
        for flag in spec.flags:
            assert flag in text
    for flag in ("--input", "--output", "serve"):
        assert flag in text
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    for flag in ("--input", "--host", "--port", "--features", "--dictionary", "--max_aoi_km2", "--max_features"):
        assert flag in text


def test_classes_command(capsys):
    assert main(["classes"]) == 0
    text = capsys.readouterr().out
    for name in load_dictionary().names:
        assert name in text
    assert main(["classes", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {c["name"] for c in data["classes"]} == set(load_dictionary().names)


@pytest.mark.s3
def test_s3_input_and_output(liechtenstein, liechtenstein_vaduz, s3_server, monkeypatch, capsys):
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    client = s3_server.client()
    if not client.bucket_exists("osm"):
        client.make_bucket("osm")
    client.fput_object("osm", "extracts/liechtenstein-2013-08-03.osm.pbf", str(liechtenstein))
    code = main(["--input", "s3://osm/extracts/liechtenstein-2013-08-03.osm.pbf",
                 "--output", "s3://osm/products/vaduz", "--features", "all", "--AoI", VADUZ_WKT])
    assert code == 0
    out = capsys.readouterr().out
    assert "product: s3://osm/products/vaduz/liechtenstein-2013-08-03_features.geojson" in out
    keys = {o.object_name for o in client.list_objects("osm", prefix="products/vaduz/", recursive=True)}
    stem = "products/vaduz/liechtenstein-2013-08-03_features"
    assert keys == {f"{stem}.geojson", f"{stem}.json", f"{stem}_quicklook.png", "products/vaduz/run.json"}
    collection = json.loads(client.get_object("osm", f"{stem}.geojson").read())
    assert {f["id"] for f in collection["features"]} == {f["id"] for f in liechtenstein_vaduz.geojson()["features"]}
