"""What runs inside the osm-features components' containers. Kept apart from ``component.py``
because KFP's executor exposes only the artifact types of ``kfp.dsl``, not the decorators."""

from __future__ import annotations

SERVICE = "osm-features"


def execute(input_uri: str, input_path: str, product, quicklook, metrics, values: dict) -> None:
    """Body of the extraction component, importable and testable without KFP's executor."""
    from components.common.contract import guarded
    from components.common.logs import setup_logging

    setup_logging()
    with guarded(SERVICE):
        _execute(input_uri, input_path, product, quicklook, metrics, values)


def _execute(input_uri: str, input_path: str, product, quicklook, metrics, values: dict) -> None:
    import base64
    import html
    from pathlib import Path

    from components.common.errors import ServiceError
    from components.osm_features.params import OsmFeaturesParams
    from components.osm_features.service import run

    source = input_uri or input_path
    if not source:
        raise ServiceError("give input_uri or input_pbf")
    params = OsmFeaturesParams.from_strings(values)
    result = run(source, params, product.path)
    total = sum(result.counts.values())
    product.metadata.update({"product": Path(result.product).name, "stac": Path(result.stac).name,
                             "quicklook": Path(result.quicklook).name, "features": total})
    metrics.log_metric("features", total)
    for name, count in result.counts.items():
        if count:
            metrics.log_metric(f"features_{name}", count)
    png = _thumbnail(Path(result.quicklook))
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in result.counts.items() if v)
    Path(quicklook.path).write_text(
        f"<html><body><h3>{html.escape(Path(result.product).name)}: {total} features</h3>"
        f"<img src='data:image/png;base64,{base64.b64encode(png).decode()}'/>"
        f"<table>{rows}</table><p>© OpenStreetMap contributors, ODbL 1.0</p></body></html>")


def _thumbnail(path, size: int = 384) -> bytes:
    import io

    from PIL import Image

    img = Image.open(path)
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def store(product_path: str, destination: str) -> str:
    """Body of the store component."""
    import logging
    from pathlib import Path

    from components.common import storage
    from components.common.contract import guarded
    from components.common.logs import setup_logging

    setup_logging()
    if not destination.strip():
        logging.getLogger(__name__).info("no destination: the product stays in the artifact store")
        return ""
    with guarded(f"{SERVICE} store"):
        storage.check_writable(destination)
        written = storage.publish(Path(product_path), destination.strip())
    return "\n".join(written)
