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
    min_valid_percent: float = 0.0,
):
    """Sentinel-2 pre-processing of one product (a URI, or a Dataset from an upstream step)."""
    from components.s2_preprocess.kfp_runtime import execute

    execute(product_uri, input_product.path if input_product else "", product, quicklook, metrics,
            dict(resolution=resolution, bands=bands, landseamask=landseamask,
                 landseamask_tolerance=landseamask_tolerance, dem=dem, cloudmask=cloudmask,
                 cloud_classes=cloud_classes, aoi=aoi, upsampling=upsampling, downsampling=downsampling,
                 flagdownsampling=flagdownsampling, projection=projection, output_format=output_format,
                 toa=toa, min_valid_percent=min_valid_percent))
