"""The S2-CD components and the s2_change pipeline: component signature kept in line with the
declared parameters, the compiled DAG (check -> two pre-processings in parallel -> change
detection), and real local runs with kfp.local."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml

from components.s2_change_detection.component import check_pair, s2_change_detection
from components.s2_change_detection.params import S2ChangeParams
from tests.s2_change_detection.pairs import PLANTED, write_pair
from tests.kfp_contract import assert_inputs_match_params, component_default

COMPILED = Path(__file__).resolve().parents[2] / "pipelines" / "compiled"
COMPONENT_ONLY = {"input1_uri", "input2_uri", "input1", "input2"}


def test_component_inputs_match_declared_params():
    assert_inputs_match_params(s2_change_detection, S2ChangeParams, COMPONENT_ONLY)


def test_component_outputs():
    outputs = s2_change_detection.component_spec.outputs
    assert {k: v.type for k, v in outputs.items()} == {
        "change": "system.Dataset@0.0.1", "quicklook": "system.HTML@0.0.1", "report": "system.Markdown@0.0.1",
        "metrics": "system.Metrics@0.0.1"}


def test_pipeline_defaults_follow_the_params():
    from pipelines.s2_change import s2_change

    inputs = s2_change.pipeline_spec.root.input_definitions.parameters
    specs = {s.name: s for s in S2ChangeParams.specs()}
    for name, spec in specs.items():
        value = inputs[name].default_value
        default = component_default(spec)
        got = value.number_value if value.HasField("number_value") else value.string_value
        assert got == default, name


def test_compiled_pipeline_preprocesses_both_products_in_parallel():
    spec = next(yaml.safe_load_all((COMPILED / "s2_change.yaml").read_text()))
    tasks = spec["root"]["dag"]["tasks"]
    pre = [name for name, t in tasks.items() if t["componentRef"]["name"] == "comp-s2-preprocess"
           or t["componentRef"]["name"].startswith("comp-s2-preprocess")]
    assert len(pre) == 2
    for name in pre:
        assert tasks[name]["dependentTasks"] == ["check-pair"]
    cd = tasks["s2-change-detection"]
    assert sorted(cd["dependentTasks"]) == sorted(pre)
    artifacts = cd["inputs"]["artifacts"]
    assert {artifacts[k]["taskOutputArtifact"]["producerTask"] for k in ("input1", "input2")} == set(pre)
    for executor in spec["deploymentSpec"]["executors"].values():
        assert executor["container"]["image"].startswith("ghcr.io/")
        assert "pip install" not in json.dumps(executor["container"]["command"])


def test_pipeline_runs_locally(kfp_local, tmp_path):
    from pipelines.s2_change import s2_change

    first, second = write_pair(tmp_path / "pair")
    s2_change(product1=str(first), product2=str(second), projection="UTM(Auto)", numberClasses=3)
    records = {json.loads(p.read_text())["service"]: p for p in kfp_local.rglob("run.json")}
    assert set(records) == {"S2-preprocess", "S2-CD"}
    folder = records["S2-CD"].parent
    with rasterio.open(next(folder.glob("S2-CD_*_10m.tif"))) as ds:
        classes = ds.read(1)
    planted = np.any([p.mask(classes.shape) for p in PLANTED], axis=0)
    changed = (classes > 0) & (classes < 255)
    assert changed[planted].sum() >= planted.sum() - 12 and not (changed & ~planted).any()
    html = [p for p in kfp_local.rglob("quicklook") if p.is_file()]
    assert any("data:image/png;base64," in p.read_text() and "S2-CD_" in p.read_text() for p in html)
    reports = [p for p in kfp_local.rglob("report") if p.is_file()]
    assert reports and "| class |" in reports[0].read_text()
    outputs = [json.loads(p.read_text()) for p in kfp_local.rglob("executor_output.json")]
    assert outputs


def test_pipeline_refuses_two_tiles_before_preprocessing(kfp_local, tmp_path):
    from pipelines.s2_change import s2_change

    with pytest.raises(RuntimeError):
        s2_change(product1=str(tmp_path / "S2A_MSIL2A_20220601T112121_N0400_R023_T29UNU_20220601T161204.SAFE"),
                  product2=str(tmp_path / "S2A_MSIL2A_20220820T112119_N0400_R023_T30UUU_20220820T161202.zip"))
    assert not list(kfp_local.rglob("run.json"))


def test_check_pair_component(kfp_local):
    task = check_pair(product1="s3://eo/S2A_MSIL2A_20220601T112121_N0400_R023_T29UNU_20220601T161204.zip",
                      product2="s3://eo/S2B_MSIL2A_20220820T112119_N0400_R023_T29UNU_20220820T161202.SAFE/")
    assert task.output == "T29UNU"


def test_component_body_fails_with_the_service_message(tmp_path, capsys):
    """The body the component runs (kfp_runtime.execute), with KFP's own artifact objects."""
    from kfp.dsl import HTML, Dataset, Markdown, Metrics

    from components.s2_change_detection.kfp_runtime import execute

    artifacts = [cls(name=name, uri=str(tmp_path / name), metadata={}) for cls, name in
                 ((Dataset, "change"), (HTML, "quicklook"), (Markdown, "report"), (Metrics, "metrics"))]
    with pytest.raises(SystemExit) as e:
        execute(str(tmp_path / "absent.SAFE"), str(tmp_path / "absent2.SAFE"), *artifacts, {"bands": "B2,B3"})
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        f"S2-CD: error: input1: input not found: {tmp_path / 'absent.SAFE'}"
    with pytest.raises(SystemExit):
        execute("a", "b", *artifacts, {"levelConfidence": "101"})
    assert "parameter 'levelConfidence'" in capsys.readouterr().err
