"""What runs inside the aqgan components' containers. Kept apart from ``component.py`` because
KFP's executor exposes only the artifact types of ``kfp.dsl``, not the decorators."""

from __future__ import annotations

import contextlib
from pathlib import Path


@contextlib.contextmanager
def _service(prog: str):
    """Logging set up and the failure contract around the step's whole body: a failure is one
    line on stderr and its exit status (2, 3, or 128 + signal for SIGTERM/SIGINT)."""
    from components.common.contract import guarded
    from components.common.logs import setup_logging

    setup_logging()
    with guarded(prog):
        yield


def _config(text: str):
    from components.aq_downscaling.config import load_config

    return load_config(text=text)


def preproc(config: str, dataset: str, start: str, end: str, tiles) -> None:
    with _service("aqgan-preproc"):
        from components.aq_downscaling.service import run_preproc

        result = run_preproc(_config(config), dataset or None, start, end, outdir=tiles.path)
        tiles.metadata.update({"product": Path(result.product).name, "tiles": result.metrics["tiles"],
                               "time_steps": result.metrics["time_steps"]})


def train(config: str, dataset: str, start: str, end: str, tiles, model, metrics, losses) -> None:
    with _service("aqgan-train"):
        _train(config, dataset, start, end, tiles, model, metrics, losses)


def _train(config: str, dataset: str, start: str, end: str, tiles, model, metrics, losses) -> None:
    from components.aq_downscaling.service import run_train

    result = run_train(_config(config), dataset or None, start, end, tiles=tiles.path, models_dir=model.path)
    final = result.metrics["final"]
    model.metadata.update({"product": "model.pt", "epochs": result.metrics["epochs"],
                           "device": result.metrics["device"]})
    for key in ("critic_loss", "wasserstein", "gradient_penalty", "generator_loss", "adversarial", "content"):
        metrics.log_metric(key, float(final[key]))
    metrics.log_metric("epochs", float(result.metrics["epochs"]))
    Path(losses.path).write_text(losses_html(result.files["history"]))


def generate(config: str, dataset: str, start: str, end: str, members: int, model, ensemble, quicklook) -> None:
    with _service("aqgan-generate"):
        _generate(config, dataset, start, end, members, model, ensemble, quicklook)


def _generate(config: str, dataset: str, start: str, end: str, members: int, model, ensemble, quicklook) -> None:
    import base64

    from components.aq_downscaling.evaluation import png_bytes
    from components.aq_downscaling.service import run_generate

    result = run_generate(_config(config), dataset or None, start, end, model_file=str(Path(model.path) / "model.pt"),
                          outdir=ensemble.path, members=members or None)
    ensemble.metadata.update({"product": Path(result.product).name, "members": result.metrics["members"],
                              "time_steps": result.metrics["time_steps"]})
    png = base64.b64encode(png_bytes(result.files["quicklook"])).decode()
    rows = "".join(f"<tr><td>{v}</td><td>{s['mean']:.3f}</td><td>{s['mean_std']:.3f}</td></tr>"
                   for v, s in result.metrics["variables"].items())
    Path(quicklook.path).write_text(
        f"<html><body><h3>{Path(result.product).name}</h3><p>first time step: ensemble mean | standard deviation | "
        f"members 0, 1</p><img src='data:image/png;base64,{png}'/><table border='1'><tr><th>variable</th>"
        f"<th>mean (ug m-3)</th><th>mean ensemble std (ug m-3)</th></tr>{rows}</table></body></html>")


def evaluate(config: str, dataset: str, ensemble, metrics, report) -> None:
    with _service("aqgan-evaluate"):
        from components.aq_downscaling.service import run_evaluate
        from components.common.outputs import work_folder

        with work_folder(None, "aqgan-evaluate-") as tmp:
            result = run_evaluate(_config(config), dataset or None, ensemble.path, str(tmp / "evaluation"))
            Path(report.path).write_text(Path(result.files["report"]).read_text())
        for key in ("crps", "bilinear_mae", "lanczos_mae", "crps_vs_bilinear_mae", "ensemble_mean_rmse",
                    "bilinear_rmse", "lanczos_rmse", "spread_skill", "rank_flatness"):
            metrics.log_metric(key, float(result.metrics[key]))


def losses_html(history: list[dict]) -> str:
    """Per-epoch losses as a small inline-SVG chart and a table."""
    keys = ("critic_loss", "wasserstein", "generator_loss", "content")
    colours = ("#3b528b", "#21918c", "#c00", "#e08000")
    width, height = 420, 200
    lines = []
    if len(history) > 1:
        for key, colour in zip(keys, colours):
            ys = [float(h[key]) for h in history]
            lo, hi = min(ys), max(ys)
            span = hi - lo or 1.0
            pts = " ".join(f"{30 + i / (len(ys) - 1) * (width - 40):.1f},{height - 20 - (y - lo) / span * (height - 40):.1f}"
                           for i, y in enumerate(ys))
            lines.append(f"<polyline points='{pts}' fill='none' stroke='{colour}'/>")
    legend = "".join(f"<text x='{30 + 100 * i}' y='12' font-size='11' fill='{c}'>{k}</text>"
                     for i, (k, c) in enumerate(zip(keys, colours)))
    rows = "".join("<tr>" + "".join(f"<td>{h[k]:.4g}</td>" if isinstance(h[k], float) else f"<td>{h[k]}</td>"
                                    for k in ("epoch",) + keys + ("seconds",)) + "</tr>" for h in history)
    header = "".join(f"<th>{k}</th>" for k in ("epoch",) + keys + ("seconds",))
    return (f"<html><body><h3>aqgan training losses (each curve scaled to its own range)</h3>"
            f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>{legend}{''.join(lines)}</svg>"
            f"<table border='1'><tr>{header}</tr>{rows}</table></body></html>")
