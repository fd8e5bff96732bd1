"""The components and the s2_segmentation pipeline: signatures kept in line with the declared
parameters, the training steps placed on GPU nodes, compiled YAML in sync, and a local run
(kfp.local) of extract -> pretrain -> train -> predict with a tiny model."""

import json

import numpy as np
import pytest
import rasterio
import yaml
from kfp import compiler

from components.s2_patch_classifier import component
from components.s2_patch_classifier.params import S2PatchClassifierParams
from pipelines.compile import COMPILED
from pipelines.s2_segmentation import s2_segmentation

from .fixtures import synthetic_tile

KFP_TYPES = {"str": "String", "optional_str": "String", "list": "String", "float": "Float", "int": "Integer",
             "bool": "Boolean"}
ARTIFACT_OR_URI = {"input_uri", "input_data", "tiles_uri", "tiles", "patches", "pretrained_encoder", "model"}
STEPS = (component.extract_patches, component.pretrain_encoder, component.train_model, component.predict_tiles)


def _default(spec):
    if spec.default is None:
        return ""
    return ",".join(spec.default) if isinstance(spec.default, tuple) else spec.default


def _check(comp, specs):
    inputs = comp.component_spec.inputs
    for name, inp in inputs.items():
        if name in ARTIFACT_OR_URI:
            continue
        assert name in specs, f"{comp.name}: {name} is not a declared parameter"
        assert inp.type == KFP_TYPES[specs[name].kind], name
        assert inp.default == _default(specs[name]), name
    return set(inputs) - ARTIFACT_OR_URI


def test_components_match_declared_params():
    specs = {s.name: s for s in S2PatchClassifierParams.specs()}
    assert _check(component.s2_patch_classifier, specs) == set(specs)
    for step in STEPS:
        _check(step, specs)
    assert component.ML_IMAGE.startswith("ghcr.io/") and "/ml:" in component.ML_IMAGE


def _compiled(tmp_path):
    path = tmp_path / "s2_segmentation.yaml"
    compiler.Compiler().compile(s2_segmentation, str(path))
    return path


def test_compiled_yaml_is_in_sync(tmp_path):
    committed = COMPILED / "s2_segmentation.yaml"
    assert committed.exists(), "run `make compile`"
    assert list(yaml.safe_load_all(_compiled(tmp_path).read_text())) == list(yaml.safe_load_all(committed.read_text()))


def test_training_runs_on_gpu_nodes(tmp_path):
    spec, platform = list(yaml.safe_load_all((COMPILED / "s2_segmentation.yaml").read_text()))
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name in ("exec-train-model", "exec-train-model-2", "exec-pretrain-encoder"):
        resources = spec["deploymentSpec"]["executors"][name]["container"]["resources"]
        assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
        assert k8s[name]["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
        assert k8s[name]["emptyDirMounts"][0]["mountPath"] == "/dev/shm"
    for name in ("exec-predict-tiles", "exec-predict-tiles-2", "exec-extract-patches"):
        assert "accelerator" not in spec["deploymentSpec"]["executors"][name]["container"].get("resources", {})
    image = spec["deploymentSpec"]["executors"]["exec-train-model"]["container"]["image"]
    assert image == component.ML_IMAGE


@pytest.fixture
def kfp_local(tmp_path, monkeypatch):
    import kfp.local

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the steps are child processes
    root = tmp_path / "pipeline_root"
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
                   workspace_root=str(tmp_path / "workspace"))
    return root


def test_pipeline_runs_locally(kfp_local, tmp_path):
    synthetic_tile(tmp_path / "train", "A", size=(96, 128), seed=1)
    synthetic_tile(tmp_path / "new", "C", size=(70, 90), seed=3, labels=False)
    s2_segmentation(train_tiles=str(tmp_path / "train"), predict_tiles_uri=str(tmp_path / "new"), pretrained=True,
                    selected_classes="1,2", epochs=1, pretrain_epochs=1, batch_size=4, patch_size=64,
                    encoder="resnet14", width=8)
    (tif,) = kfp_local.rglob("C_classes.tif")
    with rasterio.open(tif) as ds, rasterio.open(tmp_path / "new" / "C.tif") as src:
        assert ds.shape == src.shape and ds.crs == src.crs and set(np.unique(ds.read(1))) <= {0, 1, 2}
    assert list(kfp_local.rglob("encoder_pretrained.pt")) and list(kfp_local.rglob("model.pt"))
    outputs = [json.loads(p.read_text()) for p in kfp_local.rglob("executor_output.json")]
    logged = {}
    for out in outputs:
        for name, arts in out.get("artifacts", {}).items():
            for art in arts.get("artifacts", []):
                logged.setdefault(name, []).append(art.get("metadata", {}))
    metrics = next(m for m in logged["metrics"] if "mean_iou" in m)
    assert {"mean_iou", "accuracy", "iou_class_0", "f1_class_0", "best_epoch"} <= set(metrics)
    matrix = logged["confusion"][0]["confusionMatrix"]
    assert [c["displayName"] for c in matrix["annotationSpecs"]] == ["background", "class 1", "class 2"]
    assert len(matrix["rows"]) == 3 and sum(map(sum, (r["row"] for r in matrix["rows"]))) > 0
    report = next(kfp_local.rglob("report"))
    assert "<table" in report.read_text()
    quicklook = next(kfp_local.rglob("quicklook"))
    assert "data:image/png;base64," in quicklook.read_text()
