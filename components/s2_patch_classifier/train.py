"""Supervised training of the U-Net on extracted patches.

- Split: a seeded random ``val_fraction`` of the patches is held out for validation (at least
  one patch when there are two or more); the metrics come from the held-out patches, or from the
  training patches when nothing is held out (said so in the metrics). Patches cut with a stride
  below the patch size overlap, so there the held-out patches are a ``val_fraction`` of the
  side-by-side windows, and no training patch shares a pixel with them: a validation pixel seen
  in training would make the scores and the choice of the best epoch optimistic.
- Sampling: rare classes (ships, roads) fill few patches, so each epoch draws as many patches as
  the training set holds, with replacement, half of them from patches that contain a foreground
  pixel (when both kinds exist).
- Optimiser: Adam at ``lr`` with cosine decay over the epochs; bf16 autocast and channels-last on
  CUDA. The CPU trains in fp32, contiguous: on a CPU with native bf16 a step would take 0.6x the
  fp32 time, but the ships' held-out F1 came out lower in bf16 over four runs (the README), and
  channels-last gains 1.1-1.4x on small encoders but loses 1-5 % on the ResNet-50.
- Other splits: with ``validation_tiles`` whole tiles validate (member m on the patches of the
  tile m % k, trained on every other tile's; a spatial hold-out), with ``split_per_member`` member
  m validates on the random split of seed + m, so that the ensemble as a whole trains on every
  patch. Neither raised the ships' held-out F1 (the README).
- Model selection: the epoch with the best mean foreground IoU on the validation patches (with
  ``ema``, the weights' moving average at the end of each epoch is scored and kept).
- Ensembles (``members`` k > 1): k networks trained one after the other from seeds seed, seed + 1,
  ... (initialisation, sampling, augmentation) on the same split; the first is the network a
  single training from ``seed`` gives. The metrics score their averaged probabilities. A member
  whose validation foreground IoU stayed 0 in every epoch is left out (``members_to_keep``).
- Restarts (``restarts`` r > 0): a network whose validation foreground IoU is still 0 after a
  third of the epochs has not taken off (its loss stays about three times its peers'; seen on the
  ships bench, where the others all rose above 0 by epoch 6): it is started again from seed +
  1000, + 2000, ..., up to r times, and the last try runs every epoch.
- Mixed windows (``mixed_windows``, an ensemble on patches cut every ``stride`` < patch px): the
  members 1, 3, ... train on the side-by-side windows alone (the patches a stride of one patch
  gives), for as many epochs as make about the steps of the others (the epochs x the training
  patches / its windows); 0, 2, ... on all the windows. All validate on the split's held-out
  windows.
- Gap weights (``gap_weight`` w0 > 0): the loss of the background pixels between two nearby objects of
  a patch is weighted up (``gap_weights``), so that ships moored a few pixels apart are not joined
  into one component; the weights follow the labels through the augmentation.
- Shore weights (``shore_weight`` w > 0): the loss of the background pixels along the water line
  (within ``shore_half`` px of it; NDWI from B3 and B8, away from objects) is weighted 1 + w
  (``shore_weights``): quays, groynes and piers, which unseen ports' networks found as ship-like as
  ships, are pushed down (a band of 4 px instead of 2 lost ships on the ships bench).
- Start (``head_prior`` p > 0): each foreground class starts at probability p, the background at
  the rest (the head's bias; Lin et al.'s prior for the focal loss); without it every class starts
  near 1 / classes, and with shore weights two of the first four ship networks never took off.
- Hard negatives (``hard_negatives`` share > 0): that share of the background draws of an epoch
  goes to the background patches in proportion to the highest foreground probability the network
  gave their background pixels when last drawn (``hard_negatives``): piers and bridges, the false
  ships of unseen ports, are shown more often (it did not lower them on the ships bench).
- Tile balance (``tile_balance`` b > 0): within the foreground and the background draws, a tile's
  share goes as its patches ^ (1 - b) rather than its patches (b = 1: every tile the same;
  ``tile_balanced``), so that the largest ports do not fill most of an epoch's background (on the
  ships bench it gave what the draws by patches give).
- Shifted windows (``shift`` s > 0): each drawn patch is replaced by the window moved from it by
  up to s px, cut from it and its training neighbours (``shifts``), on the host.
- Larger-batch mode (``batch_scaling`` k > 1): batches of k x ``batch_size`` and the learning
  rate x sqrt(k), for a GPU that the seed's small batches leave idle.

On CUDA the steps never wait for the GPU: the patches are copied to GPU memory once when they fit
in a quarter of the free memory (else each batch is gathered on the host while the GPU runs the
previous step, pinned and copied without blocking), the epoch's loss is summed on the device and
the confusion matrix is counted there, both read once per epoch, and Adam runs fused. The CPU
computes what it did before (same batches, same operations; the same sums in float64). With
``graphed`` the forward, backward and Adam of each step are a :class:`.graphed_step.UNetStep`,
one CUDA graph on a GPU (eager elsewhere: the same weights within rounding).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from components.common.errors import ServiceError
from components.common.optimisers import adam

from . import augment as aug
from .data import IGNORE
from .gap_weights import gap_weights
from .graphed_step import UNetStep
from .hard_negatives import HardNegatives
from .losses import loss_function
from .shore_weights import SHORE_HALF, band_positions, shore_weights
from .params import FOCAL_CRITERIA
from .metrics import scores
from .model import Arch, Ensemble, UNet, build, index_positions, start_at_prior
from .patches import PatchSet, sharing_pixels, side_by_side
from .shifts import Shifts

log = logging.getLogger(__name__)
EVAL_BATCH = 16
GPU_EVAL_BATCH = 256
RESIDENT_SHARE = 4  # patch arrays go to the GPU when they fill at most 1/4 of its free memory
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
    max_seconds: float | None = None         # a network, its restarts included, stops after the epoch that crosses this budget
    batch_scaling: int = 1                   # larger-batch mode: batch x k, lr x sqrt(k)
    indices: tuple[str, ...] = ()            # normalised differences added to the input (model.INDICES)
    members: int = 1                         # networks trained from seeds seed, seed + 1, ... (an ensemble)
    mixed_windows: bool = False              # members 1, 3, ... on the side-by-side windows of overlapping patches
    gap_weight: float = 0.0                  # w0 of gap_weights on the background between nearby objects; 0: off
    shore_weight: float = 0.0                # w of shore_weights on the background along the water line; 0: off
    shore_half: int = SHORE_HALF             # px of that band on each side of the water line
    head_prior: float = 0.0                  # each foreground class's starting probability (start_at_prior); 0: off
    restarts: int = 0                        # a network not taken off after a third of the epochs starts again
    hard_negatives: float = 0.0              # share of the background draws by hardness (hard_negatives); 0: off
    shift: int = 0                           # training windows moved up to this many px (shifts); 0: off
    focal_alpha: float = 0.0                 # focal loss weight of the foreground classes (1 - it: background); 0: off
    validation_tiles: tuple[str, ...] = ()   # member m validates on the patches of tile m % len, trained without them
    split_per_member: bool = False           # member m validates on the random split of seed + m
    tile_balance: float = 0.0                # b of tile_balanced draws: a tile's share ~ its patches^(1 - b); 0: off
    ema: float = 0.0                         # decay of the weights' moving average (WeightAverage); 0: off
    scale_jitter: float = 0.0                # training samples zoomed by up to 1 + this (augment.zoom_factors)
    graphed: bool = False                    # each step a graphed_step.UNetStep (a CUDA graph on a GPU)


@dataclass
class TrainResult:
    model: UNet | Ensemble
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


def split_patches(patches: PatchSet, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation patches; of an overlapping set, validation windows side by side and
    training windows apart from them."""
    grid = side_by_side(patches)
    if grid is None:
        return split(len(patches), val_fraction, seed)
    _, val = split(len(grid), val_fraction, seed)
    val_idx = grid[val]
    train_idx = np.flatnonzero(~sharing_pixels(patches, val_idx))
    if not len(train_idx):  # too few windows to hold any out
        return np.arange(len(patches)), val_idx[:0]
    return train_idx, val_idx


