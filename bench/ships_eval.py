"""Ship segmentation on real Sentinel-2 data (sen2ships), leave-ports-out.

Trains s2-patch-classifier's U-Net on some ports and classifies the held-out ports whole (the
service's sliding-window prediction), then scores ships:

- object level: a predicted connected component (8-connectivity) counts as a true positive
  when it overlaps an annotated ship; precision = matched components / predicted components,
  recall = ships overlapped by a prediction / ships, F1;
- pixel Dice of the ship class.

It prints one JSON object (figures, settings, timings) and asserts nothing. With
``--pretrain-epochs N`` it first pre-trains the encoder self-supervised (MoCo v2) on the
patches of *all* ports without their labels (the held-out ports' images are unlabelled data a
user would have too), then trains with and without that initialisation for the comparison.

    python bench/ships_eval.py ../shared/data/s2-ships-sen2ships                     # CPU, about 20 min
    python bench/ships_eval.py ROOT --device cuda --epochs 60 --budget-s 0           # a GPU machine
    python bench/ships_eval.py ROOT --test-ports casablanca --epochs 1 --budget-s 60 # a quick try

Data: ShipDetectionExperts/sen2ships (MIT); contains modified Copernicus Sentinel data 2022-2023.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_ROOT = Path(os.environ.get("EO_SAMPLE_DATA", REPO.parent / "shared" / "data")) / "s2-ships-sen2ships"
DEFAULT_TEST = ("casablanca", "honolulu", "klang")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", nargs="?", default=str(DEFAULT_ROOT), help="the s2-ships-sen2ships folder")
    ap.add_argument("--test-ports", default=",".join(DEFAULT_TEST), help="held-out ports (the others train)")
    ap.add_argument("--train-ports", default="", help="training ports (default: all but the held-out ones)")
    ap.add_argument("--encoder", default="resnet50", choices=("resnet50", "resnet26", "resnet14"))
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--patch-size", type=int, default=64, choices=(64, 256))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--criterion", default="focal_loss", choices=("focal_loss", "cross_entropy"))
    ap.add_argument("--no-aug", action="store_true", help="train without data augmentation")
    ap.add_argument("--pretrain-epochs", type=int, default=0, help="MoCo v2 epochs; 0: no pre-training")
    ap.add_argument("--budget-s", type=float, default=900.0,
                    help="training time budget per model in seconds (0: none); the epoch crossing it is the last")
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--min-pixels", type=int, default=-1,
                    help="predicted components smaller than this are dropped (-1: half the smallest ship "
                         "annotated in the training ports)")
    ap.add_argument("--pretrain-budget-s", type=float, default=0.0, help="pre-training time budget (0: --budget-s)")
    ap.add_argument("--save-dir", default="", help="keep the trained models (model_<variant>.pt) here")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores; 1 on a shared machine)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)

    from components.common.logs import setup_logging

    setup_logging(logging.INFO if args.verbose else logging.WARNING)
    result = evaluate(args)
    print(json.dumps(result, indent=2))
    return 0


def evaluate(args) -> dict:
    import numpy as np
    import torch

    from components.s2_patch_classifier import patches as patchmod
    from components.s2_patch_classifier.data import find_tiles
    from components.s2_patch_classifier.train import TrainConfig, resolve_device

    t_start = time.perf_counter()
    device = resolve_device(args.device)
    tiles = {t.name: t for t in find_tiles(args.root)}
    test = [p.strip() for p in args.test_ports.split(",") if p.strip()]
    unknown = [p for p in test if p not in tiles]
    if unknown:
        raise SystemExit(f"unknown port(s) {unknown}; ports: {sorted(tiles)}")
    train_ports = [p.strip() for p in args.train_ports.split(",") if p.strip()] or [n for n in tiles if n not in test]
    unknown = [p for p in train_ports if p not in tiles or p in test]
    if unknown:
        raise SystemExit(f"training port(s) {unknown} unknown or held out; ports: {sorted(tiles)}")
    bands = ("B2", "B3", "B4", "B8", "B11")
    torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    out = {"data": str(args.root), "train_ports": train_ports, "test_ports": test, "device": str(device),
           "settings": {k: v for k, v in vars(args).items() if k not in ("root", "verbose")}}
    with tempfile.TemporaryDirectory(prefix="sen2ships-") as work:
        work = Path(work)
        ps = patchmod.extract([tiles[n] for n in train_ports], work / "train", bands, args.patch_size, (1,),
                              False, labelled=True, seed=args.seed)
        out["train_patches"] = len(ps)
        out["train_ship_pixels"] = ps.index["class_pixels"][1]
        if args.min_pixels < 0:  # a prior from the training labels, never from the held-out ports
            sizes = np.concatenate([np.bincount(tiles[n].read_instances().ravel())[1:] for n in train_ports])
            args.min_pixels = max(1, int(sizes[sizes > 0].min()) // 2)
        out["min_pixels"] = args.min_pixels
        runs = {}
        encoder_state = None
        if args.pretrain_epochs:
            from components.s2_patch_classifier.pretrain import pretrain

            unl = patchmod.extract(list(tiles.values()), work / "unlabelled", bands, args.patch_size, (1,), False,
                                   labelled=False, seed=args.seed)
            t0 = time.perf_counter()
            encoder, history = pretrain(unl.images, ps.stats, encoder=args.encoder, width=args.width,
                                        epochs=args.pretrain_epochs, batch_size=args.batch_size, lr=args.lr,
                                        device=device, seed=args.seed,
                                        max_seconds=args.pretrain_budget_s or args.budget_s or None)
            encoder_state = encoder.state_dict()
            out["pretrain"] = {"method": "MoCo v2", "patches": len(unl), "epochs_run": len(history),
                               "first_loss": history[0]["loss"], "last_loss": history[-1]["loss"],
                               "seconds": round(time.perf_counter() - t0, 1)}
        variants = [("scratch", None)] + ([("pretrained", encoder_state)] if encoder_state is not None else [])
        for name, state in variants:
            cfg = TrainConfig(criterion=args.criterion, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              data_aug=not args.no_aug, val_fraction=0.1, seed=args.seed, device=device.type,
                              encoder=args.encoder, width=args.width, pretrained_encoder=state,
                              max_seconds=args.budget_s or None)
            runs[name] = _train_and_score(ps, cfg, [tiles[n] for n in test], bands, args, device, name)
        out["runs"] = runs
    out["seconds_total"] = round(time.perf_counter() - t_start, 1)
    return out


def _train_and_score(ps, cfg, test_tiles, bands, args, device, name) -> dict:
    import numpy as np
    from scipy import ndimage

    from components.s2_patch_classifier import modelio
    from components.s2_patch_classifier.metrics import object_summary, objects
    from components.s2_patch_classifier.model import Arch
    from components.s2_patch_classifier.predict import TorchPredictor, predict_array
    from components.s2_patch_classifier.train import train

    t0 = time.perf_counter()
    res = train(ps, cfg)
    train_s = time.perf_counter() - t0
    meta = modelio.base_meta(Arch(len(bands), 2, cfg.encoder, cfg.width), bands, [0, 1], args.patch_size,
                             cfg.stats or ps.stats, False)
    if args.save_dir:
        Path(args.save_dir).mkdir(parents=True, exist_ok=True)
        modelio.save_pytorch(Path(args.save_dir) / f"model_{name}.pt", res.model, meta)
    predictor = TorchPredictor(res.model, meta, device)
    per_port, counts = {}, []
    t1 = time.perf_counter()
    for tile in test_tiles:
        image = tile.read(bands)
        pred = predict_array(image, predictor, args.overlap) == 1
        if args.min_pixels > 1:
            lab, n = ndimage.label(pred, np.ones((3, 3), bool))
            sizes = ndimage.sum(pred, lab, range(1, n + 1))
            pred = np.isin(lab, 1 + np.flatnonzero(sizes >= args.min_pixels))
        truth = tile.read_instances()  # one id per annotated ship
        c = objects(pred, truth)
        counts.append(c)
        per_port[tile.name] = {**object_summary([c]), "found": c["found"]}
    summary = object_summary(counts)
    return {**summary, "per_port": per_port, "validation_ship_iou": res.metrics["per_class"]["1"]["iou"],
            "epochs_run": res.metrics["epochs_run"], "best_epoch": res.metrics["best_epoch"],
            "train_seconds": round(train_s, 1), "predict_seconds": round(time.perf_counter() - t1, 1),
            "engine": predictor.engine, "loss_history": [h["loss"] for h in res.history]}


if __name__ == "__main__":
    sys.exit(main())
