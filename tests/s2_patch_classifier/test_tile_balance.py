"""Draws balanced over tiles: each kind's total kept, a tile's share ~ its patches^(1 - b), and
training draws by it."""

from __future__ import annotations

import numpy as np
import pytest

from components.s2_patch_classifier.train import (TrainConfig, has_foreground, sampling_weights, split, tile_balanced,
                                                  tile_of, train)

from .test_training_loop import _patches


def _two_ports(ps):
    """The fixture's 12 patches as two tiles: a large port of 9 and a small one of 3."""
    ps.index["tiles"] = [{"name": "large", "patches": [0, 9]}, {"name": "small", "patches": [9, 12]}]
    return ps


def test_tile_of_follows_the_index_ranges():
    ps = _two_ports(_patches())
    assert tile_of(ps, np.array([0, 8, 9, 11])).tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("b", [0.0, 0.5, 1.0])
def test_each_kind_keeps_its_total_and_tiles_share_it_by_the_exponent(b):
    has_fg = np.array([1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0], bool)  # large: 2 fg, 7 bg; small: 1 fg, 2 bg
    tiles = np.array([0] * 9 + [1] * 3)
    w = sampling_weights(has_fg)
    out = tile_balanced(w, has_fg, tiles, b)
    assert out.sum() == pytest.approx(1.0)
    assert out[has_fg].sum() == pytest.approx(w[has_fg].sum())
    for kind, (n_large, n_small) in ((has_fg, (2, 1)), (~has_fg, (7, 2))):
        large, small = out[kind & (tiles == 0)], out[kind & (tiles == 1)]
        assert np.ptp(large) == pytest.approx(0) and np.ptp(small) == pytest.approx(0)  # equal within a tile
        assert large.sum() / small.sum() == pytest.approx((n_large / n_small) ** (1 - b))
    if b == 0:
        assert out == pytest.approx(w)


def test_training_draws_by_the_balanced_weights(monkeypatch):
    """The epoch's draws use the balanced probabilities: train() hands them to the generator."""
    ps = _two_ports(_patches())
    cfg = TrainConfig(epochs=1, batch_size=4, lr=1e-3, encoder="resnet14", width=8, device="cpu", tile_balance=1.0)
    seen = []
    real = np.random.default_rng

    class Spy:  # a generator that notes the probabilities of its draws
        def __init__(self, gen):
            self.gen = gen

        def choice(self, a, size=None, replace=True, p=None, **kw):
            seen.append(p)
            return self.gen.choice(a, size=size, replace=replace, p=p, **kw)

        def __getattr__(self, name):
            return getattr(self.gen, name)

    monkeypatch.setattr(np.random, "default_rng", lambda *a, **kw: Spy(real(*a, **kw)))
    train(ps, cfg)
    train_idx, _ = split(len(ps), cfg.val_fraction, cfg.seed)
    has_fg = has_foreground(ps.labels, train_idx)
    want = tile_balanced(sampling_weights(has_fg), has_fg, tile_of(ps, train_idx), 1.0)
    drawn = [p for p in seen if p is not None and len(p) == len(train_idx)]
    assert drawn and np.allclose(drawn[0], want)
    assert not np.allclose(want, sampling_weights(has_fg))  # the fixture's tiles are unequal
