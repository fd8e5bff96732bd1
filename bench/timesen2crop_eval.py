"""Train and evaluate the crop-type LSTM on the TimeSen2Crop archive with tile-out splits.

The seed's pre-trained model was trained on the real archive (Zenodo record 4715631, about 1 GB,
1.2 million labelled pixels in 15 tiles). This harness produces and scores ours the same way:

1. ``timesen2crop ROOT``: monthly arrays (September 2017 to August 2018), the validation and
   test tiles held out (default: 33TVN for validation, 33UVP for test);
2. ``train_lstm`` with ``--val`` on the held-out validation tile;
3. the model is applied to the test tile(s): overall accuracy, Cohen's kappa, macro F1, F1 per
   class and the confusion matrix, printed as one JSON object next to a peer figure (the LSTM of
   the BreizhCrops benchmark, overall accuracy 0.79).

    python bench/timesen2crop_eval.py /data/TimeSen2Crop                 # the real archive
    python bench/timesen2crop_eval.py /data/TimeSen2Crop --n-epochs 10 --keep out/

ROOT is the archive folder (or its .zip). Asserts nothing; on the GPU when one is present.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PEER = {"benchmark": "BreizhCrops (Russwurm et al. 2020), LSTM", "overall_accuracy": 0.79}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="TimeSen2Crop archive: folder (one folder per tile) or .zip")
    ap.add_argument("--val-tiles", default="33TVN", help="validation tiles (comma-separated)")
    ap.add_argument("--test-tiles", default="33UVP", help="test tiles (comma-separated)")
    ap.add_argument("--tiles", default="", help="training tiles (default: all the others)")
    ap.add_argument("--n-epochs", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--class-weights", type=int, default=0)
    ap.add_argument("--hidden-size", type=int, default=64)
    ap.add_argument("--num-layers", type=int, default=2)
    ap.add_argument("--non-clear", default="mask", choices=("mask", "drop", "keep"))
    ap.add_argument("--keep", help="keep the arrays and the model in this folder (default: a temporary one)")
    args = ap.parse_args(argv)

    from components.common.errors import ServiceError
    from components.common.logs import setup_logging
    from components.crop_lstm.h5io import load_model
    from components.crop_lstm.metrics import summary
    from components.crop_lstm.model import predict_logits
    from components.crop_lstm.params import TrainParams
    from components.crop_lstm.train_service import run as train
    from components.timesen2crop.legend import class_name
    from components.timesen2crop.params import TimeSen2CropParams
    from components.timesen2crop.service import run as load

    setup_logging()
    root = Path(args.root)
    if not root.exists():
        print(f"archive not found: {root} (download TimeSen2Crop from https://zenodo.org/records/4715631)",
              file=sys.stderr)
        return 2
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="ts2c-eval-")
    work = Path(args.keep or tmp.name)
    try:
        t0 = time.perf_counter()
        data = work / "arrays"
        load(str(root), TimeSen2CropParams.from_strings(
            {"tiles": args.tiles, "val_tiles": args.val_tiles, "test_tiles": args.test_tiles,
             "non_clear": args.non_clear}), str(data))
        t_load = time.perf_counter() - t0
        model_dir = work / "model"
        result = train(str(data), TrainParams.from_strings(
            {"n_epochs": args.n_epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
             "class_weights": args.class_weights, "hidden_size": args.hidden_size, "num_layers": args.num_layers,
             "val": str(data / "val")}), str(model_dir))
        t_train = time.perf_counter() - t0 - t_load
        model, info = load_model(Path(result.model))
        x = np.load(data / "test" / "test.npy")
        y = np.load(data / "test" / "y_test.npy")
        pred = np.asarray(info.class_ids)[predict_logits(model, x).argmax(1)]
        test = summary(y, pred, info.class_ids)
        device = json.loads(Path(result.metrics_file).read_text())["device"]
    except ServiceError as e:
        print(f"timesen2crop_eval: error: {e.one_line()}", file=sys.stderr)
        return 2
    finally:
        if tmp is not None:
            tmp.cleanup()
    report = {
        "archive": str(root), "train_tiles": args.tiles or "all others", "val_tiles": args.val_tiles,
        "test_tiles": args.test_tiles, "samples": {"test": int(len(y))},
        "validation": {k: result.metrics[k] for k in ("overall_accuracy", "kappa", "macro_f1", "samples")},
        "test": {"overall_accuracy": round(test["overall_accuracy"], 4), "kappa": round(test["kappa"], 4),
                 "macro_f1": round(test["macro_f1"], 4),
                 "f1_per_class": {f"{c} {class_name(int(c))}": round(v, 4) for c, v in test["f1_per_class"].items()},
                 "confusion_matrix": {"labels": test["labels"], "matrix": test["confusion_matrix"]}},
        "peer": PEER, "epochs": args.n_epochs, "device": device,
        "seconds": {"load": round(t_load, 1), "train": round(t_train, 1)},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
