"""The four components and the two crop-type pipelines: component signatures kept in line with the
declared parameters, compiled YAML in sync, the training step placed on a GPU node, and real local
runs with kfp.local on the synthetic chain."""

from __future__ import annotations

import json

import pytest
import rasterio
import yaml

from components.common.params import ServiceParams
from components.crop_lstm.component import tile_classifier, train_lstm
from components.crop_lstm.h5io import load_model
from components.crop_lstm.params import ClassifyParams, TrainParams
from components.s2_harmonization.component import monthlycomposite
from components.s2_harmonization.params import MonthlyCompositeParams
from components.timesen2crop.component import timesen2crop
from components.timesen2crop.params import TimeSen2CropParams
from pipelines.compile import COMPILED

KFP_TYPES = {"str": "String", "optional_str": "String", "list": "String", "float": "Float", "int": "Integer",
             "bool": "Boolean"}
COMPONENTS = [
    (timesen2crop, TimeSen2CropParams, {"archive_uri"}),
    (monthlycomposite, MonthlyCompositeParams, {"input_uri", "input_data"}),
    (train_lstm, TrainParams, {"training_data", "validation_data", "input_uri"}),
    (tile_classifier, ClassifyParams, {"model", "composites", "model_uri", "mask_uri", "mc_uri"}),
]
PIPELINES = ("crop_type_training", "crop_type_mapping")


def _default(spec):
    if spec.default is None:
        return ""
    if isinstance(spec.default, tuple):
        return ",".join(spec.default)
    return spec.default


@pytest.mark.parametrize("component, params, extra", COMPONENTS, ids=[c[0].name for c in COMPONENTS])
def test_component_inputs_match_declared_params(component, params: type[ServiceParams], extra):
    inputs = component.component_spec.inputs
    specs = {s.name: s for s in params.specs()}
    assert set(inputs) - extra == set(specs)
    for name, spec in specs.items():
        assert inputs[name].type == KFP_TYPES[spec.kind], name
        assert inputs[name].default == _default(spec), name


def test_compiled_yaml_is_in_sync(tmp_path):
    from kfp import compiler

    from pipelines.compile import PIPELINES as ALL

    for name in PIPELINES:
        fresh = tmp_path / f"{name}.yaml"
        compiler.Compiler().compile(ALL[name], str(fresh))
        committed = COMPILED / fresh.name
        assert committed.exists(), f"run `make compile`: {committed} is missing"
        assert list(yaml.safe_load_all(fresh.read_text())) == list(yaml.safe_load_all(committed.read_text())), \
            f"{committed.name} is stale: run `make compile`"


def test_training_step_is_placed_on_a_gpu_node():
    docs = list(yaml.safe_load_all((COMPILED / "crop_type_training.yaml").read_text()))
    spec, platform = docs[0], docs[1]
    resources = spec["deploymentSpec"]["executors"]["exec-train-lstm"]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert int(resources["accelerator"]["resourceCount"]) == 1
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(k8s) == {"exec-train-lstm"}  # only training needs a GPU
    assert k8s["exec-train-lstm"]["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    assert k8s["exec-train-lstm"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    image = spec["deploymentSpec"]["executors"]["exec-train-lstm"]["container"]["image"]
    assert image.startswith("ghcr.io/") and "/ml:" in image
    mapping = yaml.safe_load((COMPILED / "crop_type_mapping.yaml").read_text())
    assert "accelerator" not in json.dumps(mapping["deploymentSpec"])


@pytest.fixture
def kfp_local(tmp_path):
    import kfp.local

    root = tmp_path / "pipeline_root"
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
                   workspace_root=str(tmp_path / "workspace"))
    return root


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
