"""The training loop keeps its CPU results: ``fit`` against a plain mini-batch loop (the loop as it
was before the device-side loss sums and fused Adam), same seed, same data; and the larger-batch
mode is the plain loop at the scaled batch size and learning rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from components.common.errors import InvalidParameter
from components.crop_lstm.model import CropLSTM, ModelConfig, normalisation
from components.crop_lstm.params import TrainParams
from components.crop_lstm.training import fit, scaled

torch.set_num_threads(1)
CLASSES = [3, 7, 9]


def _data(n=100, t=6, b=4, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), n)
    x = (rng.normal(1000, 300, (n, t, b)) + y[:, None, None] * 150).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = 0  # missing observations
    return x, y


def _model(x, seed=0):
    torch.manual_seed(seed)
    m = CropLSTM(ModelConfig(x.shape[2], x.shape[1], len(CLASSES), hidden_size=8, num_layers=2, dropout=0.2))
    m.set_normalisation(*normalisation(x))
    return m


def _plain_loop(model, x, y, xv, yv, *, epochs, batch_size, learning_rate, seed):
    """Per-step host reads, default Adam: the reference."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
    rows = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        total, correct = 0.0, 0
        for i in range(0, len(xt), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            logits = model(xt[idx])
            loss = loss_fn(logits, yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.detach().argmax(1) == yt[idx]).sum())
        model.eval()
        with torch.no_grad():
            yvt = torch.from_numpy(yv.astype(np.int64))
            known = yvt >= 0
            vloss = float(loss_fn(model(torch.from_numpy(xv))[known], yvt[known]))
        rows.append((total / len(xt), correct / len(xt), vloss))
    return rows


@pytest.mark.parametrize("batch_size", [16, 32])
def test_fit_on_cpu_equals_the_plain_loop(batch_size):
    x, y = _data()
    xv, yv = _data(40, seed=2)
    yv[:3] = -1  # a class the model has no output for: an error, not in the loss
    a, b = _model(x), _model(x)
    hist = fit(a, x, y, xv, yv, epochs=3, batch_size=batch_size, learning_rate=1e-2, class_weights=False, seed=5,
               device=torch.device("cpu"), class_ids=CLASSES)
    ref = _plain_loop(b, x, y, xv, yv, epochs=3, batch_size=batch_size, learning_rate=1e-2, seed=5)
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)
    for row, (loss, acc, vloss) in zip(hist.epochs, ref):
        assert row["loss"] == loss and row["accuracy"] == acc
        assert row["val_loss"] == pytest.approx(vloss, rel=1e-5)


def test_larger_batch_mode_is_the_plain_loop_at_the_scaled_batch():
    x, y = _data()
    xv, yv = _data(20, seed=3)
    a, b = _model(x), _model(x)
    fit(a, x, y, xv, yv, epochs=2, batch_size=8, learning_rate=1e-3, class_weights=False, seed=0,
        device=torch.device("cpu"), class_ids=CLASSES, batch_scaling=4)
    _plain_loop(b, x, y, xv, yv, epochs=2, batch_size=32, learning_rate=2e-3, seed=0)
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)


