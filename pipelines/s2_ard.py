"""``s2_ard``: analysis-ready Sentinel-2 data, many products pre-processed in parallel."""

from kfp import dsl

from components.s2_preprocess.component import s2_preprocess
from pipelines.cluster import step

DEFAULT_PARALLELISM = 4


@dsl.pipeline(name="s2-ard", description="Pre-process a list of Sentinel-2 products (URIs) in parallel "
              "with S2-preprocess: common grid, cloud and land/sea masks, AoI, COG + STAC + quicklook.")
def s2_ard(
    products: list,
    resolution: float = 10.0,
    bands: str = "B2,B3,B4,B8",
    landseamask: str = "None",
    landseamask_tolerance: float = 0.0,
    cloudmask: str = "L2A",
    cloud_classes: str = "3,8,9,10",
    aoi: str = "",
    upsampling: str = "Nearest",
    downsampling: str = "First",
    flagdownsampling: str = "First",
    projection: str = "UTM(Auto)",
    output_format: str = "GeoTIFF",
    toa: bool = False,
):
    with dsl.ParallelFor(products, parallelism=DEFAULT_PARALLELISM) as uri:
        task = s2_preprocess(
            product_uri=uri, resolution=resolution, bands=bands, landseamask=landseamask,
            landseamask_tolerance=landseamask_tolerance, cloudmask=cloudmask, cloud_classes=cloud_classes,
            aoi=aoi, upsampling=upsampling, downsampling=downsampling, flagdownsampling=flagdownsampling,
            projection=projection, output_format=output_format, toa=toa)
        step(task, "S2-preprocess", cpu="2", memory=("2Gi", "4Gi"))