def tile_split(patches: PatchSet, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Training patches (every other tile's) and validation patches (tile ``name``'s)."""
    ranges = {t["name"]: t["patches"] for t in patches.index["tiles"]}
    if name not in ranges:
        raise ServiceError(f"validation tile {name!r} is not among the patches' tiles ({', '.join(sorted(ranges))})")
    if len(ranges) < 2:
        raise ServiceError(f"validation tile {name!r} is the only tile: nothing would be left to train on")
    start, end = ranges[name]
    held = np.zeros(len(patches), bool)
    held[start:end] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def member_splits(patches: PatchSet, cfg: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Each member's (training, validation) patches where they differ by member; None: one split."""
    if (cfg.validation_tiles or cfg.split_per_member) and cfg.mixed_windows:
        raise ServiceError("--ensemble_windows mixed: its networks share one split, so not with validation tiles "
                           "or a split per network")
    if len(cfg.validation_tiles) > cfg.members:
        raise ServiceError(f"{len(cfg.validation_tiles)} validation tiles for {cfg.members} network(s): one per "
                           "network at most")
    if cfg.validation_tiles:
        by_tile = [tile_split(patches, name) for name in cfg.validation_tiles]
        return [by_tile[m % len(by_tile)] for m in range(cfg.members)]
    if cfg.split_per_member:
        return [split_patches(patches, cfg.val_fraction, cfg.seed + m) for m in range(cfg.members)]
    return None


def has_foreground(labels: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Per patch of ``index``: does it hold a foreground pixel (one pass over the labels)."""
    return np.array([bool(((labels[i] > 0) & (labels[i] != IGNORE)).any()) for i in index], dtype=bool)


def sampling_weights(has_fg: np.ndarray) -> np.ndarray:
    """Draw probabilities: FOREGROUND_SHARE to the patches with foreground, the rest to the others."""
    n_fg, n_bg = int(has_fg.sum()), int((~has_fg).sum())
    if n_fg == 0 or n_bg == 0:
        return np.full(len(has_fg), 1.0 / len(has_fg))
    return np.where(has_fg, FOREGROUND_SHARE / n_fg, (1 - FOREGROUND_SHARE) / n_bg)


def tile_of(patches: PatchSet, index: np.ndarray) -> np.ndarray:
    """Per patch of ``index``: the position of its tile in the patch set's tiles."""
    ends = np.array([t["patches"][1] for t in patches.index["tiles"]])
    return np.searchsorted(ends, index, side="right")


def tile_balanced(weights: np.ndarray, has_fg: np.ndarray, tiles: np.ndarray, b: float) -> np.ndarray:
    """``weights`` redistributed over tiles within each kind (foreground, background), each kind's
    total kept: a tile's share of its kind goes as its patches of that kind ^ (1 - b), split
    equally among them. b = 0 leaves the draws as they are (a tile's share follows its
    patches); b = 1 gives every tile the same share, so that a few large ports' quays do not
    make up most of the background an epoch shows."""
    out = weights.astype(float)  # a copy
    for kind in (has_fg, ~has_fg):
        if not kind.any():
            continue
        ids, counts = np.unique(tiles[kind], return_counts=True)
        share = counts ** (1.0 - b)
        per_patch = weights[kind].sum() * share / share.sum() / counts
        out[kind] = per_patch[np.searchsorted(ids, tiles[kind])]
    return out


def make_model(patches: PatchSet, cfg: TrainConfig) -> UNet:
    classes = patches.index["classes"]
    try:
        indices = index_positions(cfg.indices, patches.bands)
    except ValueError as e:
        raise ServiceError(f"--indices: {e}") from None
    model = build(Arch(len(patches.bands), len(classes), cfg.encoder, cfg.width, indices))
    stats = cfg.stats or patches.stats
    model.normalise.set_stats(stats["low"], stats["high"], stats["mean"], stats["std"])
    if cfg.head_prior:
        start_at_prior(model, cfg.head_prior)
    if cfg.pretrained_encoder is not None:
        try:
            model.encoder.load_state_dict(cfg.pretrained_encoder)
        except RuntimeError as e:
            raise ServiceError(f"the pre-trained encoder does not fit this model: {str(e).splitlines()[0]}") from None
    return model


def scaled(batch_size: int, lr: float, batch_scaling: int) -> tuple[int, float]:
    """Batch size and learning rate of the larger-batch mode (square-root rule for Adam)."""
    if batch_scaling <= 1:
        return batch_size, lr
    return batch_size * batch_scaling, lr * batch_scaling ** 0.5


class Batches:
    """Patches and labels by index, on the training device. Indexes are sorted first (a memmap
    reads faster in order; the batch order does not matter to the loss)."""

    def __init__(self, patches: PatchSet, device: torch.device, gap_weight: float = 0.0,
                 shore: tuple[float, int, int, int] | None = None):
        self.patches, self.device, self.gap_weight = patches, device, gap_weight
        self.shore = shore  # (weight, position of B3, of B8, half width) of shore_weights; None: off
        self.weighted = bool(gap_weight or shore)
        self._weights_of: dict[int, np.ndarray | None] = {}  # patch -> its loss weights (None: all 1)
        self.images = self.labels = None
        if device.type == "cuda":
            need = patches.images.nbytes + (patches.labels.nbytes if patches.labels is not None else 0)
            free, _ = torch.cuda.mem_get_info(device)
            if need * RESIDENT_SHARE <= free:
                self.images = _to_device(patches.images, device)
                self.labels = _to_device(patches.labels, device) if patches.labels is not None else None
        self.resident = self.images is not None

    def __call__(self, idx: np.ndarray, labels: bool = True):
        idx = np.sort(idx)
        if self.resident:
            i = torch.from_numpy(idx).pin_memory().to(self.device, non_blocking=True)
            return self.images[i], (self.labels[i].long() if labels else None)
        x = self._host(self.patches.images, idx)
        y = self._host(self.patches.labels, idx).long() if labels else None
        return x, y

    def training(self, idx: np.ndarray, shifts: Shifts | None = None):
        """(images, labels, pixel weights or None), in the sorted order of ``idx``. The weights
        (``gap_weight``, ``shore``) come from the host's copy of the patches, read once with them;
        each patch's are computed the first time it is drawn and kept (most patches have none but
        1), so later epochs do not recompute them. With ``shifts`` the windows are moved from the
        patches (cut on the host) and their weights computed afresh."""
        if shifts is not None:
            idx = np.sort(idx)
            images, labels = shifts(idx)
            w = self.weights(images, labels)
            return (self._host(images, slice(None)), self._host(labels, slice(None)).long(),
                    None if w is None else self._host(w, slice(None)))
        if not self.weighted:
            return (*self(idx), None)
        idx = np.sort(idx)
        labels = np.ascontiguousarray(self.patches.labels[idx])
        x, y = self(idx, labels=self.resident)
        if y is None:
            y = self._host(labels, slice(None)).long()
        for i, lab in zip(idx.tolist(), labels):
            if i not in self._weights_of:
                image = self.patches.images[i:i + 1] if self.shore else None
                w = self.weights(image, lab[None])[0]
                self._weights_of[i] = w if (w != 1).any() else None
        w = np.ones(labels.shape, np.float32)
        for row, i in enumerate(idx.tolist()):
            if self._weights_of[i] is not None:
                w[row] = self._weights_of[i]
        return x, y, self._host(w, slice(None))

    def weights(self, images: np.ndarray | None, labels: np.ndarray) -> np.ndarray | None:
        """Loss weights (N, H, W) of patches: the gap and shore weights above 1 added; None when
        neither is on."""
        w = gap_weights(labels, self.gap_weight) if self.gap_weight else None
        if self.shore:
            shore = shore_weights(images, labels, *self.shore)
            w = shore if w is None else w + shore - 1
        return w

    def _host(self, array: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(array[idx]))
        if self.device.type == "cuda":  # pinned: the copy runs on the GPU's copy engine, the host goes on
            return t.pin_memory().to(self.device, non_blocking=True)
        return t


def _to_device(array: np.ndarray, device, rows: int = 4096) -> torch.Tensor:
    """A (memory-mapped) array on the device, copied in slices (no full host copy at once)."""
    out = torch.empty(array.shape, dtype=torch.from_numpy(array[:1].copy()).dtype, device=device)
    for s in range(0, len(array), rows):
        out[s:s + rows].copy_(torch.from_numpy(np.ascontiguousarray(array[s:s + rows])))
    return out


@torch.no_grad()
def evaluate(model: UNet, patches: PatchSet, index: np.ndarray, device, batches: Batches | None = None) -> np.ndarray:
    """Confusion matrix of the model on the patches ``index``, counted on the device."""
    k = len(patches.index["classes"])
    batches = batches or Batches(patches, device)
    cm = torch.zeros(k * k + 1, dtype=torch.int64, device=device)  # last bin: IGNORE pixels
    step = GPU_EVAL_BATCH if device.type == "cuda" else EVAL_BATCH
    model.eval()
    for s in range(0, len(index), step):
        x, y = batches(index[s:s + step])
        with autocast(device):
            pred = model(x).argmax(1)
        code = torch.where(y == IGNORE, k * k, y * k + pred).flatten()
        cm.index_add_(0, code, torch.ones_like(code))
    return cm[:-1].view(k, k).cpu().numpy()


def bf16_training(device: torch.device) -> bool:
    return device.type == "cuda"


def autocast(device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16_training(device))


def train(patches: PatchSet, cfg: TrainConfig) -> TrainResult:
    if patches.labels is None:
        raise ServiceError(f"{patches.folder} holds unlabelled patches (written for pretrain): run extract_data "
                           "on labelled tiles")
    if cfg.shift >= patches.images.shape[-1]:
        raise ServiceError(f"--shift {cfg.shift}: these patches are {patches.images.shape[-1]} px; "
                           "shift them by less than that")
    if cfg.focal_alpha and cfg.criterion not in FOCAL_CRITERIA:
        raise ServiceError(f"--focal_alpha {cfg.focal_alpha}: weighs a focal loss, not {cfg.criterion}")
    device = resolve_device(cfg.device)
    splits = member_splits(patches, cfg)
    if splits:
        train_idx, val_idx = (np.unique(np.concatenate(part)) for part in zip(*splits))
    else:
        train_idx, val_idx = split_patches(patches, cfg.val_fraction, cfg.seed)
    eval_idx = val_idx if len(val_idx) else train_idx
    batches = Batches(patches, device, cfg.gap_weight, shore_setting(patches, cfg))
    log.info("training %s/%d on %s: %d training and %d validation patches%s%s", cfg.encoder, cfg.width, device,
             len(train_idx), len(val_idx), " (patches held in GPU memory)" if batches.resident else "",
             f", an ensemble of {cfg.members}" if cfg.members > 1 else "")
    plans = ([(*one, cfg.epochs, "all") for one in splits] if splits else
             member_windows(patches, cfg, train_idx, eval_idx))
    fits = [_fit_taking_off(patches, replace(cfg, epochs=epochs), cfg.seed + m, member_train, member_eval, batches,
                            device) for m, (member_train, member_eval, epochs, _) in enumerate(plans)]
    kept = members_to_keep([f.best_score for f in fits])
    if len(kept) < len(fits):
        log.warning("networks %s left out of the ensemble: their validation foreground IoU stayed 0 in every epoch",
                    ", ".join(str(m + 1) for m in range(len(fits)) if m not in kept))
    model = assemble([fits[m].model for m in kept])
    cm = evaluate(model, patches, eval_idx, device, batches)
    del batches
    model = model.cpu().to(memory_format=torch.contiguous_format).eval()
    metrics = scores(cm, patches.index["classes"])
    metrics.update({"evaluated_on": evaluated_on(cfg, len(val_idx) > 0),
                    "validation_patches": int(len(val_idx)), "training_patches": int(len(train_idx)),
                    "best_epoch": fits[0].best_epoch, "epochs_run": len(fits[0].history),
                    "restarts": fits[0].restarts, "precision": "bf16" if bf16_training(device) else "fp32"})
    history = fits[0].history
    if cfg.members > 1:  # the first member's figures above; every member's here
        metrics["members"] = [{"seed": f.seed, "best_epoch": f.best_epoch, "epochs_run": len(f.history),
                               "restarts": f.restarts, "val_foreground_iou": f.best_score, "kept": m in kept}
                              for m, f in enumerate(fits)]
        if cfg.mixed_windows:
            for row, (member_train, _, _, windows) in zip(metrics["members"], plans):
                row.update(windows=windows, training_patches=int(len(member_train)))
        history = [{"member": m, **h} for m, f in enumerate(fits) for h in f.history]
    return TrainResult(model, metrics, history, train_idx, val_idx)


def shore_setting(patches: PatchSet, cfg: TrainConfig) -> tuple[float, int, int, int] | None:
    """(weight, position of B3, of B8, half width) for ``shore_weights``; None when off."""
    if not cfg.shore_weight:
        return None
    positions = band_positions(patches.bands)
    if positions is None:
        raise ServiceError(f"--shore_weight {cfg.shore_weight}: the water line is found with bands B3 and B8; "
                           f"these patches have {', '.join(patches.bands)}")
    return (cfg.shore_weight, *positions, cfg.shore_half)


def evaluated_on(cfg: TrainConfig, held_out: bool) -> str:
    if not cfg.validation_tiles and not held_out:
        return "training patches (no validation split)"
    where = ("the patches of validation tiles " + ", ".join(cfg.validation_tiles) if cfg.validation_tiles else
             "validation patches, a random split per network" if cfg.split_per_member else "validation patches")
    apart = len(set(cfg.validation_tiles)) > 1 or (cfg.split_per_member and cfg.members > 1)
    return where + (" (each network's validation patches trained the others)" if apart else "")


def members_to_keep(best_scores: list[float]) -> list[int]:
    """The ensemble members to keep: those whose best validation score rose above 0. A network
    that never segmented a validation object (it stayed below 0.5 on every foreground pixel: a
    run that failed to take off, seen on the ships bench) would only halve the others'
    probabilities; when none rose, all are kept."""
    return [m for m, score in enumerate(best_scores) if score > 0] or list(range(len(best_scores)))


def assemble(networks: list[UNet]) -> UNet | Ensemble:
    return networks[0] if len(networks) == 1 else Ensemble(networks)


def member_windows(patches: PatchSet, cfg: TrainConfig, train_idx: np.ndarray,
                   eval_idx: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, int, str]]:
    """Each member's training patches, validation patches, epochs and windows ("all" or "side by
    side")."""
    every = (train_idx, eval_idx, cfg.epochs, "all")
    if not cfg.mixed_windows:
        return [every] * cfg.members
    grid = side_by_side(patches)
    if grid is None:
        raise ServiceError("--ensemble_windows mixed: these patches were cut side by side; extract them with "
                           "--patch_stride below the patch size")
    grid_train = np.intersect1d(train_idx, grid)
    if not len(grid_train):
        raise ServiceError("--ensemble_windows mixed: no side-by-side window among the training patches")
    epochs = max(1, round(cfg.epochs * len(train_idx) / len(grid_train)))
    alone = (grid_train, eval_idx, epochs, "side by side")
    return [alone if m % 2 else every for m in range(cfg.members)]


@dataclass
class _Fit:
    model: UNet          # on the training device, with the weights of its best epoch
    history: list
    best_epoch: int
    best_score: float
    seed: int
    restarts: int = 0


RESTART_SEED = 1000  # a restart's seed offset: far from the other members' seeds (seed + m)


def _fit_taking_off(patches: PatchSet, cfg: TrainConfig, seed: int, train_idx: np.ndarray, eval_idx: np.ndarray,
                    batches: Batches, device: torch.device) -> _Fit:
    """One network from ``seed``, started again from another seed (up to ``cfg.restarts`` times)
    while its validation score is still 0 after a third of the epochs."""
    patience = max(1, cfg.epochs // 3)
    # the time budget holds for the network, all its tries together
    deadline = time.perf_counter() + cfg.max_seconds if cfg.max_seconds else None
    for attempt in range(cfg.restarts + 1):
        more = attempt < cfg.restarts
        fit = _fit(patches, cfg, seed + RESTART_SEED * attempt, train_idx, eval_idx, batches, device,
                   patience if more else None, deadline)
        fit.restarts = attempt
        if fit.best_score > 0 or not more:
            break
        if deadline and time.perf_counter() > deadline:
            log.warning("seed %d: validation foreground IoU still 0 and the time budget spent: no restart", fit.seed)
            break
        log.warning("seed %d: validation foreground IoU still 0 after %d epochs (the network did not take "
                    "off): starting again from seed %d", fit.seed, patience, seed + RESTART_SEED * (attempt + 1))
    return fit


class WeightAverage:
    """An exponential moving average of a network's weights and batch-norm statistics, updated
    after each optimiser step by min(decay, (1 + t) / (10 + t)) at step t: the early steps'
    weights leave the average soon (the take-off rule judges it by epoch 10), later it spans
    about the last tenth of the training. Each epoch is then scored and kept as the average: a
    network steadier than the last step's. A Python step count, so no step waits on a GPU."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.module = copy.deepcopy(model)
        self.decay, self.steps = decay, 0
        live = list(model.state_dict(keep_vars=True).values())
        kept = list(self.module.state_dict(keep_vars=True).values())
        floats = [(k.detach(), v.detach()) for k, v in zip(kept, live) if v.is_floating_point()]
        self._kept, self._live = [k for k, _ in floats], [v for _, v in floats]
        self._others = [(k, v) for k, v in zip(kept, live) if not v.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        torch._foreach_lerp_(self._kept, self._live, 1 - decay)
        for kept, live in self._others:  # batch-norm step counts
            kept.copy_(live)


def _fit(patches: PatchSet, cfg: TrainConfig, seed: int, train_idx: np.ndarray, eval_idx: np.ndarray,
         batches: Batches, device: torch.device, give_up_after: int | None = None,
         deadline: float | None = None) -> _Fit:
    """One network trained from ``seed`` (initialisation, sampling, augmentation); with
    ``give_up_after``, stopped after that epoch when its validation score has not risen above 0;
    with ``deadline`` (``time.perf_counter()``), after the epoch that crosses it."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    model = make_model(patches, cfg).to(device)
    batch_size, lr = scaled(cfg.batch_size, cfg.lr, cfg.batch_scaling)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    loss_fn = loss_function(cfg.criterion, cfg.focal_alpha)
    optimiser = adam(model.parameters(), lr, device, graphed=cfg.graphed, rate_on_device=True)
    steps_per_epoch = max(1, math.ceil(len(train_idx) / batch_size))
    total_steps = cfg.epochs * steps_per_epoch
    graphed = (UNetStep(model, loss_fn, optimiser, device, bf16_training(device), lr, total_steps)
               if cfg.graphed else None)
    schedule = None if graphed else torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total_steps)
    has_fg = has_foreground(patches.labels, train_idx)
    weights = sampling_weights(has_fg)
    if cfg.tile_balance:
        weights = tile_balanced(weights, has_fg, tile_of(patches, train_idx), cfg.tile_balance)
    hard = HardNegatives(~has_fg, cfg.hard_negatives, device) if cfg.hard_negatives else None
    shifts = Shifts(patches, train_idx, cfg.shift, np.random.default_rng(seed + 2)) if cfg.shift else None
    classes = patches.index["classes"]
    averaged = WeightAverage(model, cfg.ema) if cfg.ema else None
    scored = averaged.module if averaged else model  # the network each epoch is scored and kept as
    best, best_state, best_epoch, history = -1.0, None, 0, []
    log.info("seed %d: %d steps per epoch of %d", seed, steps_per_epoch, batch_size)
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        positions = rng.choice(len(train_idx), size=steps_per_epoch * batch_size,
                               p=hard.weights(weights) if hard else weights)
        draw = train_idx[positions]
        total = torch.zeros((), dtype=torch.float64, device=device)
        seen = 0
        nxt = batches.training(draw[:batch_size], shifts)
        for s in range(steps_per_epoch):
            idx = draw[s * batch_size:(s + 1) * batch_size]
            x, y, w = nxt
            if s + 1 < steps_per_epoch:  # gather the next batch while the device runs this one
                nxt = batches.training(draw[(s + 1) * batch_size:(s + 2) * batch_size], shifts)
            with autocast(device):
                xn = model.normalise(x)
                if cfg.data_aug:
                    xn, y, w = aug.augment(xn, y, gen, w, cfg.scale_jitter)
                if device.type == "cuda":
                    xn = xn.contiguous(memory_format=torch.channels_last)
            if graphed:  # forward, backward and Adam in one graph
                logits, loss = graphed(xn, y, w)
            else:
                with autocast(device):
                    logits = model.forward_normalised(xn).float()
                    loss = loss_fn(logits, y, w)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
            if hard:  # the batch comes sorted by patch: its positions in that order (a shifted
                      # window's hardness goes to the patch it was moved from)
                at = positions[s * batch_size:(s + 1) * batch_size][np.argsort(idx, kind="stable")]
                hard.record(torch.from_numpy(at).to(device, non_blocking=True), logits, y)
            if averaged:
                averaged.update()
            total += loss.detach().double() * len(idx)
            seen += len(idx)
        total = float(total)
        if not math.isfinite(total):  # every later epoch would be NaN too, and its network useless
            raise ServiceError(f"training diverged at epoch {epoch} (non-finite loss): lower -lr")
        cm = evaluate(scored, patches, eval_idx, device, batches)
        sc = scores(cm, classes)
        score = sc["mean_foreground_iou"] if sc["mean_foreground_iou"] is not None else (sc["mean_iou"] or 0.0)
        history.append({"epoch": epoch, "loss": round(total / max(seen, 1), 6), "val_mean_iou": sc["mean_iou"],
                        "val_foreground_iou": sc["mean_foreground_iou"], "seconds": round(time.perf_counter() - t0, 2)})
        log.info("epoch %d/%d: loss %.4f, foreground IoU %s, %.1f s", epoch, cfg.epochs, history[-1]["loss"],
                 sc["mean_foreground_iou"], history[-1]["seconds"])
        if score > best:
            best, best_state = score, copy.deepcopy({k: v.detach().cpu() for k, v in scored.state_dict().items()})
            best_epoch = epoch
        if deadline and time.perf_counter() > deadline:
            log.info("time budget of %.0f s reached after epoch %d", cfg.max_seconds, epoch)
            break
        if give_up_after and epoch >= give_up_after and best <= 0:
            break
    model.load_state_dict(best_state)
    return _Fit(model, history, best_epoch, best, seed)
