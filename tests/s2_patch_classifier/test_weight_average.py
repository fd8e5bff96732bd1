"""The weights' moving average (``TrainConfig.ema``): its update rule, batch-norm statistics
included, and training that scores and keeps the averaged network instead of the last step's."""

from __future__ import annotations

import torch

from components.s2_patch_classifier.train import WeightAverage, train

from .test_training_loop import _cfg, _plain_loop, _patches


def test_the_average_moves_by_one_minus_the_decay_after_its_warm_up():
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    avg = WeightAverage(net, 0.2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for step, decay in ((1, 2 / 11), (2, 0.2), (3, 0.2)):   # min(0.2, (1 + t) / (10 + t))
        with torch.no_grad():
            for p in net.parameters():
                p += 4.0
            net[1].running_mean += 8.0
            net[1].num_batches_tracked += 1
        avg.update()
        got, now = avg.module.state_dict(), net.state_dict()
        for name in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean"):
            torch.testing.assert_close(got[name], decay * before[name] + (1 - decay) * now[name])
        assert int(got["1.num_batches_tracked"]) == step
        before = {k: v.clone() for k, v in got.items()}


def test_training_scores_and_keeps_the_average():
    ps = _patches()
    res = train(ps, _cfg(epochs=3, ema=0.6))
    _, _, averages = _plain_loop(ps, _cfg(epochs=3, ema=0.6))
    kept = averages[res.metrics["best_epoch"] - 1]
    for name, value in res.model.state_dict().items():
        torch.testing.assert_close(value, kept[name], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(a[k], b[k]) for a, b in zip(averages, averages[1:]) for k in a)
