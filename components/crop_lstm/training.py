"""The training loop: mini-batch Adam on cross-entropy, on the CPU or a CUDA GPU.

The whole training set is moved to the device once and shuffled there each epoch (a permutation
from a seeded generator), which keeps a GPU busy without a data loader; each epoch is logged with
its loss and accuracy and, with a validation set, the validation loss, accuracy and macro F1.

A step never waits for the device: the epoch's loss and correct count are summed in device
tensors (the loss in float64, as the host sum it replaces) and read once per epoch, so the host
queues the next batch while the GPU computes. On CUDA, Adam runs fused (one kernel for all
parameters) and the step stays in fp32: the LSTM is small, its steps are bound by kernel launches,
not arithmetic, so bf16 would only add rounding. The CPU computes exactly what it did before these
changes (same operations, same order). With ``graphed``, each step is a :class:`.graphed.MaskedStep`:
on CUDA replayed as one graph, elsewhere run eagerly (the same losses within rounding).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from components.common.optimisers import adam

from .graphed import MaskedStep
from .metrics import summary
from .model import CropLSTM

log = logging.getLogger(__name__)

EVAL_BATCH = 8192
WORK_PER_THREAD = 16384  # batch_size x hidden_size per CPU thread: smaller GEMMs run faster on one thread


def cpu_threads(batch_size: int, hidden_size: int) -> int:
    """Intra-op threads for CPU training: the small matrix products of mini-batch LSTM training
    lose more to thread synchronisation than they gain (about 10x slower on 2 busy cores with
    batch 16), so one thread unless the batches are large."""
    from components.common.cpus import usable_cpus

    cores = usable_cpus()
    return max(1, min(cores, batch_size * hidden_size // WORK_PER_THREAD))


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def class_weight_vector(y_idx: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse a-priori probability of each class, scaled so that the mean sample weight is 1."""
    counts = np.bincount(y_idx, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(y_idx) / (n_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def scaled(batch_size: int, learning_rate: float, batch_scaling: int) -> tuple[int, float]:
    """Batch size and learning rate of the larger-batch mode: ``batch_scaling`` times the batch,
    the learning rate times its square root (the usual rule for Adam), capped below 1."""
    if batch_scaling <= 1:
        return batch_size, learning_rate
    return batch_size * batch_scaling, min(learning_rate * batch_scaling ** 0.5, 0.5)


def pick_device(choice: str) -> torch.device:
    from components.common.errors import ServiceError

    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ServiceError("--device cuda: no CUDA GPU is available to PyTorch here")
        return torch.device("cuda")
    return torch.device("cpu")


@torch.no_grad()
def _evaluate(model: CropLSTM, x: torch.Tensor, y: torch.Tensor, loss_fn) -> tuple[float, np.ndarray]:
    model.eval()
    # sums on the device, read once (the boolean masks still cost a short wait per batch of 8192)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    preds = []
    for i in range(0, len(x), EVAL_BATCH):
        logits = model(x[i:i + EVAL_BATCH])
        yb = y[i:i + EVAL_BATCH]
        known = yb >= 0
        n = known.sum()
        # a batch without a known label has a nan loss (0/0): torch.where leaves it out
        loss = loss_fn(logits[known], yb[known]).double()
        total += torch.where(n > 0, loss * n, torch.zeros_like(loss))
        preds.append(logits.argmax(1))
    n_known = int((y >= 0).sum())
    pred = torch.cat(preds).cpu().numpy() if preds else np.zeros(0, np.int64)
    return (float(total) / n_known if n_known else float("nan")), pred


def fit(model: CropLSTM, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray | None, y_val: np.ndarray | None,
        *, epochs: int, batch_size: int, learning_rate: float, class_weights: bool, seed: int,
        device: torch.device, class_ids: list[int], batch_scaling: int = 1, graphed: bool = False) -> History:
    """Train ``model`` in place. Labels are indexes into ``class_ids`` (-1 in ``y_val`` for a class
    the model has no output for: counted as an error, left out of the validation loss).
    ``batch_scaling`` > 1 trains with larger batches and a scaled learning rate (:func:`scaled`);
    ``graphed`` runs each step as a :class:`.graphed.MaskedStep` (a CUDA graph on a GPU)."""
    batch_size, learning_rate = scaled(batch_size, learning_rate, batch_scaling)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(batch_size, model.config.hidden_size))
    try:
        return _fit(model, x_train, y_train, x_val, y_val, epochs=epochs, batch_size=batch_size,
                    learning_rate=learning_rate, class_weights=class_weights, seed=seed, device=device,
                    class_ids=class_ids, graphed=graphed)
    finally:
        torch.set_num_threads(threads)


def _fit(model, x_train, y_train, x_val, y_val, *, epochs, batch_size, learning_rate, class_weights, seed, device,
         class_ids, graphed) -> History:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model.to(device)
    xt = torch.from_numpy(np.ascontiguousarray(x_train, np.float32)).to(device)
    yt = torch.from_numpy(y_train.astype(np.int64)).to(device)
    xv = yv = None
    if x_val is not None:
        xv = torch.from_numpy(np.ascontiguousarray(x_val, np.float32)).to(device)
        yv = torch.from_numpy(y_val.astype(np.int64)).to(device)
    weight = torch.from_numpy(class_weight_vector(y_train, len(class_ids))).to(device) if class_weights else None
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    eval_loss = nn.CrossEntropyLoss(weight=weight)
    optimiser = adam(model.parameters(), learning_rate, device, graphed=graphed)
    history = History()
    n = len(xt)
    # the epoch's sums; fixed tensors, as a captured step adds to them
    total = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    step = MaskedStep(model, xt, yt, weight, optimiser, batch_size, total, correct) if graphed else None
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        te = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen).to(device, non_blocking=True)
        total.zero_()
        correct.zero_()
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            if step is not None:
                step(idx)
                continue
            xb, yb = xt[idx], yt[idx]
            optimiser.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            optimiser.step()
            total += loss.detach().double() * len(idx)
            correct += (logits.detach().argmax(1) == yb).sum()
        row = {"epoch": epoch, "loss": float(total) / n, "accuracy": int(correct) / n}
        if xv is not None:
            vloss, vpred = _evaluate(model, xv, yv, eval_loss)
            truth = np.asarray(class_ids + [-1])[y_val] if len(y_val) else y_val
            s = summary(truth, np.asarray(class_ids)[vpred], class_ids)
            row.update(val_loss=vloss, val_accuracy=s["overall_accuracy"], val_macro_f1=s["macro_f1"])
        row["seconds"] = round(time.perf_counter() - te, 3)
        history.epochs.append(row)
        val_text = (f" | val loss {row['val_loss']:.4f} accuracy {row['val_accuracy']:.3f} macro F1 "
                    f"{row['val_macro_f1']:.3f}") if xv is not None else ""
        log.info("epoch %d/%d: loss %.4f accuracy %.3f%s (%.1f s)", epoch, epochs, row["loss"], row["accuracy"],
                 val_text, row["seconds"])
    history.seconds = round(time.perf_counter() - t0, 3)
    model.cpu().eval()
    return history
