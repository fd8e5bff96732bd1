"""The validation split: on patches cut with a stride below the patch size (overlapping), the
held-out windows are side by side and no training window shares a pixel with them; with
validation tiles, whole tiles are held out (member m on tile m % k), and with a split per
member each network validates on its own seed's random split."""

from __future__ import annotations

import numpy as np
import pytest

from components.common.errors import ServiceError
from components.s2_patch_classifier.data import find_tiles
from components.s2_patch_classifier.patches import extract, origins, side_by_side
from components.s2_patch_classifier.train import split_patches, tile_split, train

from .fixtures import synthetic_tile
from .test_training_loop import _cfg, _patches


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


def _three_tiles(tmp_path):
    for seed, name in enumerate("ABC"):  # 2, 1 and 2 patches of 64 px (the last column on the edge)
        synthetic_tile(tmp_path / "t", name, size=(64, 128 if name != "B" else 64), seed=seed)
    return extract(find_tiles(tmp_path / "t"), tmp_path / "p", (), 64, (1,), False)


def _epochs(result, member=None):
    """The training history (of one member of an ensemble), without the timings."""
    return [{k: v for k, v in h.items() if k not in ("member", "seconds")} for h in result.history
            if member is None or h["member"] == member]


def test_a_validation_tile_is_held_out_whole(tmp_path):
    ps = _three_tiles(tmp_path)
    assert [t["name"] for t in ps.index["tiles"]] == ["A", "B", "C"] and len(ps) == 5
    result = train(ps, _cfg(epochs=1, validation_tiles=("C",)))
    assert list(result.val_index) == [3, 4] and list(result.train_index) == [0, 1, 2]
    assert result.metrics["validation_patches"] == 2
    assert result.metrics["evaluated_on"] == "the patches of validation tiles C"
    train_b, val_b = tile_split(ps, "B")
    assert list(train_b) == [0, 1, 3, 4] and list(val_b) == [2]


def test_each_member_validates_on_its_own_tile_and_trains_on_the_others(tmp_path):
    ps = _three_tiles(tmp_path)
    both = train(ps, _cfg(epochs=2, members=2, validation_tiles=("A", "C")))
    assert list(both.val_index) == [0, 1, 3, 4] and list(both.train_index) == [0, 1, 2, 3, 4]
    assert both.metrics["evaluated_on"] == ("the patches of validation tiles A, C "
                                              "(each network's validation patches trained the others)")
    # the second member (seed 1) is the network one training from seed 1 validating on C gives
    alone = train(ps, _cfg(epochs=2, seed=1, validation_tiles=("C",)))
    assert _epochs(both, member=1) == _epochs(alone)
    first = train(ps, _cfg(epochs=2, validation_tiles=("A",)))
    assert [h["loss"] for h in both.history if h["member"] == 0] == [h["loss"] for h in first.history]
    assert not np.array_equal([h["loss"] for h in first.history], [h["loss"] for h in alone.history])


def test_validation_tiles_errors(tmp_path):
    ps = _three_tiles(tmp_path)
    with pytest.raises(ServiceError, match="validation tile 'D' is not among the patches' tiles"):
        train(ps, _cfg(epochs=1, validation_tiles=("D",)))
    with pytest.raises(ServiceError, match="--ensemble_windows mixed: its networks share one split"):
        train(ps, _cfg(epochs=1, members=2, mixed_windows=True, validation_tiles=("A",)))
    with pytest.raises(ServiceError, match="2 validation tiles for 1 network"):
        train(ps, _cfg(epochs=1, validation_tiles=("A", "B")))
    with pytest.raises(ServiceError, match="validation tile 'A' is the only tile"):
        train(_overlapping(tmp_path / "one", stride=64), _cfg(epochs=1, validation_tiles=("A",)))


def test_a_split_per_member_makes_each_member_the_network_its_seed_gives_alone():
    ps = _patches(n=20)
    both = train(ps, _cfg(epochs=2, members=2, split_per_member=True, val_fraction=0.2))
    alone = [train(ps, _cfg(epochs=2, seed=s, val_fraction=0.2)) for s in (0, 1)]
    assert not np.array_equal(alone[0].val_index, alone[1].val_index)
    assert list(both.val_index) == sorted(set(alone[0].val_index) | set(alone[1].val_index))
    for m, one in enumerate(alone):
        assert _epochs(both, member=m) == _epochs(one)
    assert both.metrics["evaluated_on"] == ("validation patches, a random split per network "
                                            "(each network's validation patches trained the others)")
    shared = train(ps, _cfg(epochs=2, members=2, val_fraction=0.2))  # the default: both on seed 0's split
    assert [h["loss"] for h in shared.history if h["member"] == 1] != [h["loss"] for h in alone[1].history]
