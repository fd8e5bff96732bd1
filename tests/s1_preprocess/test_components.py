"""The S1 pre-processing components and the s1_ard pipeline: signatures in line with the
declared parameters, the compiled fan-out, and a real local run with kfp.local."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio
import yaml

from components.s1_preprocess.component import (s1_grd_preprocess, s1_grd_preprocess_snap, s1_slc_preprocess,
                                                s1_slc_preprocess_snap)
from components.s1_preprocess.params import S1GRDParams, S1SLCParams
from tests.fixtures import s1_products

COMPILED = Path(__file__).resolve().parents[2] / "pipelines" / "compiled"
from tests.kfp_contract import assert_inputs_match_params

COMPONENT_ONLY = {"product_uri", "input_product"}


@pytest.mark.parametrize("component, params", [(s1_grd_preprocess, S1GRDParams), (s1_slc_preprocess, S1SLCParams),
                                               (s1_grd_preprocess_snap, S1GRDParams),
                                               (s1_slc_preprocess_snap, S1SLCParams)])
def test_component_inputs_match_declared_params(component, params):
    assert_inputs_match_params(component, params, COMPONENT_ONLY)


def test_s1_ard_fans_out_in_parallel():
    spec = next(yaml.safe_load_all((COMPILED / "s1_ard.yaml").read_text()))  # then the platform spec
    loop = next(t for name, t in spec["root"]["dag"]["tasks"].items() if name.startswith("for-loop"))
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("products")
    assert loop["iteratorPolicy"]["parallelismLimit"] == 4
    executor = spec["deploymentSpec"]["executors"]["exec-s1-grd-preprocess"]["container"]
    assert executor["image"].startswith("ghcr.io/") and "pip install" not in json.dumps(executor["command"])


def test_s1_ard_runs_locally_on_two_products(kfp_local, real_grd, tmp_path):
    from pipelines.s1_ard import s1_ard

    a = s1_products.write_grd(tmp_path / "a", source=real_grd, pols=("VV",), window=(7900, 21900, 150, 200))
    b = s1_products.write_grd(tmp_path / "b", source=real_grd, pols=("VV",), window=(7900, 21900, 150, 200),
                              shift_days=12, as_zip=True)
    s1_ard(products=[str(a), str(b)], resolution=40.0, calibration="SigmaDB", speckle="Boxcar")
    records = sorted(kfp_local.rglob("run.json"))
    assert len(records) == 2
    for record in records:
        rec = json.loads(record.read_text())
        with rasterio.open(record.parent / rec["outputs"]["product"]) as ds:
            assert ds.crs.to_epsg() == 4326 and ds.descriptions == ("SigmaDB_VV",)
    html = list(kfp_local.rglob("quicklook"))
    assert html and "data:image/png;base64," in html[0].read_text()


def test_component_fails_with_the_service_message(kfp_local, tmp_path):
    with pytest.raises(RuntimeError):
        s1_grd_preprocess(product_uri=str(tmp_path / "absent.SAFE"))
