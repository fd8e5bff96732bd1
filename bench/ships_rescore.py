"""Re-score the networks that ``ships_eval.py --save-dir`` kept, without training again.

Each held-out port is classified by the networks of one or more saved runs together (every
``model_<port>.pt`` of the folders given, all their networks): a ship is seeded where the networks'
mean ship probability reaches ``--seed-threshold`` (``--seeds mean``: the ensemble of them all; 0:
passes 0.5), or only where every network's passes 0.5 (``--seeds all``), and grown over the
pixels whose mean reaches ``--grow-threshold`` and cut apart between seeds by ``--split-depth``
(all three default to the bench's); then
scored as ``ships_eval.py`` scores (components below half the smallest training ship dropped;
one-to-one matching). Each network reads the port as its own run corrected it (dark-object
levels). Each run's networks are averaged as the service averages them, through the engine its
``--engine auto`` opens (runs joined in proportion to their networks); ``--seeds all`` needs
each network's own map and runs them in PyTorch in that engine's precision. Prints one JSON
object with the same summary and the runs' ``--seed`` (from the ``settings.json`` each run keeps
beside its networks, so ``ships_seeds.py`` can name it); asserts nothing.

    python bench/ships_eval.py --ports cartagena,casablanca,honolulu,klang --save-dir runs/a
    python bench/ships_rescore.py runs/a runs/b          # the networks of both runs joined
    python bench/ships_rescore.py runs/a --seeds all     # a seed only where both networks agree
    python bench/ships_rescore.py runs/a --seed-threshold 0 --grow-threshold 0.25   # the argmax, grown at 0.25
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.ships_eval import (DEFAULT_ROOT, SETTINGS_FILE, VALIDATION, drop_specks, fail, names, parse_args,  # noqa: E402
                              run_onnx_cache, size_prior, summarise)
from bench.ships_eval import parser as harness_parser  # noqa: E402

SEED_RULES = ("mean", "all")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="folders of ships_eval.py --save-dir")
    ap.add_argument("--root", default=str(DEFAULT_ROOT), help="the s2-ships-sen2ships folder")
    ap.add_argument("--ports", default="", help="held-out ports to score (default: those with a model in every run)")
    ap.add_argument("--train-ports", default="", help="the runs' --train-ports (default: all the other ports)")
    ap.add_argument("--validation-ports", default=",".join(VALIDATION))
    ap.add_argument("--seeds", default="mean", choices=SEED_RULES)
    bench = harness_parser()  # the bench's thresholds, so that a run re-scored alone gives its figures
    ap.add_argument("--seed-threshold", type=float, default=bench.get_default("seed_threshold"),
                    help="with --seeds mean; 0: passes 0.5")
    ap.add_argument("--grow-threshold", type=float, default=bench.get_default("grow_threshold"))
    ap.add_argument("--split-depth", type=float, default=bench.get_default("split_depth"))
    ap.add_argument("--overlap", type=float, default=0.25)
    return ap


def main(argv=None) -> int:
    print(json.dumps(rescore(parse_args(argv, parser())), indent=2))
    return 0


def rescore(args) -> dict:
    from components.s2_patch_classifier.data import find_tiles

    runs = [Path(r) for r in args.runs]
    tiles = {t.name: t for t in find_tiles(args.root)}
    saved = [{p.stem.removeprefix("model_") for p in r.glob("model_*.pt")} for r in runs]
    ports = names(args.ports) or sorted(set.intersection(*saved) & set(tiles))
    missing = [f"{r}/model_{p}.pt" for r, have in zip(runs, saved) for p in ports if p not in have]
    if missing or not ports:
        fail(f"no saved model {', '.join(missing)}" if missing else f"no port has a model in every run of {args.runs}",
             parser())
    with run_onnx_cache():
        results = [_port(args, runs, tiles, port) for port in ports]
    validation = names(args.validation_ports)
    return {"runs": [str(r) for r in runs], "settings": {"seed": run_seeds(runs)}, "seeds": args.seeds,
            "ports": {r["port"]: r for r in results},
            "summary": {"report_ports": summarise([r for r in results if r["port"] not in validation]),
                        "validation_ports": summarise([r for r in results if r["port"] in validation]),
                        "all_ports": summarise(results)}}


def run_seeds(runs: list[Path]) -> int | list[int] | None:
    """The ``--seed`` of the run that saved the networks (a list for several runs), from the
    settings each run keeps beside them; None where a run kept none (runs before it did)."""
    seeds = []
    for run in runs:
        try:
            seeds.append(json.loads((run / SETTINGS_FILE).read_text())["seed"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return seeds[0] if len(seeds) == 1 else seeds


def ship_probabilities(model_file: Path, tile, overlap: float, per_network: bool = False) -> list:
    """Ship probability maps (H, W) of ``model_file`` over ``tile``, each with the number of
    networks it stands for: the ensemble's mean as the service predicts it (the engine its
    ``--engine auto`` opens), or with ``per_network`` each network's own, in PyTorch in the
    precision that engine takes."""
    import torch

    from components.s2_patch_classifier import modelio, radiometry
    from components.s2_patch_classifier.model import networks
    from components.s2_patch_classifier.predict import TorchPredictor, auto_precision, open_predictor, probability_array

    cpu = torch.device("cpu")
    if per_network:
        model, meta = modelio.load_pytorch(model_file)
    else:  # the file opened once, by the engine
        predictor = open_predictor(model_file, cpu)
        meta = predictor.meta
    bands = tuple(meta["bands"])
    tile.offsets = {}
    if meta.get("dark_object"):
        radiometry.correct(tile, bands, meta["dark_object"])
    image = tile.read(bands)
    if not per_network:
        return [(probability_array(image, predictor, overlap)[1], meta.get("members", 1))]
    precision = auto_precision(model, meta, cpu, model_file.name)
    return [(probability_array(image, TorchPredictor(net, meta, cpu, precision), overlap)[1], 1)
            for net in networks(model)]


def ships(mean, prob, seeds: str, grow_threshold: float, seed_threshold: float = 0.0, split_depth: float = 0.0):
    """Ship mask from the networks' mean ship probability (H, W): seeds by ``seeds`` (``all``:
    where each network's map of ``prob`` (N, H, W) passes 0.5; else the mean at ``seed_threshold``
    when > 0, or the argmax), grown by hysteresis over the pixels whose mean reaches
    ``grow_threshold``, cut apart between seeds by ``split_depth`` (:func:`hysteresis.grow`)."""
    import numpy as np

    from components.s2_patch_classifier import hysteresis

    if seeds == "all":
        seed = (prob > 0.5).all(0)
    else:  # the argmax of two classes, or the service's --seed_threshold
        seed = mean >= seed_threshold if seed_threshold > 0 else mean > 0.5
    levels = hysteresis.level(mean) if split_depth > 0 else None
    return hysteresis.grow(seed.astype(np.int16), (mean >= grow_threshold).astype(np.uint8), levels, split_depth) == 1


def _port(args, runs: list[Path], tiles: dict, port: str) -> dict:
    import numpy as np

    from components.s2_patch_classifier.metrics import object_summary, objects

    maps = [m for r in runs for m in ship_probabilities(r / f"model_{port}.pt", tiles[port], args.overlap,
                                                          per_network=args.seeds == "all")]
    prob, count = np.stack([p for p, _ in maps]), [n for _, n in maps]
    train = names(args.train_ports) or list(tiles)
    min_pixels = size_prior([tiles[name] for name in train if name != port])
    mean = np.average(prob, axis=0, weights=count).astype(np.float32)  # over every network of the runs
    mask = ships(mean, prob, args.seeds, args.grow_threshold, args.seed_threshold, args.split_depth)
    counts = objects(drop_specks(mask, min_pixels), tiles[port].read_instances())
    return {"port": port, **object_summary([counts]), "counts": counts, "networks": sum(count),
            "min_pixels": min_pixels}


if __name__ == "__main__":
    sys.exit(main())
