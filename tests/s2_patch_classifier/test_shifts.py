"""Shifted training windows (``--shift``): the offsets, the windows pieced from neighbouring
patches, their use in training batches and the service parameter."""

import numpy as np

from components.s2_patch_classifier.shifts import crop, draw_offsets, neighbours

P = 8


def _grid(tile: np.ndarray):
    """Side-by-side patches (N, C, P, P) of a (C, H, W) tile and their (tile, row, col)."""
    where = [(0, y, x) for y in range(0, tile.shape[1], P) for x in range(0, tile.shape[2], P)]
    return np.stack([tile[:, y:y + P, x:x + P] for _, y, x in where]), np.array(where)


def test_a_shifted_window_is_the_tile_moved_by_its_offset():
    tile = np.arange(2 * 24 * 32, dtype=np.float32).reshape(2, 24, 32)
    patches, where = _grid(tile)
    nb = neighbours(where, P, np.arange(len(where)))
    centre = 5  # row 1, col 1 of a 3 x 4 grid: every neighbour exists
    for dy in range(-P + 1, P):
        for dx in (-7, -3, 0, 2, 7):
            got = crop(patches, nb, np.array([centre]), np.array([[dy, dx]]))[0]
            assert np.array_equal(got, tile[:, P + dy:2 * P + dy, P + dx:2 * P + dx]), (dy, dx)


def test_no_shift_towards_a_missing_or_held_out_neighbour():
    tile = np.zeros((1, 16, 16), np.float32)
    _, where = _grid(tile)  # 2 x 2: patch 0 has neighbours only down and right
    allowed = np.array([0, 1, 3])  # patch 2 (below patch 0) is held out
    nb = neighbours(where, P, allowed)
    rng = np.random.default_rng(0)
    off = draw_offsets(nb, np.zeros(500, np.int64), P - 1, rng)
    assert (off[:, 0] == 0).all()  # no training patch above or below
    assert (off[:, 1] >= 0).all() and (off[:, 1] > 0).any()  # only to the right
    off = draw_offsets(nb, np.full(500, 3), P - 1, rng)
    assert (off[:, 1] == 0).all()  # its left neighbour is the held-out patch
    assert (off[:, 0] <= 0).all() and (off[:, 0] < 0).any()


def test_the_corner_is_needed_to_move_both_ways():
    tile = np.zeros((1, 16, 16), np.float32)
    _, where = _grid(tile)
    nb = neighbours(where, P, np.array([0, 1, 2]))  # patch 3 (the corner of 0) held out
    off = draw_offsets(nb, np.zeros(500, np.int64), P - 1, np.random.default_rng(1))
    assert not ((off[:, 0] > 0) & (off[:, 1] > 0)).any()
    assert (off[:, 0] > 0).any() and (off[:, 1] > 0).any()


def test_training_batches_are_the_port_moved_from_their_patches(tmp_path):
    """On a real port crop: each window of a training batch is the scene (images and labels) at
    its patch's place moved by the drawn offset, and its gap weights are those of its own labels."""
    import torch

    from components.s2_patch_classifier.data import find_tiles
    from components.s2_patch_classifier.gap_weights import gap_weights
    from components.s2_patch_classifier.patches import extract, origins
    from components.s2_patch_classifier.shifts import Shifts
    from components.s2_patch_classifier.train import Batches

    from .fixtures import port_crop

    (tile,) = find_tiles(port_crop(tmp_path))  # 128 x 160: patches at rows 0, 64 and columns 0, 64, 96
    ps = extract([tile], tmp_path / "p", (), 64, (1,), False)
    where = origins(ps)
    scene = np.zeros((len(ps.bands), 128, 160), np.float32)
    labels = np.zeros((128, 160), np.uint8)
    for i, (_, y, x) in enumerate(where.tolist()):
        scene[:, y:y + 64, x:x + 64], labels[y:y + 64, x:x + 64] = ps.images[i], ps.labels[i]
    idx = np.repeat(np.arange(len(ps)), 8)
    x, y, w = Batches(ps, torch.device("cpu"), 10.0).training(idx, Shifts(ps, np.arange(len(ps)), 32, np.random.default_rng(3)))
    off = Shifts(ps, np.arange(len(ps)), 32, np.random.default_rng(3)).offsets(np.sort(idx))
    assert (off != 0).any(1).sum() > len(idx) // 3
    assert (off[where[np.sort(idx), 2] == 96, 1] == 0).all()  # the edge column's windows overlap: no neighbour
    for k, (i, (dy, dx)) in enumerate(zip(np.sort(idx).tolist(), off.tolist())):
        _, y0, x0 = where[i]
        assert np.array_equal(x[k].numpy(), scene[:, y0 + dy:y0 + dy + 64, x0 + dx:x0 + dx + 64], equal_nan=True)
        assert np.array_equal(y[k].numpy(), labels[y0 + dy:y0 + dy + 64, x0 + dx:x0 + dx + 64])
    assert torch.equal(w, torch.from_numpy(gap_weights(y.numpy().astype(np.uint8), 10.0)))


def test_the_service_trains_with_shifted_windows_and_records_the_shift(tmp_path, capsys):
    from .fixtures import trains_and_records

    trains_and_records(tmp_path, capsys, "shift", "32", "64")


def test_a_shift_the_patches_cannot_give_is_one_clear_error():
    import pytest

    from components.common.errors import ServiceError
    from components.s2_patch_classifier.train import train

    from .test_training_loop import _cfg, _patches

    with pytest.raises(ServiceError, match="--shift 32: these patches are 32 px"):
        train(_patches(p=32), _cfg(shift=32))
    with pytest.raises(ServiceError, match=r"--shift: .* \(positions.npy\)"):  # not cut by extract_data
        train(_patches(p=32), _cfg(shift=8))
