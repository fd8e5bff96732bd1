"""Cross-validate train_lstm on real crop parcels (WorldCrops Bavaria) beside a random forest.

The WorldCrops table (301 parcels x 14 half-monthly dates of 2018, 34 crop codes) goes through
the adapter ``components.crop_lstm.worldcrops`` (the service's nine bands, monthly composites by
monthlycomposite's rule, rare codes merged or dropped), then k-fold cross-validation by parcel
(stratified by class): each fold trains ``train_lstm`` (its own service function, with the held-out
fold as ``--val``) and a scikit-learn random forest on the same features, and both predict the
held-out parcels. Printed: pooled overall accuracy, kappa and macro F1 of both, the per-fold
spread, the share of the largest class, per-class support and F1, the confusion matrices and the
classes most often confused.

    python bench/crop_real.py                                  # ../shared/data table, 5 folds
    python bench/crop_real.py TABLE.xlsx --rare drop --n-epochs 100 --repeats 3

Asserts nothing. Trains on the CPU unless --device says otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TABLE = REPO.parent / "shared" / "data" / "crop-parcels-worldcrops-bavaria" / "Test_bavaria.xlsx"


def _save_pair(folder: Path, name: str, x: np.ndarray, y: np.ndarray) -> None:
    folder.mkdir(parents=True)
    np.save(folder / f"{name}.npy", x)
    np.save(folder / f"y_{name}.npy", y)


def cross_validate(data: Path, work: Path, args) -> dict:
    from sklearn.ensemble import RandomForestClassifier

    from components.crop_lstm.h5io import load_model
    from components.crop_lstm.model import predict_logits
    from components.crop_lstm.params import TrainParams
    from components.crop_lstm.train_service import run as train
    from components.crop_lstm.worldcrops import parcel_folds

    x = np.load(data / "train.npy")
    y = np.load(data / "y_train.npy")
    parcels = np.load(data / "parcels.npy")
    runs = []
    for repeat in range(args.repeats):
        seed = args.seed + repeat
        fold = parcel_folds(parcels, y, args.folds, seed)
        lstm = np.full(len(y), -1, np.int64)
        forest = np.full(len(y), -1, np.int64)
        seconds = {"lstm": 0.0, "rf": 0.0}
        final_loss = []
        for k in range(args.folds):
            test = fold == k
            if set(parcels[test].tolist()) & set(parcels[~test].tolist()):
                raise RuntimeError(f"fold {k}: a parcel is on both sides")
            fdir = work / f"r{repeat}f{k}"
            _save_pair(fdir / "train", "train", x[~test], y[~test])
            shutil.copy(data / "dataset.json", fdir / "train" / "dataset.json")  # band, month and class names
            _save_pair(fdir / "val", "val", x[test], y[test])
            t0 = time.perf_counter()
            result = train(str(fdir / "train"), TrainParams.from_strings(
                {"n_epochs": args.n_epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                 "class_weights": args.class_weights, "hidden_size": args.hidden_size,
                 "num_layers": args.num_layers, "seed": seed, "device": args.device, "val": str(fdir / "val")}),
                str(fdir / "model"))
            model, info = load_model(Path(result.model))
            lstm[test] = np.asarray(info.class_ids)[predict_logits(model, x[test]).argmax(1)]
            t1 = time.perf_counter()
            rf = RandomForestClassifier(n_estimators=args.trees, random_state=seed, n_jobs=1)
            rf.fit(x[~test].reshape(int((~test).sum()), -1), y[~test])
            forest[test] = rf.predict(x[test].reshape(int(test.sum()), -1))
            final_loss.append(result.metrics["final_loss"])
            seconds["lstm"] += t1 - t0
            seconds["rf"] += time.perf_counter() - t1
            shutil.rmtree(fdir)
        runs.append({"seed": seed, "fold": fold, "lstm": lstm, "rf": forest, "seconds": seconds,
                     "final_loss": final_loss})
    return {"x": x, "y": y, "runs": runs}


def _confused(cm: np.ndarray, names: list[str], top: int = 5) -> list[str]:
    off = [(int(cm[i, j]), i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j]]
    return [f"{names[i]} -> {names[j]}: {n}" for n, i, j in sorted(off, reverse=True)[:top]]


def report(cv: dict, dataset: dict, args) -> dict:
    from components.crop_lstm.metrics import summary

    y = cv["y"]
    labels = sorted(int(c) for c in dataset["classes"])
    names = [dataset["classes"][str(c)] for c in labels]
    support = np.bincount(y, minlength=len(labels))
    out = {"table": str(args.table), "parcels": int(len(y)), "classes": len(labels),
           "rare": dataset["rare"], "folds": args.folds, "repeats": args.repeats,
           "features": f"{cv['x'].shape[1]} months x {cv['x'].shape[2]} bands ({', '.join(dataset['bands'])})",
           "largest_class_share": round(float(support.max() / support.sum()), 4),
           "lstm_settings": {k: getattr(args, k) for k in ("n_epochs", "batch_size", "learning_rate", "class_weights",
                                                            "hidden_size", "num_layers", "device")},
           "rf_settings": {"n_estimators": args.trees}}
    per_class = {n: {"codes": dataset["class_codes"][str(c)], "parcels": int(support[i])}
                 for i, (c, n) in enumerate(zip(labels, names))}
    for method in ("lstm", "rf"):
        pooled, folds = [], []
        for r in cv["runs"]:
            s = summary(y, r[method], labels)
            pooled.append(s)
            folds += [summary(y[r["fold"] == k], r[method][r["fold"] == k], labels)["overall_accuracy"]
                      for k in range(args.folds)]
        first = pooled[0]
        out[method] = {
            "overall_accuracy": round(float(np.mean([s["overall_accuracy"] for s in pooled])), 4),
            "macro_f1": round(float(np.mean([s["macro_f1"] for s in pooled])), 4),
            "kappa": round(float(np.mean([s["kappa"] for s in pooled])), 4),
            "fold_accuracy_mean_sd": [round(float(np.mean(folds)), 4), round(float(np.std(folds, ddof=1)), 4)],
            "seconds": round(sum(r["seconds"][method] for r in cv["runs"]), 1),
            "confusion_matrix (first repeat; rows true, columns predicted)": {
                "labels": names, "matrix": first["confusion_matrix"]},
            "most_confused (first repeat)": _confused(np.asarray(first["confusion_matrix"]), names),
        }
        if method == "lstm":
            out[method]["final_training_loss_mean"] = round(float(np.mean([v for r in cv["runs"]
                                                                            for v in r["final_loss"]])), 4)
        if args.repeats > 1:
            out[method]["overall_accuracy_per_repeat"] = [round(s["overall_accuracy"], 4) for s in pooled]
            out[method]["macro_f1_per_repeat"] = [round(s["macro_f1"], 4) for s in pooled]
        for i, n in enumerate(names):
            f1 = np.mean([s["f1_per_class"][str(labels[i])] for s in pooled])
            per_class[n][f"{method}_f1"] = round(float(f1), 3)
    out["per_class"] = per_class
    # paired by fold: both methods saw the same training and held-out parcels
    diff = [summary(y[r["fold"] == k], r["lstm"][r["fold"] == k], labels)["overall_accuracy"]
            - summary(y[r["fold"] == k], r["rf"][r["fold"] == k], labels)["overall_accuracy"]
            for r in cv["runs"] for k in range(args.folds)]
    out["lstm_minus_rf_fold_accuracy"] = {"mean": round(float(np.mean(diff)), 4),
                                          "sd": round(float(np.std(diff, ddof=1)), 4),
                                          "folds_lstm_better": int(np.sum(np.asarray(diff) > 0)),
                                          "folds_rf_better": int(np.sum(np.asarray(diff) < 0)), "folds": len(diff)}
    return out


def text(out: dict) -> str:
    """The figures as a short plain-text report."""
    rare = out["rare"]
    rule = (f"{len(rare['merged_codes'])} codes with < {rare['min_parcels']} parcels merged into 'other'"
            if rare["merged_codes"] else
            f"{len(rare['dropped_codes'])} codes with < {rare['min_parcels']} parcels dropped "
            f"({rare['dropped_parcels']} parcels)")
    lines = [f"{out['parcels']} parcels, {out['classes']} classes ({rule}); {out['folds']}-fold CV by parcel, "
             f"{out['repeats']} repeat(s); features {out['features']}",
             f"LSTM {json.dumps(out['lstm_settings'])}; RF {json.dumps(out['rf_settings'])}",
             f"largest class share {out['largest_class_share']:.3f}", "",
             f"{'':14}{'accuracy':>9}{'macro F1':>9}{'kappa':>7}  fold accuracy mean +- sd"]
    for method, label in (("lstm", "train_lstm"), ("rf", "random forest")):
        m = out[method]
        lines.append(f"{label:14}{m['overall_accuracy']:9.3f}{m['macro_f1']:9.3f}{m['kappa']:7.3f}  "
                     f"{m['fold_accuracy_mean_sd'][0]:.3f} +- {m['fold_accuracy_mean_sd'][1]:.3f}")
    d = out["lstm_minus_rf_fold_accuracy"]
    lines.append(f"LSTM - RF accuracy per fold: {d['mean']:+.3f} +- {d['sd']:.3f}; LSTM better in "
                 f"{d['folds_lstm_better']}, RF in {d['folds_rf_better']} of {d['folds']} folds")
    if out["repeats"] > 1:
        for method, label in (("lstm", "train_lstm"), ("rf", "random forest")):
            lines.append(f"{label} per repeat: accuracy {out[method]['overall_accuracy_per_repeat']}, "
                         f"macro F1 {out[method]['macro_f1_per_repeat']}")
    lines.append(f"LSTM mean final training loss {out['lstm']['final_training_loss_mean']:.3f}")
    lines += ["", f"{'class':8}{'parcels':>8}{'LSTM F1':>9}{'RF F1':>7}  codes"]
    for name, c in out["per_class"].items():
        lines.append(f"{name:8}{c['parcels']:8d}{c['lstm_f1']:9.2f}{c['rf_f1']:7.2f}  "
                     f"{','.join(map(str, c['codes']))}")
    for method, label in (("lstm", "train_lstm"), ("rf", "random forest")):
        cm = out[method]["confusion_matrix (first repeat; rows true, columns predicted)"]
        names = [n.replace("NC ", "") for n in cm["labels"]]
        lines += ["", f"confusion matrix, {label} (rows true, columns predicted; first repeat)",
                  " " * 6 + "".join(f"{n:>6}" for n in names)]
        lines += [f"{n:>6}" + "".join(f"{v:6d}" for v in row) for n, row in zip(names, cm["matrix"])]
        lines.append("most confused: " + "; ".join(out[method]["most_confused (first repeat)"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table", nargs="?", default=str(TABLE), help="WorldCrops table (.xlsx)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1, help="cross-validations with other fold and training seeds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-parcels", type=int, default=5)
    ap.add_argument("--rare", default="merge", choices=("merge", "drop"))
    ap.add_argument("--n-epochs", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--class-weights", type=int, default=0)
    ap.add_argument("--hidden-size", type=int, default=64)
    ap.add_argument("--num-layers", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--trees", type=int, default=500, help="random forest size")
    ap.add_argument("--json", action="store_true", help="print every figure as one JSON object")
    args = ap.parse_args(argv)

    from components.common.errors import ServiceError
    from components.common.logs import setup_logging
    from components.crop_lstm.worldcrops import WorldCropsParams
    from components.crop_lstm.worldcrops import run as adapt

    setup_logging(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="crop-real-") as tmp:
        work = Path(tmp)
        try:
            adapt(args.table, WorldCropsParams.from_strings({"min_parcels": args.min_parcels, "rare": args.rare}),
                  str(work / "arrays"))
            if args.folds < 2:
                raise ServiceError(f"--folds {args.folds}: at least 2 are needed")
            cv = cross_validate(work / "arrays", work, args)
        except ServiceError as e:
            print(f"crop_real: error: {e.one_line()}", file=sys.stderr)
            return 2
        dataset = json.loads((work / "arrays" / "dataset.json").read_text())
    out = report(cv, dataset, args)
    print(json.dumps(out, indent=1) if args.json else text(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
