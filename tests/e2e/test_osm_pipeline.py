"""osm_features, compiled, run in the eo image against SeaweedFS: the Liechtenstein extract of the
local test read from s3://, the product stored to an s3:// prefix (skipped when the shared sample
data is absent)."""

from __future__ import annotations

import json

from components.osm_features.cli import main as osm_features_cli
from components.osm_features.dictionary import load_dictionary
from tests.conftest import sample
from tests.e2e.harness import files, logged_metadata, run_compiled
from tests.osm_features.conftest import LIECHTENSTEIN, VADUZ_WKT

STEM = "liechtenstein-2013-08-03_features"
CLASSES = "transport,emergency,hospital"


def test_osm_features_in_containers(container_env, upload, bucket_objects, s3_server, tmp_path):
    env = container_env("osm_features")
    pbf = sample(LIECHTENSTEIN)
    input_uri = upload(pbf, f"eo-inputs/e2e/osm/{pbf.name}")
    destination = "eo-outputs/e2e/osm/vaduz"
    root = run_compiled("osm_features", {"input_uri": input_uri, "features": CLASSES, "aoi": VADUZ_WKT,
                                         "destination": f"s3://{destination}"}, tmp_path / "root", env)
    stored = bucket_objects(destination)
    assert stored == [f"{STEM}.geojson", f"{STEM}.json", f"{STEM}_quicklook.png", "run.json"], \
        sorted(p.relative_to(root) for p in root.rglob("*"))
    bucket, _, prefix = destination.partition("/")
    client = s3_server.client()
    collection = json.loads(client.get_object(bucket, f"{prefix}/{STEM}.geojson").read())
    run = json.loads(client.get_object(bucket, f"{prefix}/run.json").read())
    assert run["inputs"][0]["uri"] == input_uri and run["outputs"]["features"] == len(collection["features"])
    # the same features as the command line run here over the same AoI
    reference = tmp_path / "reference"
    assert osm_features_cli(["--input", str(pbf), "--output", str(reference), "--features", "all",
                             "--AoI", VADUZ_WKT]) == 0
    classes = set(load_dictionary().expand(CLASSES.split(",")))
    everything = json.loads(next(reference.glob("*.geojson")).read_text())
    expected = {f["id"] for f in everything["features"] if f["properties"]["class"] in classes}
    assert expected and {f["id"] for f in collection["features"]} == expected
    # the store step returns the URIs it wrote
    outputs = [json.loads(p.read_text()) for p in root.rglob("executor_output.json")]
    returned = [o["parameterValues"]["Output"] for o in outputs if "Output" in o.get("parameterValues", {})]
    assert len(returned) == 1 and sorted(returned[0].splitlines()) == \
        sorted(f"s3://{destination}/{name}" for name in stored)
    html = files(root, "quicklook")
    assert html and "data:image/png;base64," in html[0].read_text()
    assert any("features" in json.dumps(m) for m in logged_metadata(root).get("metrics", []))
