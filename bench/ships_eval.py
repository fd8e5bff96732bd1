"""Ship segmentation on real Sentinel-2 data (sen2ships), leave-one-port-out.

Every port is held out once: a U-Net (s2-patch-classifier's training) is trained on the other
ports and classifies the held-out port whole (the service's sliding-window prediction), then
ships are scored:

- object level: predicted connected components (8-connectivity) and annotated ships matched one
  to one (a pair must overlap); precision = matches / predicted components, recall = matches /
  ships, F1. One component over three moored ships is one match: merging cannot raise a score;
- pixel Dice of the ship class.

The default settings (chosen on the validation ports, see the README): per-scene dark-object
subtraction (``--dark-object``: each band's 2nd percentile moved to the training scenes' mean), an
ensemble of two ResNet-14 U-Nets of width 16 (``--members 2``: seeds 0 and 1 on one split,
probabilities averaged; a network whose validation IoU is still 0 after 10 epochs starts again
from another seed, twice at most, ``--restarts 2``, the service's ``--restarts``, and one that
stayed 0 is left out), focal loss with the
U-Net's separation weights on the background between nearby ships (``--gap-weight 10``, the
service's ``--gap_weight``) and weights on the background along the water line (``--shore-weight
5``, the service's ``--shore_weight``: quays, groynes and piers pushed down), ship pixels starting
at probability 0.01 (``--head-prior 0.01``, the service's ``--head_prior``), 30 epochs,
augmentation, 64-px patches whose training windows move by up to 32 px from them (``--shift 32``,
the service's ``--shift``) and are zoomed by a factor between 1 / 1.3 and 1.3 (``--scale-jitter
0.3``, the service's ``--scale_jitter``), and hysteresis at prediction: ships seeded where their probability
reaches 0.45 (``--seed-threshold 0.45``), grown over the pixels of probability >= 0.15
(``--grow-threshold 0.15``) and cut apart between two seeds where the probability between them
dips more than 0.2 below the lower peak (``--split-depth 0.2``, the service's ``--split_depth``).

The settings were chosen on the **validation ports** (cartagena, casablanca, honolulu, klang:
their folds' scores guided every choice; cartagena joined them when it chose the dark-object
subtraction); the **report ports** (busan, durban, hedland) were scored only with the final
settings. The summary gives both groups apart: mean F1 over ports, the worst port, and F1 of the
pooled counts. It prints one JSON object and asserts nothing.

With ``--pretrain-epochs N`` the encoder is first pre-trained self-supervised (MoCo v2) on the
patches of *all* ports without their labels (a held-out port's image is unlabelled data a user
would have too), and each fold starts from it.

    python bench/ships_eval.py ../shared/data/s2-ships-sen2ships                  # CPU, 2 cores: about 40 min
    python bench/ships_eval.py ROOT --device cuda --encoder resnet50 --width 64    # a GPU machine
    python bench/ships_eval.py ROOT --ports honolulu --epochs 2 --members 1        # a quick try
    python bench/ships_eval.py ROOT --save-dir runs/a     # keep the networks, for bench/ships_rescore.py
    python bench/ships_eval.py ROOT --ports busan,durban,hedland --seeds 0-9   # ten seeds and the figures over them (the README)
    python bench/ships_eval.py ROOT --mix-stride 32 --gap-weight 0 --shift 0  # + 2 networks on overlapping patches: 4 per fold, twice the time
    python bench/ships_eval.py ROOT --patch-stride 32 --epochs 8 --members 4 --ensemble-windows mixed --gap-weight 0 --shift 0  # the service's form of that

Data: ShipDetectionExperts/sen2ships (MIT); contains modified Copernicus Sentinel data 2022-2023.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.ships_seeds import over_seeds, parse_seeds  # noqa: E402
from components.common.errors import InvalidParameter  # noqa: E402
from components.s2_patch_classifier.params import S2PatchClassifierParams  # noqa: E402
from components.s2_patch_classifier.shore_weights import SHORE_HALF  # noqa: E402

DEFAULT_ROOT = Path(os.environ.get("EO_SAMPLE_DATA", REPO.parent / "shared" / "data")) / "s2-ships-sen2ships"
VALIDATION = ("cartagena", "casablanca", "honolulu", "klang")
BANDS = ("B2", "B3", "B4", "B8", "B11")
SETTINGS_FILE = "settings.json"  # the run's settings, beside the networks of --save-dir
# flags that set a service parameter, and that parameter: they take its declared bounds and its
# rules between parameters
SERVICE_FLAGS = {"width": "width", "members": "ensemble", "epochs": "epochs", "lr": "lr",
                 "patch_stride": "patch_stride", "gap_weight": "gap_weight", "shore_weight": "shore_weight",
                 "restarts": "restarts", "head_prior": "head_prior", "hard_negatives": "hard_negatives",
                 "shift": "shift", "scale_jitter": "scale_jitter", "focal_alpha": "focal_alpha",
                 "val_fraction": "val_fraction", "overlap": "overlap", "seed_threshold": "seed_threshold",
                 "grow_threshold": "grow_threshold", "split_depth": "split_depth",
                 "pretrain_epochs": "pretrain_epochs", "seed": "seed", "patch_size": "patch_size",
                 "criterion": "criterion", "ensemble_windows": "ensemble_windows"}
# the bench's own numeric flags: (lowest, highest; None: no bound)
BENCH_BOUNDS = {"shore_half": (1, None), "tile_balance": (0.0, 1.0), "mix_stride": (0, None),
                "mix_epochs": (1, None), "batch_size": (1, None), "validate_on_ports": (0, None),
                "budget_s": (0.0, None), "min_pixels": (-1, None), "jobs": (0, None), "ema": (0.0, 0.9999)}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", nargs="?", default=str(DEFAULT_ROOT), help="the s2-ships-sen2ships folder")
    ap.add_argument("--ports", default="", help="ports to hold out, one fold each (default: every port)")
    ap.add_argument("--train-ports", default="", help="training ports of every fold (default: all the others)")
    ap.add_argument("--validation-ports", default=",".join(VALIDATION),
                    help="ports whose scores chose the settings (reported apart)")
    ap.add_argument("--encoder", default="resnet14", choices=("resnet50", "resnet26", "resnet14"))
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--indices", default="", help="normalised differences added to the input, e.g. NDWI,NDBI")
    ap.add_argument("--members", type=int, default=2,
                    help="networks per fold from seeds seed, seed + 1, ... whose probabilities are averaged")
    ap.add_argument("--dark-object", action=argparse.BooleanOptionalAction, default=True,
                    help="per-scene dark-object subtraction of the service (--dark_object)")
    ap.add_argument("--patch-size", type=int, default=64, choices=(64, 256))
    ap.add_argument("--patch-stride", type=int, default=0,
                    help="training patches every N px (0: the patch size, side by side; 32: overlapping)")
    ap.add_argument("--mix-stride", type=int, default=0,
                    help="also train --members networks on patches every N px and average all (0: off)")
    ap.add_argument("--mix-epochs", type=int, default=8, help="epochs of the --mix-stride networks")
    ap.add_argument("--ensemble-windows", default="same", choices=("same", "mixed"),
                    help="the service's --ensemble_windows: with --patch-stride, members 2, 4, ... on the "
                         "side-by-side windows alone")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--gap-weight", type=float, default=10.0,
                    help="w0 of the loss weights on the background between nearby ships (0: off)")
    ap.add_argument("--shore-weight", type=float, default=5.0,
                    help="loss weight added on the background along the water line (the service's --shore_weight)")
    ap.add_argument("--shore-half", type=int, default=SHORE_HALF,
                    help="px of the shore weights' band on each side of the water line")
    ap.add_argument("--restarts", type=int, default=2,
                    help="a network whose validation IoU is still 0 after a third of the epochs starts again from "
                         "another seed, up to this many times (the service's --restarts); 0: never")
    ap.add_argument("--head-prior", type=float, default=0.01,
                    help="probability a ship pixel starts at (the service's --head_prior); 0: the default start")
    ap.add_argument("--tile-balance", type=float, default=0.0,
                    help="draws balanced over the training ports: a port's share ~ its patches^(1 - B) (1: equal; 0: off)")
    ap.add_argument("--hard-negatives", type=float, default=0.0,
                    help="share of the background draws by hardness (the service's --hard_negatives; 0: off)")
    ap.add_argument("--shift", type=int, default=32,
                    help="training windows moved up to N px from their patches (the service's --shift; 0: off)")
    ap.add_argument("--focal-alpha", type=float, default=0.0,
                    help="focal loss weight of ship pixels, 1 - it of the background (the service's --focal_alpha; 0: off)")
    ap.add_argument("--validate-on-ports", type=int, default=0,
                    help="K > 0: K of each fold's training ports (a seeded draw) choose the epoch: member m "
                         "validates on the (m mod K)-th and trains on the others; 0: random patches")
    ap.add_argument("--val-fraction", type=float, default=0.1,
                    help="share of the training patches held out to choose the epoch; 0: train on all, "
                         "the epoch chosen on the training patches")
    ap.add_argument("--split-per-member", action="store_true",
                    help="member m validates on the random split of seed + m (default: all on seed's)")
    ap.add_argument("--scale-jitter", type=float, default=0.3,
                    help="training samples zoomed by up to 1 + this (the service's --scale_jitter; 0: off)")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="each epoch scored and kept as a moving average of the weights, min(this, (1 + t) / (10 + t)) "
                         "its decay at step t (train.WeightAverage; 0: off)")
    ap.add_argument("--criterion", default="focal_loss", choices=("focal_loss", "cross_entropy", "focal_dice"))
    ap.add_argument("--no-aug", action="store_true", help="train without data augmentation")
    ap.add_argument("--flips", action="store_true", help="test-time flips (8 views per window)")
    ap.add_argument("--seed-threshold", type=float, default=0.45,
                    help="ship where its probability reaches this (the service's --seed_threshold); 0: the argmax")
    ap.add_argument("--grow-threshold", type=float, default=0.15,
                    help="hysteresis: ship probability at which pixels join a seeded ship (0: off)")
    ap.add_argument("--split-depth", type=float, default=0.2,
                    help="grown ships cut apart between seeds where the probability dips this much (0: off)")
    ap.add_argument("--pretrain-epochs", type=int, default=0, help="MoCo v2 epochs; 0: no pre-training")
    ap.add_argument("--budget-s", type=float, default=0.0,
                    help="training time budget per network, its restarts included, in seconds (0: none); the epoch crossing it is the last")
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--min-pixels", type=int, default=-1,
                    help="predicted components smaller than this are dropped (-1: half the smallest ship "
                         "annotated in the fold's training ports)")
    ap.add_argument("--save-dir", default="", help="keep the trained models (model_<port>.pt) here")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=parse_seeds, default=None,
                    help="several seeds, e.g. 0-4 or 0,1,2: the rotation once per seed (networks of seed s in "
                         "--save-dir/seed<s>), then the figures over seeds (bench/ships_seeds.py); overrides --seed")
    ap.add_argument("--jobs", type=int, default=0, help="folds trained at once (0: one per core on CPU, 1 on CUDA)")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap


def parse_args(argv=None, ap: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """The flags of ``ap`` (default: this bench's), each numeric one checked against its range: one
    line and exit status 2 (argparse's) for a value out of it."""
    ap = ap or parser()
    args = ap.parse_args(argv)
    for flag, name in SERVICE_FLAGS.items():
        if hasattr(args, flag):
            try:
                S2PatchClassifierParams.check(name, getattr(args, flag))
            except InvalidParameter as e:
                fail(f"{_flag(flag)} {getattr(args, flag)}: allowed {e.allowed} (the service's --{name})", ap)
    for flag, (lo, hi) in BENCH_BOUNDS.items():
        value = getattr(args, flag, None)
        if value is not None and (value < lo or hi is not None and value > hi):
            fail(f"{_flag(flag)} {value}: allowed {lo} " + ("or more" if hi is None else f"to {hi}"), ap)
    service_rules(args, ap)
    return args


def service_rules(args, ap: argparse.ArgumentParser) -> None:
    """The service's rules between its parameters (a zoom needs augmentation, objects split only
    once grown, ...) on the flags of ``args`` that mean them: one line and exit status 2."""
    flags = {flag: name for flag, name in SERVICE_FLAGS.items() if hasattr(args, flag)}
    values = {name: getattr(args, flag) for flag, name in flags.items()}
    if hasattr(args, "no_aug"):
        values["data_aug"] = not args.no_aug
    try:
        S2PatchClassifierParams(action="full", **values)
    except InvalidParameter as e:
        flag = {name: flag for flag, name in flags.items()}.get(e.name)
        shown = f"{_flag(flag)} {getattr(args, flag)}" if flag else f"--{e.name} {e.value}"
        fail(f"{shown}: allowed {e.allowed} (the service's --{e.name})", ap)


def service_flags(args) -> list[str] | None:
    """The ``s2-patch-classifier`` flags that train and predict as a fold of this bench does (the
    service's ``-action full`` on the fold's training ports, ``--predict_input`` the held-out port:
    the same patches, networks and maps; the bench then drops components under half the smallest
    training ship, which hysteresis rarely leaves). None when a setting is the bench's alone."""
    bench_only = ("shore_half", "tile_balance", "mix_stride", "validate_on_ports", "split_per_member",
                  "pretrain_epochs", "budget_s", "ema")
    if any(getattr(args, k) != parser().get_default(k) for k in bench_only):
        return None
    flags = ["-patch_size", args.patch_size, "-b", args.batch_size, "-epochs", args.epochs, "-lr", args.lr,
             "-criterion", args.criterion, "-data_aug", not args.no_aug, "--encoder", args.encoder,
             "--width", args.width, "--dark_object", args.dark_object, "--ensemble", args.members,
             "--restarts", args.restarts, "--gap_weight", args.gap_weight, "--shore_weight", args.shore_weight,
             "--head_prior", args.head_prior, "--shift", args.shift, "--scale_jitter", args.scale_jitter,
             "--val_fraction", args.val_fraction,
             "--seed_threshold", args.seed_threshold, "--grow_threshold", args.grow_threshold,
             "--split_depth", args.split_depth]
    # the rest only where they leave the service's own default
    service = {f.name: f.default for f in dataclasses.fields(S2PatchClassifierParams)}
    optional = {"indices": tuple(names(args.indices)), "patch_stride": args.patch_stride,
                "ensemble_windows": args.ensemble_windows, "hard_negatives": args.hard_negatives,
                "focal_alpha": args.focal_alpha, "flips": args.flips, "overlap": args.overlap, "seed": args.seed}
    flags += [x for name, value in optional.items() if value != service[name]
              for x in (f"--{name}", ",".join(value) if isinstance(value, tuple) else value)]
    return [str(f) for f in flags]


def fail(message: str, ap: argparse.ArgumentParser | None = None):
    """One line on stderr and exit status 2, as argparse does for a flag it cannot read."""
    ap = ap or parser()
    ap.exit(2, f"{ap.prog}: error: {message}\n")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def main(argv=None) -> int:
    args = parse_args(argv)

    from components.common.logs import setup_logging

    setup_logging(logging.INFO if args.verbose else logging.WARNING)
    print(json.dumps(evaluate_seeds(args) if args.seeds else evaluate(args), indent=2))
    return 0


def evaluate_seeds(args) -> dict:
    """The rotation at each of ``args.seeds`` and the figures over them."""
    runs = []
    for seed in args.seeds:
        save_dir = str(Path(args.save_dir) / f"seed{seed}") if args.save_dir else ""
        runs.append(evaluate(argparse.Namespace(**{**vars(args), "seed": seed, "seeds": None, "save_dir": save_dir})))
    return {"runs": runs, "over_seeds": over_seeds(runs)}


def evaluate(args) -> dict:
    from components.common.cpus import usable_cpus
    from components.s2_patch_classifier.data import find_tiles
    from components.s2_patch_classifier.train import resolve_device

    t_start = time.perf_counter()
    device = resolve_device(args.device)
    tiles = {t.name: t for t in find_tiles(args.root)}
    held_out = names(args.ports) or sorted(tiles)
    fixed_train = names(args.train_ports)
    unknown = [p for p in held_out + fixed_train if p not in tiles]
    if unknown:
        fail(f"unknown port(s) {unknown}; ports: {sorted(tiles)}")
    validation = [p for p in names(args.validation_ports) if p in tiles]
    jobs = args.jobs or (1 if device.type == "cuda" else max(1, min(usable_cpus(), len(held_out))))
    threads = max(1, usable_cpus() // jobs)
    out = {"data": str(args.root), "device": str(device), "validation_ports": validation,
           "settings": {k: v for k, v in vars(args).items() if k not in ("root", "verbose")},
           "service_flags": service_flags(args)}
    if args.save_dir:  # so that a re-scoring of the saved networks knows their run
        Path(args.save_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.save_dir) / SETTINGS_FILE).write_text(json.dumps(out["settings"], indent=2))
    encoder = None  # (weights, normalisation statistics) of the pre-trained encoder
    if args.pretrain_epochs:
        encoder, out["pretrain"] = _pretrain(args, list(tiles.values()), device)
    folds = [(port, [n for n in (fixed_train or sorted(tiles)) if n != port]) for port in held_out]
    work = [(args, port, train, encoder, threads) for port, train in folds]
    with run_onnx_cache():
        if jobs == 1:
            results = [_fold(*w) for w in work]
        else:
            with ProcessPoolExecutor(jobs) as pool:
                results = list(pool.map(_fold, *zip(*work)))
    out["ports"] = {r["port"]: r for r in results}
    out["summary"] = {
        "report_ports": summarise([r for r in results if r["port"] not in validation]),
        "validation_ports": summarise([r for r in results if r["port"] in validation]),
        "all_ports": summarise(results)}
    out["seconds_total"] = round(time.perf_counter() - t_start, 1)
    return out


@contextlib.contextmanager
def run_onnx_cache():
    """The ONNX exports that the service's engine makes of a run's networks go to a temporary
    folder unless ``S2PC_ONNX_CACHE`` names one: each network is opened once, so a lasting cache
    would only fill up."""
    from components.s2_patch_classifier.onnx_export import CACHE_ENV

    if os.environ.get(CACHE_ENV):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="ships-onnx-") as folder:
        os.environ[CACHE_ENV] = folder  # the fold workers inherit it
        try:
            yield
        finally:
            del os.environ[CACHE_ENV]


def names(text: str) -> list[str]:
    """The comma-separated names of ``text`` (ports, indices), blanks dropped."""
    return [p.strip() for p in text.split(",") if p.strip()]


def summarise(results: list[dict]) -> dict | None:
    from components.s2_patch_classifier.metrics import object_summary

    if not results:
        return None
    f1 = {r["port"]: r["object_f1"] for r in results}
    worst = min(f1, key=f1.get)
    return {"ports": sorted(f1), "mean_object_f1": round(sum(f1.values()) / len(f1), 4),
            "worst_port": worst, "worst_object_f1": f1[worst],
            "pooled": object_summary([r["counts"] for r in results])}


def _pretrain(args, tiles, device) -> tuple[tuple[dict, dict], dict]:
    from components.s2_patch_classifier import patches as patchmod
    from components.s2_patch_classifier.pretrain import pretrain

    with tempfile.TemporaryDirectory(prefix="sen2ships-") as work:
        unl = patchmod.extract(tiles, Path(work) / "unlabelled", BANDS, args.patch_size, (1,), False,
                               labelled=False, seed=args.seed, dark_object=args.dark_object)
        t0 = time.perf_counter()
        encoder, history = pretrain(unl.images, unl.stats, encoder=args.encoder, width=args.width,
                                    epochs=args.pretrain_epochs, batch_size=args.batch_size, lr=args.lr,
                                    device=device, seed=args.seed, max_seconds=args.budget_s or None)
    return (encoder.state_dict(), unl.stats), {"method": "MoCo v2", "patches": len(unl), "epochs_run": len(history),
                                  "first_loss": history[0]["loss"], "last_loss": history[-1]["loss"],
                                  "seconds": round(time.perf_counter() - t0, 1)}


def size_prior(train_tiles) -> int:
    """The smallest component kept: half the smallest training ship (a prior from the training
    labels, never from the held-out port)."""
    import numpy as np

    sizes = np.concatenate([np.bincount(t.read_instances().ravel())[1:] for t in train_tiles])
    return max(1, int(sizes[sizes > 0].min()) // 2)


def drop_specks(pred, min_pixels: int):
    """``pred`` without its components (8-connectivity) below ``min_pixels``."""
    import numpy as np
    from scipy import ndimage

    if min_pixels <= 1:
        return pred
    lab, n = ndimage.label(pred, np.ones((3, 3), bool))
    sizes = ndimage.sum(pred, lab, range(1, n + 1))
    return np.isin(lab, 1 + np.flatnonzero(sizes >= min_pixels))


def _fold(args, port: str, train_ports: list[str], encoder, threads: int) -> dict:
    """Train on ``train_ports``, classify ``port``: its object counts, figures and timings."""
    import numpy as np
    import torch

    from components.common.logs import setup_logging
    from components.s2_patch_classifier import modelio, radiometry
    from components.s2_patch_classifier import patches as patchmod
    from components.s2_patch_classifier.data import find_tiles
    from components.s2_patch_classifier.metrics import object_summary, objects
    from components.s2_patch_classifier.model import Ensemble, networks
    from components.s2_patch_classifier.predict import FlipAveraged, open_predictor, predict_array
    from components.s2_patch_classifier.train import TrainConfig, resolve_device, train

    setup_logging(logging.INFO if args.verbose else logging.WARNING)  # a worker process starts bare
    torch.set_num_threads(threads)
    device = resolve_device(args.device)
    tiles = {t.name: t for t in find_tiles(args.root)}
    with tempfile.TemporaryDirectory(prefix="sen2ships-") as work:
        def cut(folder: str, stride: int):  # the training tiles' labelled patches every ``stride`` px
            return patchmod.extract([tiles[n] for n in train_ports], Path(work) / folder, BANDS, args.patch_size,
                                    (1,), False, labelled=True, seed=args.seed, dark_object=args.dark_object,
                                    stride=stride or None)

        ps = cut("train", args.patch_stride)
        rng = np.random.default_rng(args.seed)
        validation_tiles = tuple(str(p) for p in rng.permutation(sorted(train_ports))[:args.validate_on_ports])
        cfg = TrainConfig(criterion=args.criterion, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          data_aug=not args.no_aug, val_fraction=args.val_fraction, seed=args.seed, device=device.type,
                          encoder=args.encoder, width=args.width, pretrained_encoder=encoder and encoder[0],
                          stats=encoder and encoder[1], members=args.members,
                          mixed_windows=args.ensemble_windows == "mixed", gap_weight=args.gap_weight,
                          hard_negatives=args.hard_negatives, tile_balance=args.tile_balance, shift=args.shift,
                          shore_weight=args.shore_weight, shore_half=args.shore_half,
                          head_prior=args.head_prior, restarts=args.restarts,
                          focal_alpha=args.focal_alpha, max_seconds=args.budget_s or None,
                          indices=tuple(names(args.indices)), validation_tiles=validation_tiles,
                          split_per_member=args.split_per_member, ema=args.ema,
                          scale_jitter=args.scale_jitter)
        t0 = time.perf_counter()
        res = train(ps, cfg)
        model = res.model
        if args.mix_stride:  # networks that saw other windows of the same tiles: one ensemble of all
            other = train(cut("mix", args.mix_stride), dataclasses.replace(cfg, epochs=args.mix_epochs)).model
            model = Ensemble([*networks(model), *networks(other)])
        train_s = time.perf_counter() - t0
        meta = modelio.base_meta(model.arch, BANDS, [0, 1], args.patch_size, cfg.stats or ps.stats, False,
                                 len(networks(model)))
        if ps.index.get("dark_object"):
            meta["dark_object"] = ps.index["dark_object"]
            radiometry.correct(tiles[port], BANDS, meta["dark_object"])
        model_file = modelio.save_pytorch(Path(args.save_dir or work) / f"model_{port}.pt", model, meta)
        # the port is classified as the service classifies it: the engine its --engine auto opens
        predictor = open_predictor(model_file, device, threads=threads)
    min_pixels = args.min_pixels if args.min_pixels >= 0 else size_prior([tiles[n] for n in train_ports])
    if args.flips:
        predictor = FlipAveraged(predictor)
    t1 = time.perf_counter()
    pred = predict_array(tiles[port].read(BANDS), predictor, args.overlap, args.grow_threshold,
                         args.seed_threshold, args.split_depth) == 1
    counts = objects(drop_specks(pred, min_pixels), tiles[port].read_instances())  # one id per annotated ship
    return {"port": port, **object_summary([counts]), "counts": counts, "train_ports": train_ports,
            "train_patches": len(ps), "min_pixels": min_pixels,
            "validation_ship_iou": res.metrics["per_class"]["1"]["iou"], "validation_tiles": validation_tiles,
            "epochs_run": res.metrics["epochs_run"], "best_epoch": res.metrics["best_epoch"],
            "members": res.metrics.get("members"),
            "train_seconds": round(train_s, 1), "predict_seconds": round(time.perf_counter() - t1, 1),
            "engine": predictor.engine}


if __name__ == "__main__":
    sys.exit(main())
