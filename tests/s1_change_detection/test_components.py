"""The S1-CD component and the s1_change pipeline: signature and a local run with kfp.local."""

from __future__ import annotations

import json

import pytest

from components.s1_change_detection.component import s1_change_detection, s1_change_detection_snap
from components.s1_change_detection.params import S1CDParams

from tests.kfp_contract import assert_inputs_match_params

COMPONENT_ONLY = {"input1_uri", "input2_uri", "input1", "input2"}


@pytest.mark.parametrize("component", [s1_change_detection, s1_change_detection_snap])
def test_component_inputs_match_declared_params(component):
    assert_inputs_match_params(component, S1CDParams, COMPONENT_ONLY)


def test_s1_change_runs_locally(real_slc, kfp_local, tmp_path):
    from pipelines.s1_change import s1_change
    from tests.fixtures import s1_products

    root = kfp_local
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
