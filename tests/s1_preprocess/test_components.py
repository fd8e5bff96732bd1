"""The S1 pre-processing components and the s1_ard pipeline: signatures in line with the
declared parameters, compiled YAML in sync, and a real local run with kfp.local."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio
import yaml

from components.s1_preprocess.component import s1_grd_preprocess, s1_slc_preprocess
from components.s1_preprocess.params import S1GRDParams, S1SLCParams
from tests.fixtures import s1_products

COMPILED = Path(__file__).resolve().parents[2] / "pipelines" / "compiled"
KFP_TYPES = {"str": "String", "optional_str": "String", "list": "String", "float": "Float", "int": "Integer",
             "bool": "Boolean"}
COMPONENT_ONLY = {"product_uri", "input_product"}


def _default(spec):
    if spec.default is None:
        return ""
    if isinstance(spec.default, tuple):
        return ",".join(spec.default)
    return spec.default


@pytest.mark.parametrize("component, params", [(s1_grd_preprocess, S1GRDParams), (s1_slc_preprocess, S1SLCParams)])
def test_component_inputs_match_declared_params(component, params):
    inputs = component.component_spec.inputs
    specs = {s.name: s for s in params.specs()}
    assert set(inputs) - COMPONENT_ONLY == set(specs)
    for name, spec in specs.items():
        assert inputs[name].type == KFP_TYPES[spec.kind], name
        assert inputs[name].default == _default(spec), name


def test_compiled_yaml_is_in_sync(tmp_path):
    from kfp import compiler

    from pipelines.s1_ard import s1_ard
    from pipelines.s1_change import s1_change

    for name, func in (("s1_ard", s1_ard), ("s1_change", s1_change)):
        fresh = tmp_path / f"{name}.yaml"
        compiler.Compiler().compile(func, str(fresh))
        committed = COMPILED / fresh.name
        assert committed.exists(), f"run `make compile`: {committed} is missing"
        assert yaml.safe_load(fresh.read_text()) == yaml.safe_load(committed.read_text()), \
            f"{committed.name} is stale: run `make compile`"


def test_s1_ard_fans_out_in_parallel():
    spec = yaml.safe_load((COMPILED / "s1_ard.yaml").read_text())
    loop = next(t for name, t in spec["root"]["dag"]["tasks"].items() if name.startswith("for-loop"))
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("products")
    assert loop["iteratorPolicy"]["parallelismLimit"] == 4
    executor = spec["deploymentSpec"]["executors"]["exec-s1-grd-preprocess"]["container"]
    assert executor["image"].startswith("ghcr.io/") and "pip install" not in json.dumps(executor["command"])


@pytest.fixture
def kfp_local(tmp_path):
    import kfp.local

    root = tmp_path / "pipeline_root"
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
                   workspace_root=str(tmp_path / "workspace"))
    return root


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
