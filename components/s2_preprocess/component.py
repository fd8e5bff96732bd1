"""The Kubeflow Pipelines component of S2-preprocess: a lightweight Python component on the
project's EO image (which carries kfp and this package, so nothing is installed at start).

Its parameters mirror ``S2PreprocessParams`` one to one (a test keeps them from drifting apart);
lists are comma-separated strings and an empty string means "not given". (No postponed
annotations here: KFP reads the real annotation objects.)
"""


from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components.images import EO_IMAGE


@dsl.component(base_image=EO_IMAGE, install_kfp_package=False)
def s2_preprocess(
    product: Output[Dataset],
    quicklook: Output[HTML],
    metrics: Output[Metrics],
    product_uri: str = "",
    input_product: Input[Dataset] = None,
    resolution: float = 10.0,
    bands: str = "B2,B3,B4,B8",
    landseamask: str = "None",
    landseamask_tolerance: float = 0.0,
    dem: str = "",
    cloudmask: str = "None",
    cloud_classes: str = "3,8,9,10",
    aoi: str = "",
    upsampling: str = "Nearest",
    downsampling: str = "First",
    flagdownsampling: str = "First",
    projection: str = "UTM(Auto)",
    output_format: str = "GeoTIFF",
    toa: bool = False,
):
    """Sentinel-2 pre-processing of one product (a URI, or a Dataset from an upstream step)."""
    from components.s2_preprocess.component import execute

    execute(product_uri, input_product.path if input_product else "", product, quicklook, metrics,
            dict(resolution=resolution, bands=bands, landseamask=landseamask,
                 landseamask_tolerance=landseamask_tolerance, dem=dem, cloudmask=cloudmask,
                 cloud_classes=cloud_classes, aoi=aoi, upsampling=upsampling, downsampling=downsampling,
                 flagdownsampling=flagdownsampling, projection=projection, output_format=output_format,
                 toa=toa))


def execute(product_uri: str, input_path: str, product, quicklook, metrics, values: dict) -> None:
    """Body of the component, importable and testable without KFP's executor."""
    import base64
    import io
    import sys
    from pathlib import Path

    from PIL import Image

    from components.common.errors import ServiceError
    from components.common.logs import setup_logging
    from components.s2_preprocess.params import S2PreprocessParams
    from components.s2_preprocess.service import run

    setup_logging()
    source = product_uri or input_path
    try:
        if not source:
            raise ServiceError("give product_uri or input_product")
        params = S2PreprocessParams.from_strings(values)
        result = run(source, params, product.path)
    except ServiceError as e:
        sys.stderr.write(f"S2-preprocess: error: {e.one_line()}\n")
        raise SystemExit(2) from None
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
