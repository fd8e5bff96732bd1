"""aq_downscaling, crop_type_training, crop_type_mapping and s2_segmentation, compiled, run in their
images (ml, and eo for the crop chain's data steps) against SeaweedFS with s3:// inputs: the
inputs of the local tests, tiny models, one to three epochs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import yaml

from tests.e2e.harness import files, logged_metadata, run_compiled
from tests.fixtures.cams_products import make_scene, scene_config, write_scene
from tests.fixtures.crop_chain import build_chain, write_archive_for_chain
from tests.s2_patch_classifier.fixtures import synthetic_tile

AQ_AOI = (42.0, 43.6, 3.0, 4.6)


def _metrics(root) -> dict:
    merged = {}
    for metadata in logged_metadata(root).get("metrics", []):
        merged.update(metadata)
    return merged


def test_aq_downscaling_in_containers(container_env, upload, tmp_path):
    """The scene of the local test uploaded to SeaweedFS; every data path of the configuration is
    an s3:// URI (prefixes for the netCDF collections, objects for the static fields)."""
    env = container_env("aq_downscaling")
    data = tmp_path / "data"
    write_scene(make_scene(hours=48, eac4_rows=4, eac4_cols=4, seed=5), data)
    base = upload(data, "eo-inputs/e2e/aq/data")
    config = yaml.safe_load(scene_config(data, AQ_AOI, input_frame=(2, 2), output_frame=(8, 8), ensemble_size=3,
                                         extra={"training.epochs": 1}))
    config["paths"] = {
        "tiles": "s3://eo-work/e2e/aq/tiles", "models": "s3://eo-work/e2e/aq/models",
        "output": "s3://eo-work/e2e/aq/output",
        "datasets": {"synthetic": {
            "cams_global": [f"{base}cams-global/"], "cams_europe": [f"{base}cams-europe/"], "era5": [f"{base}era5/"],
            "static": {"urban_frac": f"{base}static/urban_frac.nc", "orog_scal": f"{base}static/orography.tif"}}}}
    root = run_compiled("aq_downscaling", {"config": yaml.safe_dump(config, sort_keys=False),
                                           "train_start": "2021010100", "train_end": "2021010115",
                                           "test_start": "2021010118", "test_end": "2021010121"},
                        tmp_path / "root", env)
    tiles, models, ensembles = files(root, "tiles.nc"), files(root, "model.pt"), files(root, "aqgan_*.nc")
    assert len(tiles) == len(models) == len(ensembles) == 1, sorted(p.relative_to(root) for p in root.rglob("*"))
    assert (models[0].parent / "losses.csv").exists()
    import torch

    assert torch.load(models[0], map_location="cpu", weights_only=False)
    import netCDF4

    with netCDF4.Dataset(ensembles[0]) as ds:
        assert ds.dimensions["member"].size == 3 and ds.dimensions["time"].size >= 1
        pm25 = np.ma.filled(ds["pm2p5"][:], np.nan)
    assert np.isfinite(pm25).all() and (pm25 > 0).mean() > 0.5
    logged = _metrics(root)
    for key in ("crps", "bilinear_mae", "lanczos_mae", "spread_skill", "rank_flatness", "critic_loss"):
        assert key in logged and np.isfinite(logged[key]), key
    reports = files(root, "report")
    assert reports and "<svg" in reports[0].read_text() and "CRPS" in reports[0].read_text()
    quicklooks = files(root, "quicklook")
    assert quicklooks and "data:image/png;base64," in quicklooks[0].read_text()


