"""The osm-features components and the osm_features pipeline: signature kept in line with the
declared parameters, compiled YAML in sync with the code, and a real local run with kfp.local."""

from __future__ import annotations

import json

import pytest
import yaml
from kfp import compiler

from components.osm_features.component import osm_features as osm_features_component
from components.osm_features.dictionary import load_dictionary
from components.osm_features.params import OsmFeaturesParams
from pipelines.compile import COMPILED, PIPELINES
from pipelines.osm_features import osm_features

from .conftest import VADUZ_WKT
from tests.kfp_contract import KFP_TYPES, component_default

COMPONENT_ONLY = {"input_uri", "input_pbf"}



def test_component_inputs_match_declared_params():
    inputs = osm_features_component.component_spec.inputs
    specs = {s.name: s for s in OsmFeaturesParams.specs()}
    assert set(inputs) - COMPONENT_ONLY == set(specs)
    for name, spec in specs.items():
        assert inputs[name].type == KFP_TYPES[spec.kind], name
        assert inputs[name].default == component_default(spec), name
    outputs = osm_features_component.component_spec.outputs
    assert {k: v.type for k, v in outputs.items()} == {
        "product": "system.Dataset@0.0.1", "quicklook": "system.HTML@0.0.1", "metrics": "system.Metrics@0.0.1"}


def test_compiled_yaml_is_in_sync(tmp_path):
    assert PIPELINES["osm_features"] is osm_features
    fresh = tmp_path / "osm_features.yaml"
    compiler.Compiler().compile(osm_features, str(fresh))
    committed = COMPILED / "osm_features.yaml"
    assert committed.exists(), f"run `make compile`: {committed} is missing"
    assert yaml.safe_load(fresh.read_text()) == yaml.safe_load(committed.read_text()), \
        f"{committed.name} is stale: run `make compile`"
    spec = yaml.safe_load(committed.read_text())
    assert list(spec["root"]["dag"]["tasks"]) == ["osm-features", "store-product"]
    for executor in spec["deploymentSpec"]["executors"].values():
        assert executor["container"]["image"].startswith("ghcr.io/")
        assert "pip install" not in json.dumps(executor["container"]["command"])


@pytest.fixture
def kfp_local(tmp_path):
    import kfp.local

    root = tmp_path / "pipeline_root"
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
                   workspace_root=str(tmp_path / "workspace"))
    return root


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
