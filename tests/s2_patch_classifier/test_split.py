"""The validation split: on patches cut with a stride below the patch size (overlapping), the
held-out windows are side by side and no training window shares a pixel with them."""

from __future__ import annotations

from components.s2_patch_classifier.data import find_tiles
from components.s2_patch_classifier.patches import extract, origins, side_by_side
from components.s2_patch_classifier.train import split_patches, train

from .fixtures import synthetic_tile
from .test_training_loop import _cfg


def _overlapping(tmp_path, stride=32):
    synthetic_tile(tmp_path / "t", "A", size=(160, 192), seed=3)  # every 32 px: 4 x 5 windows, side by side 3 x 3
    return extract(find_tiles(tmp_path / "t"), tmp_path / "p", (), 64, (1,), False, stride=stride)


def _shares_a_pixel(where, a, b, patch=64):
    return any(ta == tb and abs(ya - yb) < patch and abs(xa - xb) < patch
               for ta, ya, xa in where[a].tolist() for tb, yb, xb in where[b].tolist())


def test_overlapping_patches_hold_out_side_by_side_windows_apart_from_training(tmp_path):
    ps = _overlapping(tmp_path)
    assert len(ps) == 20
    result = train(ps, _cfg(epochs=1, val_fraction=0.2, members=2, mixed_windows=True))
    where = origins(ps)
    assert len(result.val_index) == 2 and set(result.val_index) <= set(side_by_side(ps))
    assert not _shares_a_pixel(where, result.train_index, result.val_index)
    # only the windows that touch a held-out one are left out of training
    assert all(_shares_a_pixel(where, [i], result.val_index) for i in set(range(20)) - set(result.train_index))
    assert result.metrics["validation_patches"] == 2


def test_side_by_side_patches_keep_the_random_split(tmp_path):
    ps = _overlapping(tmp_path, stride=64)
    train_idx, val_idx = split_patches(ps, 0.2, 0)
    assert len(ps) == 9 and len(val_idx) == 2 and sorted([*train_idx, *val_idx]) == list(range(9))


def test_too_few_windows_to_hold_out_train_on_all(tmp_path):
    synthetic_tile(tmp_path / "t", "A", size=(64, 96), seed=3)  # windows at 0 and 32, both side by side
    ps = extract(find_tiles(tmp_path / "t"), tmp_path / "p", (), 64, (1,), False, stride=32)
    train_idx, val_idx = split_patches(ps, 0.5, 0)
    assert list(train_idx) == [0, 1] and not len(val_idx)
