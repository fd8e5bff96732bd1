"""Dark-object subtraction per scene (``--dark_object``): the dark levels, and a model trained
with it classifying a hazy copy of a scene (a different offset in every band) as the clear one."""

from __future__ import annotations

import json

import numpy as np
import rasterio
import torch

from components.s2_patch_classifier import modelio, radiometry
from components.s2_patch_classifier.cli import main
from components.s2_patch_classifier.data import find_tiles
from components.s2_patch_classifier.radiometry import dark_levels

from .fixtures import SYNTH_BANDS, TINY, synthetic_tile

HAZE = np.array([3000, 2500, 2000, 1500], np.uint16)
FAST = ["-patch_size", "64", "-b", "4", "-epochs", "1", "--device", "cpu"] + TINY
# enough training for a class map that is not one class everywhere
LEARN = ["-patch_size", "64", "-b", "4", "-epochs", "8", "-lr", "0.01", "--selected-classes", "1,2", "--device",
         "cpu"] + TINY


def _hazy_copy(tif, dest):
    dest.mkdir(parents=True, exist_ok=True)
    with rasterio.open(tif) as src:
        profile, data, names = src.profile, src.read(), src.descriptions
    with rasterio.open(dest / "H.tif", "w", **profile) as ds:
        ds.write(data + HAZE[:, None, None])
        ds.descriptions = names
    return dest


def _classes(folder, name):
    with rasterio.open(folder / f"{name}_classes.tif") as ds:
        return ds.read(1)


def test_dark_levels_are_each_bands_2nd_percentile_and_follow_haze(tmp_path):
    tif = synthetic_tile(tmp_path / "clear", "A", size=(96, 128), seed=1)
    _hazy_copy(tif, tmp_path / "hazy")
    with rasterio.open(tif) as ds:
        data = ds.read().astype(np.float64)
    data[data == 0] = np.nan  # the stack's no-data value
    want = np.nanpercentile(data.reshape(len(SYNTH_BANDS), -1), 2, axis=1)
    clear = dark_levels(find_tiles(tmp_path / "clear")[0], SYNTH_BANDS)
    hazy = dark_levels(find_tiles(tmp_path / "hazy")[0], SYNTH_BANDS)
    np.testing.assert_allclose(clear, want, rtol=1e-6)
    np.testing.assert_allclose(hazy - clear, HAZE, atol=1e-3)


def test_a_large_scene_is_sampled_by_a_decimated_read(tmp_path, monkeypatch):
    """Above MAX_SAMPLE_SIDE a side the levels come from a read decimated by GDAL (the pixel at
    the centre of each step x step cell), not from decoding the whole scene."""
    tif = synthetic_tile(tmp_path, "A", size=(96, 128), seed=1)
    with rasterio.open(tif) as ds:
        data = ds.read().astype(np.float64)
    data[data == 0] = np.nan
    monkeypatch.setattr(radiometry, "MAX_SAMPLE_SIDE", 32)  # step 4: 24 x 32 samples
    got = dark_levels(find_tiles(tmp_path)[0], SYNTH_BANDS)
    want = np.nanpercentile(data[:, 2::4, 2::4].reshape(len(SYNTH_BANDS), -1), 2, axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    full = np.nanpercentile(data.reshape(len(SYNTH_BANDS), -1), 2, axis=1)
    np.testing.assert_allclose(got, full, rtol=0.1)  # a sample, close to the whole scene's


def test_a_model_trained_with_it_sees_through_haze(tmp_path, capsys):
    tif = synthetic_tile(tmp_path / "train", "A", size=(128, 192), seed=1)
    clear = tmp_path / "clear"
    synthetic_tile(clear, "C", size=(96, 128), seed=4, labels=False)
    hazy = _hazy_copy(clear / "C.tif", tmp_path / "hazy")
    assert main(["-action", "train", "-i", str(tif.parent), "-o", str(tmp_path / "model"), "--dark_object", "true"]
                + LEARN) == 0
    pt = tmp_path / "model" / "model.pt"
    _, meta = modelio.load_pytorch(pt)
    np.testing.assert_allclose(meta["dark_object"]["levels"], dark_levels(find_tiles(tif.parent)[0], SYNTH_BANDS),
                               atol=1e-3)
    for source, out in ((clear, "p_clear"), (hazy, "p_hazy")):
        assert main(["-action", "predict", "-i", str(source), "-o", str(tmp_path / out), "-model_file", str(pt),
                     "--engine", "onnxruntime"]) == 0
    assert len(np.unique(_classes(tmp_path / "p_clear", "C"))) > 1
    assert np.array_equal(_classes(tmp_path / "p_clear", "C"), _classes(tmp_path / "p_hazy", "H"))
    # the same network without its dark levels sees the haze
    ckpt = torch.load(pt, weights_only=True)
    del ckpt["meta"]["dark_object"]
    torch.save(ckpt, tmp_path / "plain.pt")
    assert main(["-action", "predict", "-i", str(hazy), "-o", str(tmp_path / "p_plain"), "-model_file",
                 str(tmp_path / "plain.pt"), "--engine", "onnxruntime"]) == 0
    assert not np.array_equal(_classes(tmp_path / "p_clear", "C"), _classes(tmp_path / "p_plain", "H"))


def test_patches_and_training_must_agree_on_it(tmp_path, capsys):
    synthetic_tile(tmp_path / "tiles", "A", size=(96, 128), seed=1)
    assert main(["-action", "extract_data", "-i", str(tmp_path / "tiles"), "-o", str(tmp_path / "patches"),
                 "-patch_size", "64", "--dark_object", "true"]) == 0
    index = json.loads((tmp_path / "patches" / "patches.json").read_text())
    assert len(index["dark_object"]["levels"]) == len(SYNTH_BANDS)
    capsys.readouterr()
    assert main(["-action", "train", "-i", str(tmp_path / "patches"), "-o", str(tmp_path / "model")] + FAST) == 2
    err = capsys.readouterr().err
    assert "the patches were extracted with --dark_object, not trained without it" in err
    assert not (tmp_path / "model").exists() or not any((tmp_path / "model").iterdir())


def test_a_pretrained_encoder_records_it(tmp_path):
    """The encoder of ``full --pretrained`` saw corrected patches and says so; training from it on
    corrected patches goes on (uncorrected ones fail: test_bad_inputs)."""
    synthetic_tile(tmp_path / "tiles", "A", size=(96, 128), seed=1)
    assert main(["-action", "full", "-i", str(tmp_path / "tiles"), "-o", str(tmp_path / "out"), "--dark_object",
                 "true", "-pretrained", "true", "--pretrain_epochs", "1"] + FAST) == 0
    assert modelio.load_encoder(tmp_path / "out" / "encoder_pretrained.pt")[1]["dark_object"] is True
    assert modelio.load_pytorch(tmp_path / "out" / "model.pt")[1]["dark_object"]["levels"]