def test_scaling_rule_and_its_parameter():
    assert scaled(32, 1e-3, 1) == (32, 1e-3)
    assert scaled(32, 1e-3, 32) == (1024, pytest.approx(1e-3 * 32 ** 0.5))
    assert scaled(32, 0.2, 64)[1] == 0.5  # capped: TrainParams wants a rate below 1
    default = TrainParams()  # by default the user's batch and rate are trained as given
    assert scaled(default.batch_size, default.learning_rate, default.batch_scaling) == (
        default.batch_size, default.learning_rate)
    assert TrainParams(batch_scaling=32).batch_scaling == 32
    with pytest.raises(InvalidParameter, match="batch_scaling"):
        TrainParams(batch_scaling=3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fit_on_cuda_learns_and_returns_a_cpu_model():
    x, y = _data(400)
    model = _model(x)
    hist = fit(model, x, y, x[:50], y[:50], epochs=8, batch_size=8, learning_rate=1e-2, class_weights=True, seed=0,
               device=torch.device("cuda"), class_ids=CLASSES, batch_scaling=4)
    assert hist.epochs[-1]["loss"] < hist.epochs[0]["loss"]
    assert all(p.device.type == "cpu" for p in model.parameters())


def _fits(x, y, xv, yv, *, dropout, class_weights, batch_size, device="cpu", epochs=3):
    """The same training with the plain steps and with :class:`MaskedStep`'s (eager off CUDA)."""
    runs = []
    for graphed in (False, True):
        torch.manual_seed(0)
        model = CropLSTM(ModelConfig(x.shape[2], x.shape[1], len(CLASSES), hidden_size=8, num_layers=2,
                                     dropout=dropout))
        model.set_normalisation(*normalisation(x))
        hist = fit(model, x, y, xv, yv, epochs=epochs, batch_size=batch_size, learning_rate=1e-2,
                   class_weights=class_weights, seed=5, device=torch.device(device), class_ids=CLASSES,
                   graphed=graphed)
        runs.append((model, hist))
    return runs


@pytest.mark.parametrize("dropout, class_weights, n", [(0.2, False, 96), (0.0, True, 100)])
def test_masked_steps_train_as_the_plain_steps(dropout, class_weights, n):
    """With dropout, full batches only (a padded batch draws more dropout masks); without, an
    epoch's last batch of 4 padded to 16 and weighed by class as the short batch."""
    x, y = _data(n)
    xv, yv = _data(40, seed=2)
    (a, ha), (b, hb) = _fits(x, y, xv, yv, dropout=dropout, class_weights=class_weights, batch_size=16)
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
    for ra, rb in zip(ha.epochs, hb.epochs):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5) and rb["accuracy"] == ra["accuracy"]
        assert rb["val_loss"] == pytest.approx(ra["val_loss"], rel=1e-4)


def test_a_padded_batch_weighs_only_its_real_samples():
    """Padding rows that would move the weights if they counted: a batch of 3 padded to 8 steps
    as the batch of 3 alone (the padded rows point at sample 0, of another class, far off)."""
    from components.crop_lstm.graphed import MaskedStep

    x, y = _data(10)
    x[0] *= 5
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    weight = torch.tensor([0.5, 1.0, 2.0])
    nets = [_model(x), _model(x)]
    for net in nets:
        net.dropout.p = 0.0
        net.lstm.dropout = 0.0
    idx = torch.tensor([4, 7, 9])
    sums = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.int64)
    step = MaskedStep(nets[0], xt, yt, weight, torch.optim.SGD(nets[0].parameters(), lr=0.1), 8, *sums)
    step(idx)
    opt = torch.optim.SGD(nets[1].parameters(), lr=0.1)
    logits = nets[1](xt[idx])
    loss = nn.CrossEntropyLoss(weight=weight)(logits, yt[idx])
    loss.backward()
    opt.step()
    for p, q in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(p, q)
    assert float(sums[0]) == pytest.approx(3 * float(loss.detach()), rel=1e-6)
    assert int(sums[1]) == int((logits.argmax(1) == yt[idx]).sum())
    assert step.real == 3 and float(step.mask.sum()) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("class_weights, n", [(False, 960), (True, 1000)])
def test_graphed_steps_on_cuda_train_as_the_eager_ones(class_weights, n, caplog):
    """The captured and replayed step against the plain eager steps on the GPU, without dropout
    (a graph draws its random numbers at other offsets): the same weights and losses within
    rounding, with full batches and with a padded last batch, the graph in use."""
    caplog.set_level("INFO", logger="components.common.cuda_graphs")
    x, y = _data(n)
    xv, yv = _data(40, seed=2)
    (a, ha), (b, hb) = _fits(x, y, xv, yv, dropout=0.0, class_weights=class_weights, batch_size=32, device="cuda")
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-4)
    for ra, rb in zip(ha.epochs, hb.epochs):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-4)
        assert rb["val_loss"] == pytest.approx(ra["val_loss"], rel=1e-3)
    assert "captured as a CUDA graph" in caplog.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_graphed_steps_with_dropout_on_cuda_learn_as_the_eager_ones():
    """With dropout (cuDNN's between the LSTM layers, PyTorch's before the head) inside the graph:
    other random draws, so the same learning only in its figures."""
    x, y = _data(960)
    xv, yv = _data(200, seed=2)
    (_, ha), (_, hb) = _fits(x, y, xv, yv, dropout=0.2, class_weights=False, batch_size=32, device="cuda",
                             epochs=8)
    assert hb.epochs[-1]["loss"] < 0.8 * hb.epochs[0]["loss"]
    assert hb.epochs[-1]["val_accuracy"] >= ha.epochs[-1]["val_accuracy"] - 0.1
