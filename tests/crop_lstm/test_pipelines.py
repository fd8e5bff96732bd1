"""The four components and the two crop-type pipelines: component signatures kept in line with the
declared parameters, the steps' images, and real local runs with kfp.local on the synthetic chain.
(Compiled YAML in sync and GPU placement: tests/pipelines.)"""

from __future__ import annotations

import json

import pytest
import rasterio
import yaml

from components.crop_lstm.component import tile_classifier, train_lstm
from components.crop_lstm.h5io import load_model
from components.crop_lstm.params import ClassifyParams, TrainParams
from components.images import ML_IMAGE
from components.s2_harmonization.component import monthlycomposite
from components.s2_harmonization.params import MonthlyCompositeParams
from components.timesen2crop.component import timesen2crop
from components.timesen2crop.params import TimeSen2CropParams
from pipelines.compile import COMPILED
from tests.kfp_contract import assert_inputs_match_params

COMPONENTS = [
    (timesen2crop, TimeSen2CropParams, {"archive_uri"}),
    (monthlycomposite, MonthlyCompositeParams, {"input_uri", "input_data"}),
    (train_lstm, TrainParams, {"training_data", "validation_data", "input_uri"}),
    (tile_classifier, ClassifyParams, {"model", "composites", "model_uri", "mask_uri", "mc_uri"}),
]


@pytest.mark.parametrize("component, params, extra", COMPONENTS, ids=[c[0].name for c in COMPONENTS])
def test_component_inputs_match_declared_params(component, params, extra):
    assert_inputs_match_params(component, params, extra)


def test_network_steps_run_on_the_ml_image():
    for pipeline, step in (("crop_type_training", "exec-train-lstm"), ("crop_type_mapping", "exec-tile-classifier")):
        spec = next(yaml.safe_load_all((COMPILED / f"{pipeline}.yaml").read_text()))
        assert spec["deploymentSpec"]["executors"][step]["container"]["image"] == ML_IMAGE


def test_training_pipeline_runs_locally(chain, kfp_local):
    from pipelines.crop_type_training import crop_type_training

    crop_type_training(archive_uri=str(chain.archive), val_tiles="33TVN", test_tiles="", n_epochs=3, batch_size=32,
                       hidden_size=8, num_layers=1)
    h5 = sorted(kfp_local.rglob("crop_lstm.h5"))
    assert len(h5) == 1
    model, info = load_model(h5[0])
    assert info.class_ids == [1, 2, 9, 12] and info.training["evaluated_on"] == "validation"
    assert (h5[0].parent / "crop_lstm.onnx").exists()
    outputs = [json.loads(p.read_text()) for p in kfp_local.rglob("executor_output.json")]
    text = json.dumps(outputs)
    assert "overall_accuracy" in text and "confusionMatrix" in text


def test_mapping_pipeline_runs_locally(chain, kfp_local, tmp_path):
    from pipelines.crop_type_mapping import crop_type_mapping

    crop_type_mapping(input_uri=str(chain.series), model_uri=str(chain.h5), mask_uri=str(chain.mask))
    maps = sorted(kfp_local.rglob("*_crop_map_*.tif"))
    assert len(maps) == 1
    with rasterio.open(maps[0]) as ds:
        labels = ds.read(1)
    fields = chain.truth >= 0
    assert (labels[~fields] == 255).all()
    assert (labels[fields] == chain.truth[fields]).mean() > 0.9
    html = [p for p in kfp_local.rglob("quicklook") if p.is_file()]
    assert html and all("data:image/png;base64," in p.read_text() for p in html)
    assert len(sorted(kfp_local.rglob("33UVP_MC_*.tif"))) == 12


def test_component_fails_with_the_service_message(chain, kfp_local, tmp_path):
    with pytest.raises(RuntimeError):
        monthlycomposite(input_uri=str(tmp_path / "absent"))


class _Artifact:
    def __init__(self, path):
        self.path, self.metadata, self.logged = str(path), {}, {}

    def log_metric(self, key, value):
        self.logged[key] = value


def test_classifier_runtime_takes_a_model_artifact_folder(chain, tmp_path):
    from components.crop_lstm.kfp_runtime import execute_classify

    crop_map, html, metrics = _Artifact(tmp_path / "map"), _Artifact(tmp_path / "ql.html"), _Artifact(tmp_path / "m")
    execute_classify(str(chain.model_dir), "", str(chain.mask), str(chain.composites), "", crop_map, html, metrics,
                     {"majority_size": 1})
    assert crop_map.metadata["crop_map"].endswith(".tif") and metrics.logged["classified_pixels"] > 0
    assert "data:image/png;base64," in (tmp_path / "ql.html").read_text()
    with pytest.raises(SystemExit) as e:
        execute_classify("", str(tmp_path / "absent.h5"), "", str(chain.composites), "", crop_map, html, metrics, {})
    assert e.value.code == 2
