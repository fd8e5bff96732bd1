"""Loss weights on the background between nearby ships (``--gap_weight``): the kernel's values,
their journey through augmentation, and the weighted losses."""

import math

import numpy as np
import pytest
import torch

from components.s2_patch_classifier import augment
from components.s2_patch_classifier.gap_weights import SIGMA, gap_weights
from components.s2_patch_classifier.losses import cross_entropy, focal_dice, focal_loss


def two_ships() -> np.ndarray:
    y = np.zeros((16, 16), np.uint8)
    y[2:5, 2:5] = 1     # a ship
    y[2:5, 9:12] = 1    # another, 4 px of water between them
    y[12:, :] = 255     # no data
    return y


def test_weights_peak_between_two_ships():
    w = gap_weights(two_ships(), 10.0)
    # (3, 6): 2 px from the first ship's edge pixel (3, 4), 3 px from the second's (3, 9)
    assert w[3, 6] == pytest.approx(1 + 10 * math.exp(-(2 + 3) ** 2 / (2 * SIGMA ** 2)), rel=1e-6)
    assert w[3, 6] > w[3, 0] > w[9, 15] > 1.0       # between > beside > far away
    assert (w[two_ships() == 1] == 1).all() and (w[12:] == 1).all()  # ships and no data keep 1
    lone = np.zeros((16, 16), np.uint8)
    lone[2:5, 2:5] = 1
    assert (gap_weights(lone, 10.0) == 1).all()     # one ship: nothing to keep apart
    touching = two_ships()
    touching[3, 5:9] = 1                            # joined: one component
    assert (gap_weights(touching, 10.0) == 1).all()
    batch = np.stack([two_ships(), lone])
    assert np.array_equal(gap_weights(batch, 10.0), np.stack([w, np.ones_like(w)]))


def test_augmentation_moves_the_weights_with_the_labels():
    gen = torch.Generator().manual_seed(3)
    y = torch.from_numpy(np.stack([two_ships(), two_ships().T, two_ships()[::-1].copy()])).long()
    w = torch.from_numpy(gap_weights(y.numpy().astype(np.uint8), 10.0))
    x = torch.rand(3, 4, 16, 16)
    xa, ya, wa = augment.augment(x, y, gen, w)
    assert xa.shape == x.shape and not torch.equal(ya, y)   # some sample turned or flipped
    assert torch.allclose(wa, torch.from_numpy(gap_weights(ya.numpy().astype(np.uint8), 10.0)))
    # without weights: the same draws, so the same images and labels
    xb, yb, none = augment.augment(x, y, torch.Generator().manual_seed(3))
    assert torch.equal(yb, ya) and torch.allclose(xb, xa) and none is None


@pytest.mark.parametrize("loss", [cross_entropy, focal_loss, focal_dice])
def test_weighted_losses(loss):
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 16, 16)
    target = torch.from_numpy(np.stack([two_ships(), two_ships()])).long()
    ones = torch.ones(2, 16, 16)
    assert float(loss(logits, target, ones)) == pytest.approx(float(loss(logits, target)), rel=1e-5)
    gap = torch.from_numpy(gap_weights(target.numpy().astype(np.uint8), 10.0))
    assert float(loss(logits, target, gap)) > float(loss(logits, target))
    no_data = ones.clone()
    no_data[:, 12:] = 100.0                          # weights on ignored pixels change nothing
    assert float(loss(logits, target, no_data)) == pytest.approx(float(loss(logits, target)), rel=1e-5)


def test_training_with_gap_weights_equals_the_plain_loop_weighing_each_batch():
    from components.s2_patch_classifier.train import train

    from .test_training_loop import _cfg, _patches, _plain_loop

    ps = _patches()
    ps.labels[::2, 8:16, 23:28] = 1          # a second object 3 px beside the first
    ps.images[::2, :, 8:16, 23:28] += 500
    cfg = _cfg(epochs=2, gap_weight=10.0)
    res = train(ps, cfg)
    _, losses, _ = _plain_loop(ps, cfg)
    assert [h["loss"] for h in res.history] == losses
    unweighted = train(ps, _cfg(epochs=2))
    assert [h["loss"] for h in unweighted.history] != losses


def test_the_service_trains_with_gap_weights_and_records_them(tmp_path, capsys):
    from .fixtures import trains_and_records

    trains_and_records(tmp_path, capsys, "gap_weight", "10", "-1")


def test_each_patch_weights_are_computed_once_per_training(monkeypatch):
    from components.s2_patch_classifier import train as trainmod

    from .test_training_loop import _patches

    ps = _patches()
    ps.labels[::2, 8:16, 23:28] = 1
    calls = []
    monkeypatch.setattr(trainmod, "gap_weights", lambda lab, w0: calls.append(1) or gap_weights(lab, w0))
    batches = trainmod.Batches(ps, torch.device("cpu"), 10.0)
    idx = np.array([3, 0, 2, 0])
    x, y, w = batches.training(idx)
    assert torch.equal(y, torch.from_numpy(ps.labels[np.sort(idx)]).long())
    assert torch.equal(w, torch.from_numpy(gap_weights(ps.labels[np.sort(idx)], 10.0)))
    first = len(calls)
    again = batches.training(np.array([2, 3]))[2]
    assert len(calls) == first                      # drawn before: not recomputed
    assert torch.equal(again, torch.from_numpy(gap_weights(ps.labels[[2, 3]], 10.0)))
