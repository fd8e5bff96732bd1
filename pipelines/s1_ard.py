"""``s1_ard``: analysis-ready Sentinel-1 backscatter, many GRD products pre-processed in parallel."""

from kfp import dsl

from components.s1_preprocess.component import s1_grd_preprocess

DEFAULT_PARALLELISM = 4


@dsl.pipeline(name="s1-ard", description="Pre-process a list of Sentinel-1 GRD products (URIs) in parallel with "
              "S1-GRD-preprocess: thermal and border noise, calibration, speckle filter, geocoding, "
              "COG + STAC + quicklook.")
def s1_ard(
    products: list,
    polarization: str = "VV",
    calibration: str = "Sigma",
    speckle: str = "Lee Sigma",
    aoi: str = "",
    resolution: float = 0.0,
    landseamask: str = "None",
    landseamask_tolerance: float = 0.0,
    dem: str = "",
    dem_geoid_height: float = 0.0,
    projection: str = "WGS84",
    output_format: str = "GeoTIFF",
):
    with dsl.ParallelFor(products, parallelism=DEFAULT_PARALLELISM) as uri:
        task = s1_grd_preprocess(
            product_uri=uri, polarization=polarization, calibration=calibration, speckle=speckle, aoi=aoi,
            resolution=resolution, landseamask=landseamask, landseamask_tolerance=landseamask_tolerance, dem=dem,
            dem_geoid_height=dem_geoid_height, projection=projection, output_format=output_format)
        task.set_display_name("S1-GRD-preprocess")
        task.set_cpu_limit("2").set_memory_request("3Gi").set_memory_limit("6Gi")
        task.set_retry(2)
