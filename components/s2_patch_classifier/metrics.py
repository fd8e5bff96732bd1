"""Scores: pixel confusion matrix, IoU and F1 per class; object-level matching of connected
components (for small objects such as ships)."""

from __future__ import annotations

import numpy as np

from .data import IGNORE


def confusion(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """(truth, predicted) counts; pixels labelled IGNORE are left out."""
    keep = truth != IGNORE
    t = truth[keep].astype(np.int64)
    p = pred[keep].astype(np.int64)
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def scores(cm: np.ndarray, classes: list[int]) -> dict:
    """IoU, F1, precision, recall per class (keyed by label value), mean IoU, accuracy."""
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
    per_class = {str(c): {"iou": _num(iou[i]), "f1": _num(f1[i]), "precision": _num(precision[i]),
                          "recall": _num(recall[i]), "pixels": int(cm[i].sum())} for i, c in enumerate(classes)}
    fg = iou[1:][~np.isnan(iou[1:])] if len(classes) > 1 else np.array([])
    total = cm.sum()
    return {"per_class": per_class, "mean_iou": _num(np.nanmean(iou) if np.isfinite(iou).any() else np.nan),
            "mean_foreground_iou": _num(fg.mean() if fg.size else np.nan),
            "accuracy": _num(tp.sum() / total if total else np.nan),
            "confusion_matrix": cm.astype(np.int64).tolist(), "classes": [int(c) for c in classes]}


def _num(v) -> float | None:
    v = float(v)
    return None if np.isnan(v) else round(v, 6)


def objects(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Object-level counts for one foreground class. ``pred`` is a boolean mask whose connected
    components (8-connectivity) are the predicted objects; ``truth`` holds the true objects, as
    instance ids (int, 0 = none: one id per annotated ship, so ships moored side by side stay
    apart) or as a boolean mask (its connected components). Predicted and true objects are
    matched one to one (a pair must overlap; as many pairs as possible, then the most overlap):
    a component spread over three ships is one match, not three, so merging objects cannot raise
    the scores. ``merged`` counts the components that overlap more than one true object.
    Returns the counts and the pixel Dice."""
    from scipy import ndimage
    from scipy.optimize import linear_sum_assignment

    eight = np.ones((3, 3), bool)
    plab, n_pred = ndimage.label(pred, eight)
    tlab = ndimage.label(truth, eight)[0] if truth.dtype == bool else truth
    truth_ids = np.unique(tlab[tlab > 0])
    both = (plab > 0) & (tlab > 0)
    pairs, overlap = np.unique(np.stack([plab[both], tlab[both]]), axis=1, return_counts=True)
    matched = 0
    if pairs.size:
        p_ids, p_idx = np.unique(pairs[0], return_inverse=True)
        t_ids, t_idx = np.unique(pairs[1], return_inverse=True)
        gain = np.zeros((len(p_ids), len(t_ids)))
        gain[p_idx, t_idx] = 1.0 + overlap / (overlap.sum() + 1.0)  # a pair first, overlap breaks ties
        rows, cols = linear_sum_assignment(gain, maximize=True)
        matched = int((gain[rows, cols] > 0).sum())
    merged = int((np.bincount(pairs[0], minlength=n_pred + 1) > 1).sum()) if pairs.size else 0
    truth_mask = tlab > 0
    inter = int((pred & truth_mask).sum())
    total = int(pred.sum() + truth_mask.sum())
    return {"true_objects": int(len(truth_ids)), "predicted_objects": int(n_pred), "tp": matched,
            "fp": int(n_pred - matched), "fn": int(len(truth_ids) - matched), "merged": merged,
            "pixel_intersection": inter, "pixel_pred": int(pred.sum()), "pixel_truth": int(truth_mask.sum()),
            "dice": round(2 * inter / total, 6) if total else 1.0}


def object_summary(counts: list[dict]) -> dict:
    """Precision (matches / predicted components), recall (matches / true objects), F1 and
    pixel Dice summed over several scenes."""
    tp = sum(c["tp"] for c in counts)
    npred = sum(c["predicted_objects"] for c in counts)
    nt = sum(c["true_objects"] for c in counts)
    p = tp / npred if npred else 0.0
    r = tp / nt if nt else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    inter = sum(c["pixel_intersection"] for c in counts)
    denom = sum(c["pixel_pred"] + c["pixel_truth"] for c in counts)
    return {"object_precision": round(p, 4), "object_recall": round(r, 4), "object_f1": round(f1, 4),
            "pixel_dice": round(2 * inter / denom, 4) if denom else None, "true_objects": nt,
            "predicted_objects": npred}
