"""What runs inside the S2-preprocess component's container. Kept apart from ``component.py``
because KFP's executor exposes only the artifact types of ``kfp.dsl``, not the decorators."""

from __future__ import annotations


def execute(product_uri: str, input_path: str, product, quicklook, metrics, values: dict) -> None:
    """Body of the component, importable and testable without KFP's executor."""
    from components.common.contract import guarded
    from components.common.logs import setup_logging

    setup_logging()
    with guarded("S2-preprocess"):
        _execute(product_uri, input_path, product, quicklook, metrics, values)


def _execute(product_uri: str, input_path: str, product, quicklook, metrics, values: dict) -> None:
    import base64
    import io
    from pathlib import Path

    from PIL import Image

    from components.common.errors import ServiceError
    from components.s2_preprocess.params import S2PreprocessParams
    from components.s2_preprocess.service import run

    source = product_uri or input_path
    if not source:
        raise ServiceError("give product_uri or input_product")
    params = S2PreprocessParams.from_strings(values)
    result = run(source, params, product.path)
    product.metadata.update({"product": Path(result.product).name, "stac": Path(result.stac).name,
                             "quicklook": Path(result.quicklook).name, **result.metrics})
    for key in ("valid_percent", "cloud_percent"):
        metrics.log_metric(key, result.metrics[key])
    thumb = Image.open(result.quicklook)
    thumb.thumbnail((256, 256))
    buf = io.BytesIO()
    thumb.save(buf, format="PNG")
    rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in result.metrics.items())
    Path(quicklook.path).write_text(
        f"<html><body><h3>{Path(result.product).name}</h3>"
        f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'/>"
        f"<table>{rows}</table></body></html>")
