"""What runs inside the s2-patch-classifier components' containers. Kept apart from
``component.py`` because KFP's executor exposes only the artifact types of ``kfp.dsl``, not the
decorators."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

PROG = "s2-patch-classifier"


def execute(source: str, outdir: str, values: dict):
    """Run one action under the failure contract: a failure (SIGTERM and SIGINT included) ends
    the step with the service's one-line message and its exit status."""
    from components.common.contract import guarded
    from components.common.logs import setup_logging

    setup_logging()
    with guarded(PROG):
        from components.common.errors import ServiceError
        from components.s2_patch_classifier.params import S2PatchClassifierParams
        from components.s2_patch_classifier.service import run

        if not source:
            raise ServiceError("give the input as a URI or as an upstream artifact")
        params = S2PatchClassifierParams.from_strings(values)
        return run(source, params, outdir)


def log_scores(result, metrics, confusion, report) -> None:
    """Training scores to the Kubeflow UI: Metrics (IoU/F1 per class), the confusion matrix and
    an HTML table. Actions without training log what they have."""
    if not result.metrics:
        for key, value in result.scores.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.log_metric(key, value)
        Path(report.path).write_text(f"<html><body><p>{html.escape(result.action)}: "
                                     f"{html.escape(Path(result.product).name)}</p></body></html>")
        confusion.log_confusion_matrix(["none"], [[0]])
        return
    data = json.loads(Path(result.metrics).read_text())
    for key in ("mean_iou", "mean_foreground_iou", "accuracy"):
        if data.get(key) is not None:
            metrics.log_metric(key, data[key])
    for cls, sc in data["per_class"].items():
        for m in ("iou", "f1"):
            if sc[m] is not None:
                metrics.log_metric(f"{m}_class_{cls}", sc[m])
    metrics.log_metric("best_epoch", data["best_epoch"])
    names = [f"class {c}" if c else "background" for c in data["classes"]]
    confusion.log_confusion_matrix(names, data["confusion_matrix"])
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{_fmt(sc['iou'])}</td><td>{_fmt(sc['f1'])}</td>"
        f"<td>{_fmt(sc['precision'])}</td><td>{_fmt(sc['recall'])}</td><td>{sc['pixels']}</td></tr>"
        for n, sc in zip(names, data["per_class"].values()))
    losses = ", ".join(f"{h['loss']:.4f}" for h in data["history"] if not h.get("member"))
    members = data.get("members", [])
    ensemble = (f"; scores of an ensemble of {len(members)} networks (seeds "
                f"{', '.join(str(m['seed']) for m in members)}), epochs of the first" if members else "")
    Path(report.path).write_text(
        "<html><body><h3>s2-patch-classifier: training</h3>"
        f"<p>{html.escape(data['evaluated_on'])}: {data['validation_patches']} patches; best epoch "
        f"{data['best_epoch']} of {data['epochs_run']}; trained in {html.escape(data.get('precision', 'fp32'))}"
        f"{ensemble}</p>"
        "<table border='1'><tr><th>class</th><th>IoU</th><th>F1</th><th>precision</th><th>recall</th>"
        f"<th>pixels</th></tr>{rows}</table><p>loss per epoch{' (first network)' if members else ''}: {losses}</p>"
        "</body></html>")


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def log_pretrain(result, encoder_weights, metrics) -> None:
    history = json.loads((Path(result.product).parent / "pretrain_history.json").read_text())["history"]
    metrics.log_metric("infonce_first_epoch", history[0]["loss"])
    metrics.log_metric("infonce_last_epoch", history[-1]["loss"])
    metrics.log_metric("epochs", len(history))
    encoder_weights.metadata.update({"method": "MoCo v2", "file": Path(result.product).name})


def predict_report(result, classes, quicklook) -> None:
    """A small HTML page: each class map's quicklook as an embedded thumbnail and its class counts."""
    from PIL import Image

    parts = []
    for tif in result.predictions:
        tif = Path(tif)
        png = tif.with_name(tif.stem + "_quicklook.png")
        item = json.loads(tif.with_suffix(".json").read_text())
        thumb = Image.open(png)
        thumb.thumbnail((256, 256))
        buf = io.BytesIO()
        thumb.save(buf, format="PNG")
        legend = item["assets"]["data"].get("classification:classes", [])
        counts = ", ".join(f"{c.get('title') or c['name']}: {c['count']}" for c in legend if "count" in c)
        parts.append(f"<h4>{html.escape(tif.name)}</h4><img src='data:image/png;base64,"
                     f"{base64.b64encode(buf.getvalue()).decode()}'/><p>pixels per class: {html.escape(counts)}</p>")
    classes.metadata.update({"products": [Path(p).name for p in result.predictions],
                             "engine": result.scores.get("engine", "")})
    Path(quicklook.path).write_text("<html><body>" + "".join(parts) + "</body></html>")
