"""The Kubeflow Pipelines components of S2-CD: lightweight Python components on the project's EO
image (which carries kfp and this package, so nothing is installed at start).

``s2_change_detection`` mirrors ``S2ChangeParams`` one to one (a test keeps them from drifting
apart); lists are comma-separated strings and an empty string means "not given". Each input is a
URI (``input1_uri``) or a Dataset from an upstream step (``input1``, e.g. the output folder of the
S2-preprocess component). ``check_pair`` refuses a pair whose names show two different tiles
before anything is downloaded or pre-processed. (No postponed annotations here: KFP reads the
real annotation objects.)
"""


from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from components.images import EO_IMAGE


@dsl.component(base_image=EO_IMAGE, install_kfp_package=False)
def check_pair(product1: str, product2: str) -> str:
    """Refuse two products whose names carry different Sentinel-2 tiles; returns the tile."""
    from components.s2_change_detection.kfp_runtime import check_names

    return check_names(product1, product2)


@dsl.component(base_image=EO_IMAGE, install_kfp_package=False)
def s2_change_detection(
    change: Output[Dataset],
    quicklook: Output[HTML],
    report: Output[Markdown],
    metrics: Output[Metrics],
    input1_uri: str = "",
    input2_uri: str = "",
    input1: Input[Dataset] = None,
    input2: Input[Dataset] = None,
    resolution: float = 10.0,
    bands: str = "B2,B3,B4,B8",
    aoi: str = "",
    projection: str = "UTM(Auto)",
    numberClasses: int = 4,
    referenceVector: str = "",
    levelConfidence: float = 99.99,
    output_format: str = "GeoTIFF",
    filter_size: int = 3,
    min_area: int = 4,
    noise_model: str = "Covariance",
    normalisation: str = "Regression",
    cloud_classes: str = "3,8,9,10",
):
    """Sentinel-2 change detection (CVA) between two acquisitions of one tile."""
    from components.s2_change_detection.kfp_runtime import execute

    execute(input1_uri or (input1.path if input1 else ""), input2_uri or (input2.path if input2 else ""),
            change, quicklook, report, metrics,
            dict(resolution=resolution, bands=bands, aoi=aoi, projection=projection, numberClasses=numberClasses,
                 referenceVector=referenceVector, levelConfidence=levelConfidence, output_format=output_format,
                 filter_size=filter_size, min_area=min_area, noise_model=noise_model,
                 normalisation=normalisation, cloud_classes=cloud_classes))
