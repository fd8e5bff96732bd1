"""Hard-negative sampling (``--hard_negatives``): the hardness of a patch, the sampling mix, and
the training loop's use of them."""

import numpy as np
import pytest
import torch

from components.s2_patch_classifier.hard_negatives import HardNegatives, hardness, mix


def _logits(ship_probability: np.ndarray) -> torch.Tensor:
    """Two-class logits whose ship probability is the given array (N, H, W)."""
    p = torch.from_numpy(ship_probability).float()
    return torch.stack([torch.log1p(-p), torch.log(p)], 1)


def test_hardness_is_the_highest_ship_probability_on_background_pixels():
    prob = np.full((3, 4, 4), 0.1)
    prob[0, 1, 1] = 0.7          # a pier taken for a ship
    prob[1, 0, 0] = 0.9          # a ship, rightly found: not a mistake
    prob[1, 3, 3] = 0.4
    prob[2, 2, 2] = 0.95         # no data: not counted
    target = torch.zeros(3, 4, 4, dtype=torch.long)
    target[1, 0, 0] = 1
    target[2, 2, 2] = 255
    assert hardness(_logits(prob), target).tolist() == pytest.approx([0.7, 0.4, 0.1], abs=1e-6)
    all_ship = torch.ones(1, 4, 4, dtype=torch.long)
    assert hardness(_logits(prob[:1]), all_ship).tolist() == [0.0]


def test_mix_spreads_a_share_of_the_background_mass_by_hardness():
    base = np.array([0.25, 0.25, 0.5 / 3, 0.5 / 3, 0.5 / 3])   # two ship patches, three background ones
    background = np.array([False, False, True, True, True])
    hard = np.array([0.9, 0.9, 0.6, 0.2, 0.2])
    out = mix(base, background, hard, 0.5)
    assert out[:2].tolist() == base[:2].tolist()               # ship patches keep their draws
    assert out.sum() == pytest.approx(1.0)
    assert out[2:] == pytest.approx(0.5 * (0.5 / 3 + 0.5 * hard[2:] / hard[2:].sum()))
    assert mix(base, background, hard, 0.0).tolist() == base.tolist()
    assert mix(base, background, np.zeros(5), 1.0) == pytest.approx(base)       # nothing hard: uniform
    assert mix(base, background, np.ones(5), 0.5) == pytest.approx(base)        # all alike: uniform


def test_a_batch_records_its_patches_hardness_at_their_positions():
    hn = HardNegatives(np.array([True, True, True, False]), 1.0, torch.device("cpu"))
    prob = np.full((2, 4, 4), 0.1)
    prob[1, 0, 0] = 0.5
    hn.record(torch.tensor([2, 0]), _logits(prob), torch.zeros(2, 4, 4, dtype=torch.long))
    assert hn.hard.tolist() == pytest.approx([0.5, 1.0, 0.1, 1.0])   # patch 1 not drawn yet: hard
    w = hn.weights(np.full(4, 0.25))
    assert w == pytest.approx([0.75 * 0.5 / 1.6, 0.75 * 1.0 / 1.6, 0.75 * 0.1 / 1.6, 0.25])


def test_training_records_each_patch_at_its_position_and_draws_by_the_last_epoch(monkeypatch):
    from components.s2_patch_classifier import hard_negatives as hnmod
    from components.s2_patch_classifier import train as trainmod

    from .test_training_loop import _cfg, _patches

    ps = _patches(n=16)
    ps.images[1::4, :, 2:6, 2:30] += 500      # piers: bright like the ships, labelled background
    batches, recorded, drawn_by = [], [], []
    training, record, weights = trainmod.Batches.training, hnmod.HardNegatives.record, hnmod.HardNegatives.weights
    monkeypatch.setattr(trainmod.Batches, "training", lambda self, idx, shifts=None: batches.append(np.sort(idx))
                        or training(self, idx, shifts))
    monkeypatch.setattr(hnmod.HardNegatives, "record", lambda self, at, logits, y: recorded.append(
        (at.numpy().copy(), hardness(logits, y).detach().numpy())) or record(self, at, logits, y))
    monkeypatch.setattr(hnmod.HardNegatives, "weights", lambda self, base: drawn_by.append(
        (base, self.background, weights(self, base))) or drawn_by[-1][2])
    plain = trainmod.train(ps, _cfg(epochs=3))
    batches.clear()
    res = trainmod.train(ps, _cfg(epochs=3, hard_negatives=1.0))
    assert res.history[0]["loss"] == plain.history[0]["loss"]   # nothing seen yet: the same draws
    assert [h["loss"] for h in res.history[1:]] != [h["loss"] for h in plain.history[1:]]
    assert len(recorded) == len(batches)
    for (at, _), idx in zip(recorded, batches):   # each hardness lands on its own patch
        assert res.train_index[at].tolist() == idx.tolist()
    steps = len(recorded) // 3
    hard = np.ones(len(res.train_index))
    for at, h in recorded[:steps]:
        hard[at] = h
    base, background, second = drawn_by[1]
    assert second == pytest.approx(mix(base, background, hard, 1.0))
    assert not np.allclose(second, base)


def test_the_labels_are_read_once_for_the_foreground_of_a_training(monkeypatch):
    from components.s2_patch_classifier import train as trainmod

    from .test_training_loop import _cfg, _patches

    calls = []
    has_foreground = trainmod.has_foreground
    monkeypatch.setattr(trainmod, "has_foreground", lambda labels, index: calls.append(1) or
                        has_foreground(labels, index))
    trainmod.train(_patches(), _cfg(epochs=1, hard_negatives=0.5))
    assert len(calls) == 1                  # sampling and hard negatives share the one pass


def test_the_service_trains_with_hard_negatives_and_records_them(tmp_path, capsys):
    from .fixtures import trains_and_records

    trains_and_records(tmp_path, capsys, "hard_negatives", "0.5", "1.5", epochs=2)
