"""Objects grown from several seeds cut apart between them (``--split_depth``): two ships moored
side by side, joined by the halo that growing at a low threshold follows, come out as two
components parted by one line across the flat valley between them; one ship whose seed is broken
by a shallow dip stays one; the tile path gives what the in-memory path gives."""

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from components.common.errors import InvalidParameter
from components.s2_patch_classifier import hysteresis
from components.s2_patch_classifier.data import find_tiles
from components.s2_patch_classifier.params import S2PatchClassifierParams
from components.s2_patch_classifier.predict import predict_array, predict_tile

from .fixtures import SYNTH_BANDS, synthetic_tile
from .test_predict import _Brightness

EIGHT = np.ones((3, 3), bool)


def _objects(mask):
    return ndimage.label(mask, EIGHT)


def _grown(prob, seed=0.45, grow=0.15):
    seeds = (prob >= seed).astype(np.int16)
    return seeds, hysteresis.grow(seeds, (prob >= grow).astype(np.uint8))


def _two_ships(valley=0.2):
    """Two ships (0.6 and 0.55) three columns apart in a halo of ``valley``."""
    prob = np.zeros((7, 16))
    prob[1:6, 1:15] = valley
    prob[2:5, 2:6], prob[2:5, 9:13] = 0.6, 0.55
    return prob


def test_ships_joined_by_their_halo_come_apart_at_the_dip():
    prob = _two_ships()
    seeds, grown = _grown(prob)
    assert _objects(grown == 1)[1] == 1
    out = hysteresis.split(grown, seeds, hysteresis.level(prob), 0.2)
    lab, n = _objects(out == 1)
    assert n == 2
    assert len(np.unique(lab[2:5, 2:6])) == 1 and len(np.unique(lab[2:5, 9:13])) == 1  # each ship whole
    assert lab[3, 3] != lab[3, 10]
    cut = (grown == 1) & (out == 0)
    assert (out[grown != 1] == grown[grown != 1]).all()       # only pixels of the object change
    assert cut.sum() == 5 and len(np.flatnonzero(cut.any(0))) == 1 and (prob[cut] == 0.2).all()  # one line across


def test_a_dip_shallower_than_the_depth_keeps_one_object():
    prob = _two_ships()
    seeds, grown = _grown(prob)
    levels = hysteresis.level(prob)
    np.testing.assert_array_equal(hysteresis.split(grown, seeds, levels, 0.4), grown)   # 0.55 - 0.2 < 0.4
    broken = _two_ships(valley=0.2)
    broken[2:5, 6:9] = 0.5                  # one ship whose seed dips to 0.5 between its two ends
    seeds, grown = _grown(broken, seed=0.52)
    assert _objects(seeds == 1)[1] == 2
    np.testing.assert_array_equal(hysteresis.split(grown, seeds, hysteresis.level(broken), 0.2), grown)


def test_three_seeds_join_from_the_highest_pass_down():
    prob = np.zeros((5, 23))
    prob[1:4, 1:22] = 0.2
    prob[1:4, 2:5], prob[1:4, 9:12], prob[1:4, 16:19] = 0.9, 0.8, 0.6
    prob[1:4, 12:16] = 0.7                  # a high pass between the second and third seeds
    seeds, grown = _grown(prob, seed=0.75)
    out = hysteresis.split(grown, seeds, hysteresis.level(prob), 0.3)
    lab, n = _objects(out == 1)
    assert n == 2 and lab[2, 3] != lab[2, 10] and lab[2, 10] == lab[2, 17]


def test_each_class_splits_apart_and_no_data_stays():
    prob = np.concatenate([_two_ships(), _two_ships()])      # a pair of class 1 above a pair of class 2
    seeds, grown = _grown(prob)
    seeds[7:] *= 2
    grown[7:] *= 2
    seeds[0, 0] = grown[0, 0] = -1
    out = hysteresis.split(grown, seeds, hysteresis.level(prob), 0.2)
    assert out[0, 0] == -1 and set(np.unique(out)) == {-1, 0, 1, 2}
    assert _objects(out[:7] == 1)[1] == 2 and _objects(out[7:] == 2)[1] == 2


def _moored_pair(tmp_path):
    """A tile whose B8 makes two ships side by side in a halo (_Brightness: ship ~0.9, halo ~0.27)."""
    synthetic_tile(tmp_path / "in", "A", size=(96, 128))
    tif = tmp_path / "in" / "A.tif"
    with rasterio.open(tif, "r+") as ds:
        data = np.full((ds.count, 96, 128), 1000, np.uint16)
        b8 = data[SYNTH_BANDS.index("B8")]
        b8[:] = 2300
        b8[38:47, 28:54] = 2580
        b8[40:45, 30:38], b8[40:45, 44:52] = 2700, 2690
        ds.write(data)
    (tile,) = find_tiles(tif)
    return tile


def test_the_tile_and_the_in_memory_image_split_the_pair_alike(tmp_path):
    tile = _moored_pair(tmp_path)
    meta = {"bands": list(SYNTH_BANDS), "classes": [0, 1], "colours": [[0, 0, 0], [230, 25, 75]], "patch_size": 64}
    predictor = _Brightness(meta)
    image = tile.read(SYNTH_BANDS)
    grown = predict_array(image, predictor, 0.25, grow_threshold=0.2, seed_threshold=0.45)
    split = predict_array(image, predictor, 0.25, grow_threshold=0.2, seed_threshold=0.45, split_depth=0.2)
    assert _objects(grown == 1)[1] == 1
    lab, n = _objects(split == 1)
    assert n == 2 and lab[42, 33] != lab[42, 48] and ((grown == 1) | (split == 0)).all()
    res = predict_tile(tile, predictor, 0.25, tmp_path / "raw.tif", grow_threshold=0.2, seed_threshold=0.45,
                       split_depth=0.2)
    with rasterio.open(res.path) as ds:
        np.testing.assert_array_equal(ds.read(1), split.astype(np.uint8))


@pytest.mark.parametrize("args", [{"split_depth": 0.2}, {"split_depth": 0.2, "seed_threshold": 0.45}])
def test_a_split_without_growth_is_refused(args):
    with pytest.raises(InvalidParameter, match="split_depth.*--grow_threshold"):
        S2PatchClassifierParams(action="predict", **args)
    S2PatchClassifierParams(action="predict", grow_threshold=0.15, **args)
