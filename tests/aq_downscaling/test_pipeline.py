"""The aqgan KFP components and the aq_downscaling pipeline: declared inputs/outputs, compiled YAML
in sync with the code, training placed on a GPU node through pipelines.gpu, and a real local run
(kfp.local, subprocess runner) of preproc -> train -> generate -> evaluate with a tiny config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from components.aq_downscaling.component import ML_IMAGE, aq_evaluate, aq_generate, aq_preproc, aq_train
from pipelines.compile import COMPILED
from tests.fixtures.cams_products import make_scene, scene_config, write_scene

AOI = (42.0, 43.6, 3.0, 4.6)


def test_component_interfaces():
    def io(c):
        spec = c.component_spec
        return ({k: v.type for k, v in (spec.inputs or {}).items()}, {k: v.type for k, v in spec.outputs.items()})

    assert io(aq_preproc) == ({"config": "String", "start_date": "String", "end_date": "String", "dataset": "String"},
                              {"tiles": "system.Dataset@0.0.1"})
    ins, outs = io(aq_train)
    assert ins["tiles"] == "system.Dataset@0.0.1" and outs == {"model": "system.Model@0.0.1",
                                                               "metrics": "system.Metrics@0.0.1",
                                                               "losses": "system.HTML@0.0.1"}
    ins, outs = io(aq_generate)
    assert ins["model"] == "system.Model@0.0.1" and ins["members"] == "Integer"
    assert outs == {"ensemble": "system.Dataset@0.0.1", "quicklook": "system.HTML@0.0.1"}
    ins, outs = io(aq_evaluate)
    assert ins["ensemble"] == "system.Dataset@0.0.1"
    assert outs == {"metrics": "system.Metrics@0.0.1", "report": "system.HTML@0.0.1"}


def test_compiled_steps_and_order():
    """Every step on the ML image, in chain order (GPU placement: tests/pipelines/test_gpu_steps.py)."""
    spec = next(yaml.safe_load_all((COMPILED / "aq_downscaling.yaml").read_text()))
    for ex in spec["deploymentSpec"]["executors"].values():
        assert ex["container"]["image"] == ML_IMAGE
    dag = spec["root"]["dag"]["tasks"]
    assert dag["aq-train"]["dependentTasks"] == ["aq-preproc"]
    assert dag["aq-evaluate"]["dependentTasks"] == ["aq-generate"]


def test_pipeline_runs_locally(kfp_local, tmp_path):
    from pipelines.aq_downscaling import aq_downscaling

    data = tmp_path / "data"
    write_scene(make_scene(hours=48, eac4_rows=4, eac4_cols=4, seed=5), data)
    config = scene_config(data, AOI, input_frame=(2, 2), output_frame=(8, 8), ensemble_size=3,
                          extra={"training.epochs": 1})
    aq_downscaling(config=config, train_start="2021010100", train_end="2021010115", test_start="2021010118",
                   test_end="2021010121")
    tiles = list(kfp_local.rglob("tiles.nc"))
    models = list(kfp_local.rglob("model.pt"))
    ensembles = [p for p in kfp_local.rglob("aqgan_*.nc")]
    assert len(tiles) == len(models) == len(ensembles) == 1
    assert (models[0].parent / "losses.csv").exists()
    outputs = [json.loads(p.read_text()) for p in kfp_local.rglob("executor_output.json")]
    logged = {}
    for o in outputs:
        for art in o.get("artifacts", {}).values():
            for a in art.get("artifacts", []):
                logged.update(a.get("metadata", {}))
    for key in ("crps", "bilinear_mae", "lanczos_mae", "spread_skill", "rank_flatness", "critic_loss"):
        assert key in logged and np.isfinite(logged[key]), key
    reports = [p for p in kfp_local.rglob("report") if p.is_file()]
    assert reports and "<svg" in reports[0].read_text() and "CRPS" in reports[0].read_text()
    quicklooks = [p for p in kfp_local.rglob("quicklook") if p.is_file()]
    assert quicklooks and "data:image/png;base64," in quicklooks[0].read_text()


def test_component_fails_with_the_service_message(kfp_local):
    with pytest.raises(RuntimeError):
        aq_preproc(config="training: {lerning_rate: 1}", start_date="2021010100", end_date="2021010200")
