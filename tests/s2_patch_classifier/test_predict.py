"""Prediction: ONNX export checked against PyTorch with ONNX Runtime, sliding windows with
overlap, GeoTIFF output on the input grid with a colour table."""

import numpy as np
import pytest
import rasterio
import torch

from components.s2_patch_classifier import hysteresis, modelio
from components.s2_patch_classifier.data import find_tiles
from components.s2_patch_classifier.model import Arch, build
from components.s2_patch_classifier.onnx_export import export
from components.s2_patch_classifier.predict import (NODATA, FlipAveraged, OnnxPredictor, Predictor, TorchPredictor,
                                                    open_predictor, _predict_rows, predict_array, predict_tile,
                                                    to_cog, window_weights)

from .fixtures import SYNTH_BANDS, synthetic_tile


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A small U-Net with random weights and non-trivial batch-norm statistics, saved both ways."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    arch = Arch(len(SYNTH_BANDS), 3, "resnet14", 8)
    model = build(arch)
    model.normalise.set_stats([0] * 4, [4000] * 4, [800, 900, 800, 1000], [500, 500, 600, 900])
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
    model.eval()
    meta = modelio.base_meta(arch, SYNTH_BANDS, [0, 1, 2], 64, {"low": [0] * 4, "high": [4000] * 4,
                                                                 "mean": [0] * 4, "std": [1] * 4}, False)
    pt = modelio.save_pytorch(root / "model.pt", model, meta)
    onnx_path = export(model, root / "model.onnx", meta, 64)
    return model, meta, pt, onnx_path


def test_onnx_matches_pytorch(models):
    model, meta, pt, onnx_path = models
    rng = np.random.default_rng(0)
    for batch in (1, 3):  # the batch dimension is dynamic
        x = rng.uniform(0, 3000, (batch, 4, 64, 64)).astype(np.float32)
        with torch.no_grad():
            ref = torch.softmax(model(torch.from_numpy(x)), 1).numpy()
        got = OnnxPredictor(onnx_path, modelio.read_meta(onnx_path), torch.device("cpu"))(x)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-5)
    assert modelio.read_meta(onnx_path) == modelio.read_meta(pt) == meta


def test_engines_agree_on_a_tile(models, tmp_path):
    _, _, pt, onnx_path = models
    synthetic_tile(tmp_path, "A", size=(150, 170))
    (tile,) = find_tiles(tmp_path / "A.tif")
    image = tile.read(SYNTH_BANDS)
    fp32 = predict_array(image, open_predictor(pt, torch.device("cpu"), precision="fp32"), 0.25)
    ort = predict_array(image, open_predictor(onnx_path, torch.device("cpu")), 0.25)
    assert (fp32 == ort).mean() > 0.999
    fast = open_predictor(pt, torch.device("cpu"))  # bf16 where the CPU has it
    assert (predict_array(image, fast, 0.25) == fp32).mean() > 0.98


def test_sliding_window_blends_overlapping_windows(models):
    model, meta, pt, _ = models
    predictor = open_predictor(pt, torch.device("cpu"), precision="fp32")
    image = np.random.default_rng(1).uniform(0, 3000, (4, 64, 64)).astype(np.float32)
    with torch.no_grad():  # a tile of one window: the model's own argmax
        direct = model(torch.from_numpy(image[None])).argmax(1)[0].numpy()
    np.testing.assert_array_equal(predict_array(image, predictor, 0.5), direct)
    big = np.random.default_rng(2).uniform(0, 3000, (4, 100, 130)).astype(np.float32)
    acc = _predict_rows(lambda y, p: big[:, y:y + p], 100, 130, predictor, 0.5, write=None, probabilities=True)
    # the same sums by brute force over the window grid (stride 32, last windows on the edge)
    w = window_weights(64)
    expect = np.zeros_like(acc)
    for y in (0, 32, 36):
        for x in (0, 32, 64, 66):
            expect[:, y:y + 64, x:x + 64] += predictor(big[None, :, y:y + 64, x:x + 64])[0] * w
    np.testing.assert_allclose(acc, expect, rtol=1e-4, atol=1e-5)


def test_geotiff_keeps_grid_and_colours(models, tmp_path):
    _, meta, pt, _ = models
    tif = synthetic_tile(tmp_path / "in", "A", size=(90, 140), crs="EPSG:32633")
    with rasterio.open(tif, "r+") as ds:  # a no-data corner in every band
        for b in range(1, 5):
            d = ds.read(b)
            d[:5, :7] = 0
            ds.write(d, b)
    (tile,) = find_tiles(tif)
    predictor = TorchPredictor(modelio.load_pytorch(pt)[0], meta, torch.device("cpu"))
    res = predict_tile(tile, predictor, 0.25, tmp_path / "raw.tif")
    cog = to_cog(res.path, tmp_path / "A_classes.tif")
    with rasterio.open(tif) as src, rasterio.open(cog) as out:
        assert (out.crs, out.transform, out.shape) == (src.crs, src.transform, src.shape)
        assert out.nodata == NODATA and out.dtypes[0] == "uint8"
        data = out.read(1)
        assert (data[:5, :7] == NODATA).all() and set(np.unique(data[5:])) <= {0, 1, 2}
        cmap = out.colormap(1)
        assert cmap[1][:3] == tuple(meta["colours"][1]) and cmap[2][:3] == tuple(meta["colours"][2])
    assert sum(res.class_pixels.values()) == 90 * 140 and res.class_pixels["nodata"] == 35


