"""``s2_change``: change detection between two Sentinel-2 products of one tile.

check_pair (names only) -> S2-preprocess of both products in parallel (selected bands on the
tile grid, clouds masked, AoI) -> S2-CD on the two pre-processed stacks.
"""

from kfp import dsl

from components.s2_change_detection.component import check_pair, s2_change_detection
from components.s2_preprocess.component import s2_preprocess
from pipelines.cluster import step


@dsl.pipeline(name="s2-change", description="Sentinel-2 change detection (Change Vector Analysis) between "
              "two products of the same tile: both pre-processed in parallel by S2-preprocess, then S2-CD "
              "writes the change classes and the CVA (COG + STAC + quicklook + report).")
def s2_change(
    product1: str,
    product2: str,
    resolution: float = 10.0,
    bands: str = "B2,B3,B4,B8",
    aoi: str = "",
    projection: str = "UTM(Auto)",
    numberClasses: int = 4,
    referenceVector: str = "",
    levelConfidence: float = 99.99,
    output_format: str = "GeoTIFF",
    cloudmask: str = "L2A",
    cloud_classes: str = "3,8,9,10",
    filter_size: int = 3,
    min_area: int = 4,
    noise_model: str = "Covariance",
    normalisation: str = "Regression",
):
    check = check_pair(product1=product1, product2=product2)
    step(check, "check pair", cpu="1", memory=("256Mi", "1Gi"))
    check.set_caching_options(False)
    pre = []
    for i, uri in enumerate((product1, product2), start=1):
        task = s2_preprocess(product_uri=uri, resolution=resolution, bands=bands, cloudmask=cloudmask,
                             cloud_classes=cloud_classes, aoi=aoi, projection="UTM(Auto)", output_format="GeoTIFF")
        task.after(check)
        step(task, f"S2-preprocess {i}", cpu="2", memory=("2Gi", "4Gi"))
        pre.append(task)
    cd = s2_change_detection(
        input1=pre[0].outputs["product"], input2=pre[1].outputs["product"], resolution=resolution, bands=bands,
        aoi=aoi, projection=projection, numberClasses=numberClasses, referenceVector=referenceVector,
        levelConfidence=levelConfidence, output_format=output_format, filter_size=filter_size,
        min_area=min_area, noise_model=noise_model, normalisation=normalisation, cloud_classes=cloud_classes)
    step(cd, "S2-CD", cpu="2", memory=("2Gi", "6Gi"))
