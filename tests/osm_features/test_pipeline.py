"""The osm-features components and the osm_features pipeline: signature kept in line with the
declared parameters, the compiled DAG, and a real local run with kfp.local."""

from __future__ import annotations

import json

import pytest
import yaml

from components.osm_features.component import osm_features as osm_features_component
from components.osm_features.dictionary import load_dictionary
from components.osm_features.params import OsmFeaturesParams
from pipelines.compile import COMPILED, PIPELINES
from pipelines.osm_features import osm_features

from .conftest import VADUZ_WKT
from tests.kfp_contract import assert_inputs_match_params

COMPONENT_ONLY = {"input_uri", "input_pbf"}


def test_component_inputs_match_declared_params():
    assert_inputs_match_params(osm_features_component, OsmFeaturesParams, COMPONENT_ONLY)
    outputs = osm_features_component.component_spec.outputs
    assert {k: v.type for k, v in outputs.items()} == {
        "product": "system.Dataset@0.0.1", "quicklook": "system.HTML@0.0.1", "metrics": "system.Metrics@0.0.1"}


def test_compiled_pipeline_extracts_then_stores():
    assert PIPELINES["osm_features"] is osm_features
    spec = next(yaml.safe_load_all((COMPILED / "osm_features.yaml").read_text()))
    assert list(spec["root"]["dag"]["tasks"]) == ["osm-features", "store-product"]


def test_pipeline_runs_locally(kfp_local, tmp_path, liechtenstein, liechtenstein_vaduz):
    destination = tmp_path / "store"
    osm_features(input_uri=str(liechtenstein), features="transport,emergency,hospital", aoi=VADUZ_WKT,
                 destination=str(destination))
    stored = sorted(p.name for p in destination.iterdir())
    stem = "liechtenstein-2013-08-03_features"
    assert stored == [f"{stem}.geojson", f"{stem}.json", f"{stem}_quicklook.png", "run.json"]
    collection = json.loads((destination / f"{stem}.geojson").read_text())
    classes = set(load_dictionary().expand(["transport", "emergency", "hospital"]))
    expected = {f["id"] for f in liechtenstein_vaduz.geojson()["features"] if f["properties"]["class"] in classes}
    assert {f["id"] for f in collection["features"]} == expected
    html = next(kfp_local.rglob("quicklook"))
    assert "data:image/png;base64," in html.read_text()
    outputs = [json.loads(p.read_text()) for p in kfp_local.rglob("executor_output.json")]
    assert any("features" in json.dumps(o) for o in outputs)


def test_component_fails_with_the_service_message(kfp_local, tmp_path):
    with pytest.raises(RuntimeError):
        osm_features_component(input_uri=str(tmp_path / "absent.osm.pbf"))