def test_crop_type_training_in_containers(container_env, upload, tmp_path):
    """The chain's TimeSen2Crop archive as an s3:// prefix: timesen2crop (eo image) -> train_lstm
    (ml image), three epochs of a tiny network."""
    env = container_env("crop_type_training")
    archive = upload(write_archive_for_chain(tmp_path / "archive"), "eo-inputs/e2e/timesen2crop")
    root = run_compiled("crop_type_training", {"archive_uri": archive, "val_tiles": "33TVN", "test_tiles": "",
                                               "n_epochs": 3, "batch_size": 32, "hidden_size": 8, "num_layers": 1},
                        tmp_path / "root", env)
    h5 = files(root, "crop_lstm.h5")
    assert len(h5) == 1, sorted(p.relative_to(root) for p in root.rglob("*"))
    from components.crop_lstm.h5io import load_model

    model, info = load_model(h5[0])
    assert info.class_ids == [1, 2, 9, 12] and info.training["evaluated_on"] == "validation"
    import onnxruntime

    session = onnxruntime.InferenceSession(str(h5[0].parent / "crop_lstm.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs() and session.get_outputs()
    assert len(files(root, "train.npy")) == 1 and len(files(root, "y_train.npy")) == 1
    logged = logged_metadata(root)
    metrics = _metrics(root)
    assert 0 <= metrics["overall_accuracy"] <= 1 and "kappa" in json.dumps(metrics)
    matrix = next(m["confusionMatrix"] for m in logged["confusion"] if "confusionMatrix" in m)
    assert len(matrix["rows"]) == 4 and sum(map(sum, (r["row"] for r in matrix["rows"]))) > 0


@pytest.fixture(scope="module")
def crop_chain(tmp_path_factory):
    return build_chain(tmp_path_factory.mktemp("crop_chain"))


def test_crop_type_mapping_in_containers(container_env, upload, crop_chain, tmp_path):
    """The chain's tile time series (an s3:// prefix with REFBOA/ and LAI/), its trained model and
    crop mask (s3:// objects): monthlycomposite (eo image) -> tile_classifier (ml image)."""
    env = container_env("crop_type_mapping")
    series = upload(crop_chain.series, "eo-inputs/e2e/crop/series")
    model = upload(crop_chain.h5, f"eo-inputs/e2e/crop/model/{crop_chain.h5.name}")
    mask = upload(crop_chain.mask, f"eo-inputs/e2e/crop/{crop_chain.mask.name}")
    root = run_compiled("crop_type_mapping", {"input_uri": series, "model_uri": model, "mask_uri": mask},
                        tmp_path / "root", env)
    maps = files(root, "*_crop_map_*.tif")
    assert len(maps) == 1, sorted(p.relative_to(root) for p in root.rglob("*"))
    with rasterio.open(maps[0]) as ds:
        labels = ds.read(1)
    fields = crop_chain.truth >= 0
    assert (labels[~fields] == 255).all()
    assert (labels[fields] == crop_chain.truth[fields]).mean() > 0.9
    html = files(root, "quicklook")
    assert len(html) == 2 and all("data:image/png;base64," in p.read_text() for p in html)
    composites = files(root, "33UVP_MC_*.tif")
    assert len(composites) == 12
    with rasterio.open(composites[0]) as ds:
        assert ds.shape == labels.shape and ds.count > 1


def test_s2_segmentation_in_containers(container_env, upload, tmp_path):
    """Labelled and new tiles as s3:// prefixes; the pre-trained branch (extract -> pretrain ->
    train -> predict), a tiny ResNet, one epoch."""
    env = container_env("s2_segmentation")
    synthetic_tile(tmp_path / "train", "A", size=(96, 128), seed=1)
    synthetic_tile(tmp_path / "new", "C", size=(70, 90), seed=3, labels=False)
    train = upload(tmp_path / "train", "eo-inputs/e2e/segmentation/train")
    new = upload(tmp_path / "new", "eo-inputs/e2e/segmentation/new")
    root = run_compiled("s2_segmentation", {"train_tiles": train, "predict_tiles_uri": new, "pretrained": True,
                                            "selected_classes": "1,2", "epochs": 1, "pretrain_epochs": 1,
                                            "batch_size": 4, "patch_size": 64, "encoder": "resnet14", "width": 8},
                        tmp_path / "root", env)
    predicted = files(root, "C_classes.tif")
    assert len(predicted) == 1, sorted(p.relative_to(root) for p in root.rglob("*"))
    with rasterio.open(predicted[0]) as ds, rasterio.open(tmp_path / "new" / "C.tif") as src:
        assert ds.shape == src.shape and ds.crs == src.crs and ds.transform == src.transform
        assert set(np.unique(ds.read(1))) <= {0, 1, 2}
    import torch

    (encoder,) = files(root, "encoder_pretrained.pt")
    (model,) = files(root, "model.pt")
    assert torch.load(encoder, map_location="cpu", weights_only=False)
    assert torch.load(model, map_location="cpu", weights_only=False)
    logged = logged_metadata(root)
    metrics = next(m for m in logged["metrics"] if "mean_iou" in m)
    assert {"mean_iou", "accuracy", "iou_class_0", "f1_class_0", "best_epoch"} <= set(metrics)
    matrix = logged["confusion"][0]["confusionMatrix"]
    assert [c["displayName"] for c in matrix["annotationSpecs"]] == ["background", "class 1", "class 2"]
    assert len(matrix["rows"]) == 3 and sum(map(sum, (r["row"] for r in matrix["rows"]))) > 0
    reports = files(root, "report")
    assert reports and "<table" in reports[0].read_text()
    quicklooks = files(root, "quicklook")
    assert quicklooks and "data:image/png;base64," in quicklooks[0].read_text()
