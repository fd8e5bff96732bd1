"""Supervised training of the U-Net on extracted patches.

- Split: a seeded random ``val_fraction`` of the patches is held out for validation (at least
  one patch when there are two or more); the metrics come from the held-out patches, or from the
  training patches when nothing is held out (said so in the metrics).
- Sampling: rare classes (ships, roads) fill few patches, so each epoch draws as many patches as
  the training set holds, with replacement, half of them from patches that contain a foreground
  pixel (when both kinds exist).
- Optimiser: Adam at ``lr`` with cosine decay over the epochs; bf16 autocast on CUDA.
- Model selection: the epoch with the best mean foreground IoU on the validation patches.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from components.common.errors import ServiceError

from . import augment as aug
from .data import IGNORE
from .losses import LOSSES
from .metrics import confusion, scores
from .model import Arch, UNet, build
from .patches import PatchSet

log = logging.getLogger(__name__)
EVAL_BATCH = 16
FOREGROUND_SHARE = 0.5


@dataclass
class TrainConfig:
    criterion: str = "cross_entropy"
    epochs: int = 20
    batch_size: int = 2
    lr: float = 1e-4
    data_aug: bool = False
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "cpu"
    encoder: str = "resnet50"
    width: int = 64
    pretrained_encoder: dict | None = None   # state dict of ResNetEncoder
    stats: dict | None = None                # normalisation; default: the patch set's
    max_seconds: float | None = None         # stop after the epoch that crosses this budget


@dataclass
class TrainResult:
    model: UNet
    metrics: dict
    history: list = field(default_factory=list)
    train_index: np.ndarray | None = None
    val_index: np.ndarray | None = None


def resolve_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ServiceError("--device cuda: no CUDA device is available here")
        return torch.device("cuda")
    return torch.device("cpu")


def split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_val = 0 if val_fraction <= 0 or n < 2 else min(n - 1, max(1, round(n * val_fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def sampling_weights(labels: np.ndarray, index: np.ndarray) -> np.ndarray:
    has_fg = np.array([bool(((labels[i] > 0) & (labels[i] != IGNORE)).any()) for i in index])
    n_fg, n_bg = int(has_fg.sum()), int((~has_fg).sum())
    if n_fg == 0 or n_bg == 0:
        return np.full(len(index), 1.0 / len(index))
    return np.where(has_fg, FOREGROUND_SHARE / n_fg, (1 - FOREGROUND_SHARE) / n_bg)


def make_model(patches: PatchSet, cfg: TrainConfig) -> UNet:
    classes = patches.index["classes"]
    model = build(Arch(len(patches.bands), len(classes), cfg.encoder, cfg.width))
    stats = cfg.stats or patches.stats
    model.normalise.set_stats(stats["low"], stats["high"], stats["mean"], stats["std"])
    if cfg.pretrained_encoder is not None:
        try:
            model.encoder.load_state_dict(cfg.pretrained_encoder)
        except RuntimeError as e:
            raise ServiceError(f"the pre-trained encoder does not fit this model: {str(e).splitlines()[0]}") from None
    return model


def _batch(array: np.ndarray, idx, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array[np.sort(idx)])).to(device, non_blocking=True)


@torch.no_grad()
def evaluate(model: UNet, patches: PatchSet, index: np.ndarray, device) -> np.ndarray:
    """Confusion matrix of the model on the patches ``index``."""
    k = len(patches.index["classes"])
    cm = np.zeros((k, k), np.int64)
    model.eval()
    for s in range(0, len(index), EVAL_BATCH):
        idx = np.sort(index[s:s + EVAL_BATCH])
        x = _batch(patches.images, idx, device)
        with _autocast(device):
            pred = model(x).argmax(1).cpu().numpy()
        cm += confusion(pred, np.asarray(patches.labels[idx]), k)
    return cm


def _autocast(device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def train(patches: PatchSet, cfg: TrainConfig) -> TrainResult:
    if patches.labels is None:
        raise ServiceError(f"{patches.folder} holds unlabelled patches (written for pretrain): run extract_data "
                           "on labelled tiles")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1)
    train_idx, val_idx = split(len(patches), cfg.val_fraction, cfg.seed)
    eval_idx = val_idx if len(val_idx) else train_idx
    model = make_model(patches, cfg).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    loss_fn = LOSSES[cfg.criterion]
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = max(1, math.ceil(len(train_idx) / cfg.batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=cfg.epochs * steps_per_epoch)
    weights = sampling_weights(patches.labels, train_idx)
    classes = patches.index["classes"]
    best, best_state, best_epoch, history = -1.0, None, 0, []
    started = time.perf_counter()
    log.info("training %s/%d on %s: %d training and %d validation patches, %d steps per epoch",
             cfg.encoder, cfg.width, device, len(train_idx), len(val_idx), steps_per_epoch)
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        draw = train_idx[rng.choice(len(train_idx), size=steps_per_epoch * cfg.batch_size, p=weights)]
        total, seen = 0.0, 0
        for s in range(steps_per_epoch):
            idx = draw[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            x = _batch(patches.images, idx, device)
            y = _batch(patches.labels, idx, device).long()
            with _autocast(device):
                xn = model.normalise(x)
                if cfg.data_aug:
                    xn, y = aug.augment(xn, y, gen)
                if device.type == "cuda":
                    xn = xn.contiguous(memory_format=torch.channels_last)
                loss = loss_fn(model.forward_normalised(xn).float(), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        cm = evaluate(model, patches, eval_idx, device)
        sc = scores(cm, classes)
        score = sc["mean_foreground_iou"] if sc["mean_foreground_iou"] is not None else (sc["mean_iou"] or 0.0)
        history.append({"epoch": epoch, "loss": round(total / max(seen, 1), 6), "val_mean_iou": sc["mean_iou"],
                        "val_foreground_iou": sc["mean_foreground_iou"], "seconds": round(time.perf_counter() - t0, 2)})
        log.info("epoch %d/%d: loss %.4f, foreground IoU %s, %.1f s", epoch, cfg.epochs, history[-1]["loss"],
                 sc["mean_foreground_iou"], history[-1]["seconds"])
        if score > best:
            best, best_state = score, copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            best_epoch = epoch
        if cfg.max_seconds and time.perf_counter() - started > cfg.max_seconds:
            log.info("time budget of %.0f s reached after epoch %d", cfg.max_seconds, epoch)
            break
    model.load_state_dict(best_state)
    cm = evaluate(model, patches, eval_idx, device)
    model = model.cpu().to(memory_format=torch.contiguous_format).eval()
    metrics = scores(cm, classes)
    metrics.update({"evaluated_on": "validation patches" if len(val_idx) else "training patches (no validation split)",
                    "validation_patches": int(len(val_idx)), "training_patches": int(len(train_idx)),
                    "best_epoch": best_epoch, "epochs_run": len(history)})
    return TrainResult(model, metrics, history, train_idx, val_idx)
