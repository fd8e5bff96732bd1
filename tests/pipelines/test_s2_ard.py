"""The S2-preprocess component and the s2_ard pipeline: signature kept in line with the declared
parameters, compiled YAML in sync with the code, and a real local run with kfp.local."""

from __future__ import annotations

import json

import pytest
import rasterio
import yaml

from components.s2_preprocess.component import s2_preprocess
from components.s2_preprocess.params import S2PreprocessParams
from pipelines.compile import COMPILED
from tests.fixtures.s2_products import write_s2_product
from tests.kfp_contract import assert_inputs_match_params

COMPONENT_ONLY = {"product_uri", "input_product"}



def test_component_inputs_match_declared_params():
    assert_inputs_match_params(s2_preprocess, S2PreprocessParams, COMPONENT_ONLY)


def test_component_outputs():
    outputs = s2_preprocess.component_spec.outputs
    assert {k: v.type for k, v in outputs.items()} == {
        "product": "system.Dataset@0.0.1", "quicklook": "system.HTML@0.0.1", "metrics": "system.Metrics@0.0.1"}


def test_compiled_pipeline_fans_out_in_parallel():
    spec = next(yaml.safe_load_all((COMPILED / "s2_ard.yaml").read_text()))
    loop = next(t for name, t in spec["root"]["dag"]["tasks"].items() if name.startswith("for-loop"))
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("products")
    assert loop["iteratorPolicy"]["parallelismLimit"] == 4
    executor = spec["deploymentSpec"]["executors"]["exec-s2-preprocess"]["container"]
    assert executor["image"].startswith("ghcr.io/") and "pip install" not in json.dumps(executor["command"])


def test_pipeline_runs_locally_on_two_products(kfp_local, tmp_path):
    from pipelines.s2_ard import s2_ard

    products = [str(write_s2_product(tmp_path / "a", size_10m=60)),
                str(write_s2_product(tmp_path / "b", size_10m=60, sensing="20221015T115411", as_zip=True))]
    s2_ard(products=products, resolution=20.0, cloudmask="L2A", bands="B2,B3,B4,B8,B11")
    records = sorted(kfp_local.rglob("run.json"))
    assert len(records) == 2
    for record in records:
        folder = record.parent
        tif = next(folder.glob("*_20m.tif"))
        with rasterio.open(tif) as ds:
            assert (ds.count, ds.res, ds.descriptions) == (5, (20.0, 20.0), ("B2", "B3", "B4", "B8", "B11"))
            assert (ds.read(1) == 0).any() and (ds.read(1) > 0).any()
        assert next(folder.glob("*_quicklook.png")).stat().st_size > 0
    metrics = [json.loads(p.read_text()) for p in kfp_local.rglob("executor_output.json")]
    assert metrics, "no executor output"
    html = list(kfp_local.rglob("quicklook"))
    assert html and "data:image/png;base64," in html[0].read_text()


def test_component_fails_with_the_service_message(kfp_local, tmp_path):
    with pytest.raises(RuntimeError):
        s2_preprocess(product_uri=str(tmp_path / "absent.SAFE"))
