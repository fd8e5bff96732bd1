"""What runs inside the monthlycomposite component's container. Kept apart from
``component.py`` because KFP's executor exposes only the artifact types of ``kfp.dsl``."""

from __future__ import annotations


def html_page(title: str, png: str, rows: dict) -> str:
    """A small HTML page for the Kubeflow UI: a 256 px thumbnail and a table."""
    import base64
    import io

    from PIL import Image

    thumb = Image.open(png)
    thumb.thumbnail((256, 256))
    buf = io.BytesIO()
    thumb.save(buf, format="PNG")
    cells = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows.items())
    return (f"<html><body><h3>{title}</h3><img src='data:image/png;base64,"
            f"{base64.b64encode(buf.getvalue()).decode()}'/><table>{cells}</table></body></html>")


def execute(input_uri: str, input_path: str, composites, quicklook, metrics, values: dict) -> None:
    """Body of the component, importable and testable without KFP's executor."""
    from components.common.contract import guarded
    from components.common.logs import setup_logging

    setup_logging()
    with guarded("monthlycomposite"):
        _execute(input_uri, input_path, composites, quicklook, metrics, values)


def _execute(input_uri: str, input_path: str, composites, quicklook, metrics, values: dict) -> None:
    from pathlib import Path

    from components.common.errors import ServiceError
    from components.s2_harmonization.params import MonthlyCompositeParams
    from components.s2_harmonization.service import run

    source = input_uri or input_path
    if not source:
        raise ServiceError("give input_uri or input_data")
    params = MonthlyCompositeParams.from_strings(values)
    result = run(source, params, composites.path)
    composites.metadata.update({"composites": [Path(p).name for p in result.composites],
                                "stac": Path(result.stac).name, **result.metrics})
    for key, value in result.metrics.items():
        metrics.log_metric(key, value)
    Path(quicklook.path).write_text(html_page(Path(result.stac).stem, result.quicklook, result.metrics))