def test_flip_averaging_makes_a_model_equivariant(models):
    model, meta, _, _ = models
    inner = TorchPredictor(model, meta, torch.device("cpu"), "fp32")
    averaged = FlipAveraged(inner)
    x = np.random.default_rng(3).uniform(0, 3000, (2, 4, 64, 64)).astype(np.float32)
    turned = np.ascontiguousarray(np.rot90(x, 1, axes=(2, 3)))
    mirrored = np.ascontiguousarray(x[..., ::-1])
    # the random network alone is not: otherwise this test could not fail
    assert np.abs(inner(turned) - np.rot90(inner(x), 1, axes=(2, 3))).max() > 1e-2
    ref = averaged(x)
    assert np.allclose(averaged(turned), np.rot90(ref, 1, axes=(2, 3)), atol=1e-5)
    assert np.allclose(averaged(mirrored), ref[..., ::-1], atol=1e-5)
    assert np.allclose(ref.sum(1), 1, atol=1e-5) and averaged.engine == "torch-fp32+flips"


def test_hysteresis_grows_objects_from_argmax_seeds():
    classes = np.zeros((8, 12), np.int16)
    cand = np.zeros((8, 12), np.uint8)
    classes[1, 1] = 1
    cand[1:4, 1:4] = 1          # probable ship around the seed: joins it
    cand[4, 4] = 1              # diagonal neighbour of the grown block: joins too
    cand[6:8, 8:10] = 1         # probable but with no seed: stays background
    classes[1, 8], cand[0:3, 7] = 2, 2    # class 2 grows only over class-2 candidates
    cand[2, 8] = 1              # a class-1 candidate next to the class-2 seed: not joined
    classes[0, 0] = -1          # no data stays no data
    cand[0, 0] = 1
    out = hysteresis.grow(classes, cand)
    expect = classes.copy()
    expect[1:4, 1:4] = 1
    expect[4, 4] = 1
    expect[0:3, 7] = 2
    np.testing.assert_array_equal(out, expect)
    prob = np.array([[[0.7, 0.5]], [[0.2, 0.1]], [[0.1, 0.4]]], np.float32)  # (K=3, 1, 2)
    np.testing.assert_array_equal(hysteresis.candidates(prob, 0.15), [[1, 2]])
    np.testing.assert_array_equal(hysteresis.candidates(prob, 0.3), [[0, 2]])


class _Brightness(Predictor):
    """Ship probability rising with B8 around 2620 (the synthetic ships: 2600 +- 40): ships are seeds
    in part, and probable elsewhere: a case for hysteresis, the network aside."""

    engine, batch = "brightness", 8

    def __init__(self, meta):
        self.meta = meta

    def __call__(self, x):
        ship = 1 / (1 + np.exp(-(x[:, 3] - 2620) / 40))
        return np.stack([1 - ship, ship], axis=1).astype(np.float32)


def test_hysteresis_on_a_tile_equals_the_in_memory_image(models, tmp_path):
    _, meta, _, _ = models
    synthetic_tile(tmp_path / "in", "A", size=(150, 170))
    (tile,) = find_tiles(tmp_path / "in" / "A.tif")
    predictor = _Brightness({**meta, "classes": [0, 1]})
    image = tile.read(SYNTH_BANDS)
    plain = predict_array(image, predictor, 0.25)
    grown = predict_array(image, predictor, 0.25, grow_threshold=0.2)
    assert (grown != plain).sum() > 50 and (grown[plain != 0] == plain[plain != 0]).all()
    res = predict_tile(tile, predictor, 0.25, tmp_path / "raw.tif", grow_threshold=0.2)
    with rasterio.open(res.path) as ds:
        np.testing.assert_array_equal(ds.read(1), grown.astype(np.uint8))
    assert res.class_pixels == {"0": int((grown == 0).sum()), "1": int((grown == 1).sum())}


def test_seed_threshold_marks_foreground_where_its_probability_reaches_it(models, tmp_path):
    from components.s2_patch_classifier.predict import probability_array, thresholded

    prob = np.array([[[0.7, 0.5, 0.5]], [[0.2, 0.1, 0.45]], [[0.1, 0.4, 0.05]]], np.float32)  # (K=3, 1, 3)
    np.testing.assert_array_equal(thresholded(prob, 0.3), [[0, 2, 1]])
    np.testing.assert_array_equal(thresholded(prob, 0.6), [[0, 0, 0]])   # above 0.5: stricter than the argmax
    _, meta, _, _ = models
    synthetic_tile(tmp_path / "in", "A", size=(150, 170))
    (tile,) = find_tiles(tmp_path / "in" / "A.tif")
    predictor = _Brightness({**meta, "classes": [0, 1]})
    image = tile.read(SYNTH_BANDS)
    ship = probability_array(image, predictor, 0.25)[1]
    plain = predict_array(image, predictor, 0.25)
    low = predict_array(image, predictor, 0.25, seed_threshold=0.3)
    np.testing.assert_array_equal(low, ship >= 0.3)
    assert low.sum() > plain.sum() and (low[plain == 1] == 1).all()
    grown = predict_array(image, predictor, 0.25, grow_threshold=0.2, seed_threshold=0.3)
    res = predict_tile(tile, predictor, 0.25, tmp_path / "raw.tif", grow_threshold=0.2, seed_threshold=0.3)
    with rasterio.open(res.path) as ds:
        np.testing.assert_array_equal(ds.read(1), grown.astype(np.uint8))
    assert (grown[low == 1] == 1).all() and grown.sum() >= low.sum()
