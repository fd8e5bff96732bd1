"""What runs inside the S2-CD components' containers. Kept apart from ``component.py`` because
KFP's executor exposes only the artifact types of ``kfp.dsl``, not the decorators."""

from __future__ import annotations

SERVICE = "S2-CD"


def check_names(product1: str, product2: str) -> str:
    """The tile both product names carry; exit 2 when they name different tiles."""
    from components.common.contract import guarded
    from components.common.logs import setup_logging
    from components.s2_change_detection.inputs import check_tile_names

    setup_logging()
    with guarded(SERVICE):
        return check_tile_names(product1, product2)


def _thumbnail(path: str, size: int = 256) -> str:
    import base64
    import io

    from PIL import Image

    image = Image.open(path)
    image.thumbnail((size, size), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def execute(input1: str, input2: str, change, quicklook, report, metrics, values: dict) -> None:
    """Body of the change-detection component, importable and testable without KFP's executor."""
    from components.common.contract import guarded
    from components.common.logs import setup_logging

    setup_logging()
    with guarded(SERVICE):
        _execute(input1, input2, change, quicklook, report, metrics, values)


def _execute(input1: str, input2: str, change, quicklook, report, metrics, values: dict) -> None:
    import html
    from pathlib import Path

    from components.common.errors import ServiceError
    from components.s2_change_detection.params import S2ChangeParams
    from components.s2_change_detection.rendering import class_colour
    from components.s2_change_detection.service import run

    if not input1 or not input2:
        raise ServiceError("give input1_uri or input1, and input2_uri or input2")
    params = S2ChangeParams.from_strings(values)
    result = run(input1, input2, params, change.path)
    change.metadata.update({"product": Path(result.product).name, "cva": Path(result.cva).name,
                            "stac": Path(result.stac).name, "report": Path(result.report).name,
                            **result.metrics})
    for key in ("valid_percent", "changed_percent", "changed_pixels", "change_classes"):
        metrics.log_metric(key, result.metrics[key])
    for c in result.classes:
        metrics.log_metric(f"class_{c['class']}_pixels", c["pixels"])
    Path(report.path).write_text(Path(result.report).with_suffix(".md").read_text())
    rows = "".join(
        f"<tr><td style='background:rgb{class_colour(c['class'])[:3]}'>&nbsp;&nbsp;</td><td>{c['class']}</td>"
        f"<td>{c['pixels']}</td><td>{c['mean_magnitude']}</td><td>{c['mean_angle_deg']}</td></tr>"
        for c in result.classes)
    Path(quicklook.path).write_text(
        f"<html><body><h3>{html.escape(Path(result.product).name)}</h3>"
        f"<img title='change classes' src='data:image/png;base64,{_thumbnail(result.quicklook)}'/> "
        f"<img title='CVA magnitude' src='data:image/png;base64,{_thumbnail(result.cva_quicklook)}'/>"
        f"<p>changed: {result.metrics['changed_percent']} % of the valid pixels "
        f"({result.metrics['valid_percent']} % valid)</p>"
        f"<table><tr><th></th><th>class</th><th>pixels</th><th>mean magnitude</th><th>mean angle</th></tr>"
        f"{rows}</table></body></html>")
