"""The S1-CD component and the s1_change pipeline: signature and a local run with kfp.local."""

from __future__ import annotations

import json

import pytest

from components.s1_change_detection.component import s1_change_detection
from components.s1_change_detection.params import S1CDParams

KFP_TYPES = {"str": "String", "optional_str": "String", "list": "String", "float": "Float", "int": "Integer",
             "bool": "Boolean"}
COMPONENT_ONLY = {"input1_uri", "input2_uri", "input1", "input2"}


def test_component_inputs_match_declared_params():
    inputs = s1_change_detection.component_spec.inputs
    specs = {s.name: s for s in S1CDParams.specs()}
    assert set(inputs) - COMPONENT_ONLY == set(specs)
    for name, spec in specs.items():
        default = "" if spec.default is None else (",".join(spec.default) if isinstance(spec.default, tuple)
                                                   else spec.default)
        assert inputs[name].type == KFP_TYPES[spec.kind], name
        assert inputs[name].default == default, name


def test_s1_change_runs_locally(real_slc, tmp_path):
    import kfp.local

    from pipelines.s1_change import s1_change
    from tests.fixtures import s1_products

    root = tmp_path / "pipeline_root"
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
                   workspace_root=str(tmp_path / "workspace"))
    a = s1_products.write_slc(tmp_path / "a", source=real_slc, bursts=(4, 1), samples=(9000, 160))
    b = s1_products.write_slc(tmp_path / "b", source=real_slc, bursts=(4, 1), samples=(9000, 160), date=1,
                              shift_days=12)
    s1_change(input1=str(a), input2=str(b), resolution=60.0, speckle="Boxcar")
    record = json.loads(next(root.rglob("run.json")).read_text())
    assert set(record["outputs"]["products"]) == {"coherence", "backscatter_date1", "backscatter_date2", "acd",
                                                  "mtc", "change"}
    metrics = [json.loads(p.read_text()) for p in root.rglob("executor_output.json")]
    assert metrics
    with pytest.raises(RuntimeError):
        s1_change(input1=str(a), input2=str(tmp_path / "absent.zip"))
