"""What runs inside the S1 pre-processing components' containers. Kept apart from
``component.py`` because KFP's executor exposes only the artifact types of ``kfp.dsl``, not the
decorators."""

from __future__ import annotations


def thumbnail_html(title: str, png: str, rows: dict) -> str:
    """A small HTML page: an embedded 256 px thumbnail and a table (the Kubeflow UI shows it)."""
    import base64
    import io

    from PIL import Image

    thumb = Image.open(png)
    thumb.thumbnail((256, 256))
    buf = io.BytesIO()
    thumb.save(buf, format="PNG")
    table = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows.items())
    return (f"<html><body><h3>{title}</h3><img src='data:image/png;base64,"
            f"{base64.b64encode(buf.getvalue()).decode()}'/><table>{table}</table></body></html>")


def execute(kind: str, product_uri: str, input_path: str, product, quicklook, metrics, values: dict) -> None:
    """Body of the components, importable and testable without KFP's executor."""
    from components.common.contract import guarded
    from components.common.logs import setup_logging

    setup_logging()
    with guarded(f"S1-{kind}-preprocess"):
        _execute(kind, product_uri, input_path, product, quicklook, metrics, values)


def _execute(kind: str, product_uri: str, input_path: str, product, quicklook, metrics, values: dict) -> None:
    from pathlib import Path

    from components.common.errors import ServiceError
    from components.s1_preprocess.params import S1GRDParams, S1SLCParams
    from components.s1_preprocess.service import run_grd, run_slc

    source = product_uri or input_path
    if not source:
        raise ServiceError("give product_uri or input_product")
    params = (S1GRDParams if kind == "GRD" else S1SLCParams).from_strings(values)
    result = (run_grd if kind == "GRD" else run_slc)(source, params, product.path)
    if not hasattr(result, "product"):  # --engine snap --graph_only: the graph is the output
        product.metadata.update({"graph": Path(result.graph).name})
        Path(quicklook.path).write_text(f"<html><body><p>SNAP graph {Path(result.graph).name}</p></body></html>")
        return
    product.metadata.update({"product": Path(result.product).name, "stac": Path(result.stac).name,
                             "quicklook": Path(result.quicklook).name,
                             **{k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str))}})
    metrics.log_metric("valid_percent", result.metrics["valid_percent"])
    Path(quicklook.path).write_text(thumbnail_html(Path(result.product).name, result.quicklook, result.metrics))
