"""The components and the s2_segmentation pipeline: signatures kept in line with the declared
parameters, the steps' image, and a local run (kfp.local) of extract -> pretrain -> train ->
predict with a tiny model. (Compiled YAML in sync and GPU placement: tests/pipelines.)"""

import json

import numpy as np
import rasterio
import yaml

from components.s2_patch_classifier import component
from components.s2_patch_classifier.params import S2PatchClassifierParams
from pipelines.compile import COMPILED
from pipelines.s2_segmentation import s2_segmentation
from tests.kfp_contract import KFP_TYPES, component_default

from .fixtures import synthetic_tile

ARTIFACT_OR_URI = {"input_uri", "input_data", "tiles_uri", "tiles", "patches", "pretrained_encoder", "model"}
STEPS = (component.extract_patches, component.pretrain_encoder, component.train_model, component.predict_tiles)


def _check(comp, specs):
    inputs = comp.component_spec.inputs
    for name, inp in inputs.items():
        if name in ARTIFACT_OR_URI:
            continue
        assert name in specs, f"{comp.name}: {name} is not a declared parameter"
        assert inp.type == KFP_TYPES[specs[name].kind], name
        assert inp.default == component_default(specs[name]), name
    return set(inputs) - ARTIFACT_OR_URI


def test_components_match_declared_params():
    specs = {s.name: s for s in S2PatchClassifierParams.specs()}
    assert _check(component.s2_patch_classifier, specs) == set(specs)
    for step in STEPS:
        _check(step, specs)
    assert component.ML_IMAGE.startswith("ghcr.io/") and "/ml:" in component.ML_IMAGE


def test_steps_run_on_the_ml_image():
    spec = next(yaml.safe_load_all((COMPILED / "s2_segmentation.yaml").read_text()))
    image = spec["deploymentSpec"]["executors"]["exec-train-model"]["container"]["image"]
    assert image == component.ML_IMAGE


def test_pipeline_runs_locally(kfp_local, tmp_path):
    synthetic_tile(tmp_path / "train", "A", size=(96, 128), seed=1)
    synthetic_tile(tmp_path / "new", "C", size=(70, 90), seed=3, labels=False)
    s2_segmentation(train_tiles=str(tmp_path / "train"), predict_tiles_uri=str(tmp_path / "new"), pretrained=True,
                    selected_classes="1,2", epochs=1, pretrain_epochs=1, batch_size=4, patch_size=64,
                    encoder="resnet14", width=8, ensemble=2)
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
    assert "<table" in report.read_text() and "an ensemble of 2 networks (seeds 0, 1)" in report.read_text()
    quicklook = next(kfp_local.rglob("quicklook"))
    assert "data:image/png;base64," in quicklook.read_text()
