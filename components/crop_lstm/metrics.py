"""Classification figures: overall accuracy, Cohen's kappa, macro F1, confusion matrix."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, labels: list[int]) -> np.ndarray:
    """Counts [true label, predicted label] over ``labels`` (pairs with another label are ignored)."""
    index = {lab: i for i, lab in enumerate(labels)}
    t = np.array([index.get(int(v), -1) for v in y_true])
    p = np.array([index.get(int(v), -1) for v in y_pred])
    ok = (t >= 0) & (p >= 0)
    cm = np.zeros((len(labels), len(labels)), np.int64)
    np.add.at(cm, (t[ok], p[ok]), 1)
    return cm


def summary(y_true: np.ndarray, y_pred: np.ndarray, labels: list[int] | None = None) -> dict:
    """Overall accuracy, kappa and macro F1 (over the labels present in truth or predictions,
    as scikit-learn does), per-class F1 and the confusion matrix."""
    y_true, y_pred = np.asarray(y_true).astype(np.int64), np.asarray(y_pred).astype(np.int64)
    present = sorted(set(np.unique(y_true).tolist()) | set(np.unique(y_pred).tolist()))
    labels = sorted(set(labels or []) | set(present))
    cm = confusion_matrix(y_true, y_pred, labels)
    n = cm.sum()
    oa = float(np.trace(cm) / n) if n else 0.0
    expected = float((cm.sum(0) * cm.sum(1)).sum() / n ** 2) if n else 0.0
    kappa = (oa - expected) / (1 - expected) if expected < 1 else 1.0
    tp = np.diag(cm).astype(np.float64)
    precision = np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0)
    recall = np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    in_f1 = [labels.index(lab) for lab in present]
    return {"samples": int(n), "overall_accuracy": oa, "kappa": float(kappa),
            "macro_f1": float(f1[in_f1].mean()) if in_f1 else 0.0,
            "f1_per_class": {str(lab): float(f1[i]) for i, lab in enumerate(labels)},
            "labels": labels, "confusion_matrix": cm.tolist()}
