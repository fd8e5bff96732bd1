"""The service end to end on CPU with a tiny model: -action full on a crop of a real port,
then each action on its own (extract_data -> pretrain -> train -> predict, PyTorch and ONNX)."""

import json

import numpy as np
import rasterio
from PIL import Image

from components.s2_patch_classifier.cli import main

from tests.gdal_read import categories
from tests.stac_schema import validate_item

from .fixtures import TINY, port_crop, synthetic_tile

FAST = ["-patch_size", "64", "-b", "4"] + TINY


def test_full_on_a_real_port_crop(tmp_path, capsys):
    port = port_crop(tmp_path / "data")
    out = tmp_path / "out"
    code = main(["-action", "full", "--input", str(port.parent), "--outdir", str(out), "-epochs", "2",
                 "-data_aug", "True", "-criterion", "focal_loss", "--device", "cpu"] + FAST)
    assert code == 0, capsys.readouterr().err
    assert f"product: {out / 'model.pt'}" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classes"] == [0, 1] and len(metrics["history"]) == 2
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["per_class"]["0"]["pixels"] + \
        metrics["per_class"]["1"]["pixels"]
    index = json.loads((out / "patches" / "patches.json").read_text())
    assert index["bands"] == ["B2", "B3", "B4", "B8", "B11"] and index["count"] == 6
    tif = out / "predictions" / "casablanca_classes.tif"
    src = next(port.glob("*B02*"))
    with rasterio.open(tif) as pred, rasterio.open(src) as band:
        assert pred.crs == band.crs and pred.transform.almost_equals(band.transform) and pred.shape == band.shape
        assert set(np.unique(pred.read(1))) <= {0, 1} and pred.colormap(1)[1][:3] == (230, 25, 75)
    assert (out / "predictions" / "casablanca_classes_quicklook.png").stat().st_size > 0
    item = json.loads((out / "predictions" / "casablanca_classes.json").read_text())
    assert item["properties"]["datetime"].startswith("2023-04-26")
    validate_item(item)
    classes = item["assets"]["data"]["classification:classes"]
    assert classes[1]["color_hint"] == "E6194B" and classes[-1]["nodata"]
    record = json.loads((out / "run.json").read_text())
    assert record["params"]["action"] == "full" and record["outputs"]["model"] == "model.pt"
    assert not [p for p in tmp_path.rglob(".s2pc-*")]


def test_patch_stride_overlaps_the_training_patches(tmp_path, capsys):
    port = port_crop(tmp_path / "data")  # 128 x 160 px: 2 x 2 side by side, 3 x 4 every 32 px
    out = tmp_path / "patches"
    assert main(["-action", "extract_data", "-i", str(port.parent), "-o", str(out), "-patch_size", "64",
                 "--patch_stride", "32"]) == 0, capsys.readouterr().err
    index = json.loads((out / "patches.json").read_text())
    assert index["count"] == 12 and index["stride"] == 32
    where = np.load(out / "positions.npy")[:, 1:]
    assert sorted(map(tuple, where)) == [(y, x) for y in (0, 32, 64) for x in (0, 32, 64, 96)]


def test_actions_one_by_one_with_pretraining_and_onnx(tmp_path, capsys):
    tiles = tmp_path / "tiles"
    synthetic_tile(tiles, "A", size=(96, 128), seed=1)
    synthetic_tile(tiles, "B", size=(64, 140), seed=2)
    new = tmp_path / "new"
    synthetic_tile(new, "C", size=(80, 100), seed=3, labels=False)
    common = ["-selected-classes", "1,2", "-bands", "B8,B2,B3"] + FAST
    assert main(["-action", "extract_data", "-i", str(tiles), "-o", str(tmp_path / "patches")] + common) == 0
    assert main(["-action", "pretrain", "-i", str(tmp_path / "patches"), "-o", str(tmp_path / "ssl"),
                 "--pretrain_epochs", "1"] + common) == 0
    history = json.loads((tmp_path / "ssl" / "pretrain_history.json").read_text())
    assert history["method"] == "MoCo v2" and np.isfinite(history["history"][0]["loss"])
    assert main(["-action", "train", "-i", str(tmp_path / "patches"), "-o", str(tmp_path / "model"), "-epochs", "1",
                 "-pretrained", "True", "--pretrained_weights", str(tmp_path / "ssl"), "-model_format", "onnx",
                 "--quantize", "int8", "-model_file", "ships"] + common) == 0
    capsys.readouterr()
    onnx_file = tmp_path / "model" / "ships.onnx"
    assert onnx_file.is_file()
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["classes"] == [0, 1, 2] and len(metrics["confusion_matrix"]) == 3
    assert metrics["int8_agreement"] > 0.9 and not list((tmp_path / "model").glob("*fp32*"))
    assert main(["-action", "predict", "-i", str(new), "-o", str(tmp_path / "pred"), "-model_file",
                 str(onnx_file)]) == 0
    validate_item(json.loads((tmp_path / "pred" / "C_classes.json").read_text()))
    with rasterio.open(tmp_path / "pred" / "C_classes.tif") as ds:
        assert ds.shape == (80, 100) and set(np.unique(ds.read(1))) <= {0, 1, 2}
        palette = ds.colormap(1)
    # the legend as GDAL's category names and attribute table, and in the quicklook
    names, rows = categories(tmp_path / "pred" / "C_classes.tif")
    assert names[:3] == ["class 0", "class 1", "class 2"] and names[255] == "no data"
    assert [int(r["Value"]) for r in rows] == [0, 1, 2, 255]
    with Image.open(tmp_path / "pred" / "C_classes_quicklook.png") as im:
        px = np.asarray(im.convert("RGBA"))
    assert px.shape[1] > 100
    swatches = {tuple(p) for p in px[:, 100:].reshape(-1, 4)}
    assert all(palette[v] in swatches for v in (0, 1, 2))
    record = json.loads((tmp_path / "pred" / "run.json").read_text())
    assert record["outputs"]["summary"]["engine"] == "onnxruntime-cpu"


def test_indices_survive_the_onnx_file_and_flips_average_the_views(tmp_path, capsys):
    tiles = tmp_path / "tiles"
    synthetic_tile(tiles, "A", size=(96, 128), seed=1)
    out = tmp_path / "out"
    assert main(["-action", "full", "-i", str(tiles), "-o", str(out), "-epochs", "1", "--indices", "ndwi",
                 "-model_format", "onnx", "--flips", "true"] + FAST) == 0
    capsys.readouterr()
    from components.s2_patch_classifier.modelio import read_meta

    meta = read_meta(out / "model.onnx")
    assert meta["arch"]["indices"] == [[1, 3]] and meta["bands"] == ["B2", "B3", "B4", "B8"]
    assert meta["training"]["indices"] == ["NDWI"]
    record = json.loads((out / "run.json").read_text())
    assert record["outputs"]["summary"]["engine"] == "onnxruntime-cpu+flips"
    with rasterio.open(out / "predictions" / "A_classes.tif") as ds:
        assert ds.shape == (96, 128) and set(np.unique(ds.read(1))) <= {0, 1}
