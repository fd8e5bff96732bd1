"""The U-Net training loop keeps its CPU results: ``train`` against a plain loop (host loss read
every step, default Adam, the confusion matrix counted in NumPy: the loop as it was before the
device-side sums), and the larger-batch mode equals training at the scaled batch and rate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from components.common.errors import ServiceError
from components.s2_patch_classifier.gap_weights import gap_weights
from components.s2_patch_classifier.losses import LOSSES
from components.s2_patch_classifier.metrics import confusion
from components.s2_patch_classifier.params import S2PatchClassifierParams
from components.s2_patch_classifier.patches import PatchSet
from components.s2_patch_classifier.train import (Batches, TrainConfig, evaluate, has_foreground, make_model,
                                                  sampling_weights, scaled, split, train)

BANDS = ["B2", "B3", "B4", "B8"]


def _patches(n=12, p=32):
    rng = np.random.default_rng(0)
    img = rng.normal(1000, 200, (n, len(BANDS), p, p)).astype(np.float32)
    lab = np.zeros((n, p, p), np.uint8)
    lab[::2, 8:16, 8:20] = 1
    img[np.repeat(lab[:, None], len(BANDS), 1) == 1] += 500
    lab[1, :2] = 255  # no data: left out of loss and scores
    img[1, :, :2] = np.nan
    stats = {"low": [0.0] * 4, "high": [5000.0] * 4, "mean": [1000.0] * 4, "std": [300.0] * 4}
    return PatchSet(Path("."), {"classes": [0, 1], "bands": BANDS, "stats": stats}, img, lab)


def _cfg(**kw):
    return TrainConfig(**{"epochs": 2, "batch_size": 4, "lr": 1e-3, "encoder": "resnet14", "width": 8,
                          "device": "cpu", **kw})


def _plain_loop(ps, cfg):
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1)
    train_idx, _ = split(len(ps), cfg.val_fraction, cfg.seed)
    model = make_model(ps, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = max(1, math.ceil(len(train_idx) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps)
    weights = sampling_weights(has_foreground(ps.labels, train_idx))
    losses, states = [], []
    average, t = {k: v.clone() for k, v in model.state_dict().items()}, 0  # cfg.ema's, in its own arithmetic
    for _ in range(cfg.epochs):
        model.train()
        draw = train_idx[rng.choice(len(train_idx), size=steps * cfg.batch_size, p=weights)]
        total = 0.0
        for s in range(steps):
            idx = np.sort(draw[s * cfg.batch_size:(s + 1) * cfg.batch_size])
            x = torch.from_numpy(ps.images[idx])
            y = torch.from_numpy(ps.labels[idx]).long()
            w = torch.from_numpy(gap_weights(ps.labels[idx], cfg.gap_weight)) if cfg.gap_weight else None
            alpha = {"alpha": cfg.focal_alpha} if cfg.focal_alpha else {}
            loss = LOSSES[cfg.criterion](model.forward_normalised(model.normalise(x)).float(), y, w, **alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            if cfg.ema:
                t += 1
                d = min(cfg.ema, (1 + t) / (10 + t))
                average = {k: d * average[k] + (1 - d) * v if v.is_floating_point() else v.clone()
                           for k, v in model.state_dict().items()}
        losses.append(round(total / (steps * cfg.batch_size), 6))
        states.append(average if cfg.ema else {k: v.clone() for k, v in model.state_dict().items()})
    return model, losses, states


def test_train_on_cpu_equals_the_plain_loop():
    ps = _patches()
    cfg = _cfg(epochs=3)
    res = train(ps, cfg)
    model, losses, states = _plain_loop(ps, cfg)
    assert [h["loss"] for h in res.history] == losses
    model.load_state_dict(states[res.metrics["best_epoch"] - 1])
    for p, q in zip(res.model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(p, q)
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(ps.images[res.val_index])).argmax(1).numpy()
    assert np.array_equal(np.array(res.metrics["confusion_matrix"]), confusion(pred, ps.labels[res.val_index], 2))
    assert res.metrics["precision"] == "fp32"  # bf16 on CUDA only


def test_confusion_counted_on_the_device_leaves_out_ignored_pixels():
    ps = _patches()
    model = make_model(ps, _cfg()).eval()
    cm = evaluate(model, ps, np.arange(len(ps)), torch.device("cpu"))
    with torch.no_grad():
        pred = model(torch.from_numpy(ps.images)).argmax(1).numpy()
    assert np.array_equal(cm, confusion(pred, ps.labels, 2))
    assert cm.sum() == ps.labels.size - int((ps.labels == 255).sum())


def test_larger_batch_mode_equals_the_scaled_batch_and_rate():
    ps = _patches()
    a = train(ps, _cfg(batch_size=2, batch_scaling=2, epochs=1))
    b = train(ps, _cfg(batch_size=4, lr=1e-3 * 2 ** 0.5, epochs=1))
    for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(p, q)
    assert scaled(16, 1e-4, 1) == (16, 1e-4) and scaled(16, 1e-4, 4) == (64, pytest.approx(2e-4))
    assert S2PatchClassifierParams(action="train").batch_scaling == 1


def test_a_diverged_training_stops_with_one_line_rather_than_return_a_nan_network():
    with pytest.raises(ServiceError, match=r"^training diverged at epoch 1 \(non-finite loss\): lower -lr$"):
        train(_patches(), _cfg(lr=1e20))


def test_batches_on_the_cpu_are_the_sorted_patches():
    ps = _patches()
    x, y = Batches(ps, torch.device("cpu"))(np.array([5, 2, 9]))
    assert torch.equal(x, torch.from_numpy(ps.images[[2, 5, 9]]))
    assert torch.equal(y, torch.from_numpy(ps.labels[[2, 5, 9]]).long())
    assert not Batches(ps, torch.device("cpu")).resident


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_batches_on_cuda_resident_or_pinned_are_the_same(monkeypatch):
    import components.s2_patch_classifier.train as train_module

    ps = _patches()
    cuda = torch.device("cuda")
    resident = Batches(ps, cuda)
    monkeypatch.setattr(train_module, "RESIDENT_SHARE", 10 ** 12)  # nothing fits: batches through pinned memory
    pinned = Batches(ps, cuda)
    assert resident.resident and not pinned.resident
    idx = np.array([7, 1, 4])
    for a, b in zip(resident(idx), pinned(idx)):
        assert a.device.type == "cuda" and torch.equal(a, b)
    res = train(ps, _cfg(device="cuda", epochs=2))
    assert res.metrics["epochs_run"] == 2 and next(res.model.parameters()).device.type == "cpu"


def _one_by_one(x, y, generator):
    """The symmetries applied sample by sample: the reference for the grouped version."""
    n = x.shape[0]
    flips = torch.randint(0, 2, (n,), generator=generator).tolist()
    turns = torch.randint(0, 4, (n,), generator=generator).tolist()
    xs, ys = [], []
    for i in range(n):
        xi, yi = x[i], None if y is None else y[i]
        if flips[i]:
            xi, yi = xi.flip(-1), None if yi is None else yi.flip(-1)
        if turns[i]:
            xi = torch.rot90(xi, turns[i], (-2, -1))
            yi = None if yi is None else torch.rot90(yi, turns[i], (-2, -1))
        xs.append(xi)
        ys.append(yi)
    return torch.stack(xs), None if y is None else torch.stack(ys)


@pytest.mark.parametrize("with_labels", [True, False])
def test_grouped_symmetries_equal_the_sample_by_sample_ones(with_labels):
    from components.s2_patch_classifier.augment import geometric

    x = torch.randn(37, 3, 8, 8)
    y = torch.randint(0, 3, (37, 8, 8)) if with_labels else None
    xa, ya = geometric(x, y, torch.Generator().manual_seed(4))
    xb, yb = _one_by_one(x, y, torch.Generator().manual_seed(4))
    assert torch.equal(xa, xb) and xa.is_contiguous()
    assert (ya is None and yb is None) or torch.equal(ya, yb)


def _same_training(a, b, rtol, atol):
    for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=rtol, atol=atol)
    for ha, hb in zip(a.history, b.history):
        assert hb["loss"] == pytest.approx(ha["loss"], rel=rtol, abs=atol)


@pytest.mark.parametrize("extra", [{}, {"data_aug": True, "gap_weight": 10.0, "scale_jitter": 0.3,
                                        "criterion": "focal_loss", "hard_negatives": 0.5, "ema": 0.99}])
def test_the_graphed_step_trains_as_the_eager_steps(extra):
    """The step on fixed buffers with the cosine rate in its closed form (eager off CUDA) against
    the scheduler's steps: the same weights and losses within rounding, whatever the options that
    feed the step (augmentation, loss weights, hard negatives, the weights' average)."""
    from components.s2_patch_classifier.graphed_step import cosine_lr

    ps = _patches()
    a = train(ps, _cfg(epochs=3, **extra))
    b = train(ps, _cfg(epochs=3, graphed=True, **extra))
    _same_training(a, b, rtol=1e-5, atol=1e-6)
    assert b.metrics["best_epoch"] == a.metrics["best_epoch"]
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=7)
    for step in range(7):
        assert cosine_lr(0.3, step, 7) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
        opt.step()
        sched.step()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_graphed_step_on_cuda_trains_as_the_eager_steps(caplog):
    """Captured and replayed against the eager steps on the GPU (bf16 autocast in both): the same
    losses within bf16 rounding, the graph in use."""
    caplog.set_level("INFO", logger="components.common.cuda_graphs")
    ps = _patches(n=40)
    extra = {"data_aug": True, "gap_weight": 10.0, "scale_jitter": 0.3, "criterion": "focal_loss", "epochs": 3,
             "device": "cuda"}
    a = train(ps, _cfg(**extra))
    b = train(ps, _cfg(graphed=True, **extra))
    for ha, hb in zip(a.history, b.history):
        assert hb["loss"] == pytest.approx(ha["loss"], rel=0.05)
    assert "U-Net training step captured as a CUDA graph" in caplog.text
