"""``s1_ard``: analysis-ready Sentinel-1 backscatter, many GRD products pre-processed in parallel.

``engine`` chooses the processor: "native" (the default, on the EO image) or "snap" (the seed's
SNAP graph run by ``gpt``, on the SNAP image). KFP fixes a step's image at compile time, so each
product's step is one of two branches; any other value goes to the native step, which rejects it
with the service's one-line message.
"""

from kfp import dsl

from components.s1_preprocess.component import s1_grd_preprocess, s1_grd_preprocess_snap
from pipelines.cluster import step

DEFAULT_PARALLELISM = 4
# SNAP's gpt is a JVM whose heap is sized from the container's memory limit (see
# components.s1_preprocess.snap_graphs.gpt_memory); a full scene wants a heap of several GiB,
# so its step asks for more than the native engine's bounded strips need.
SNAP_MEMORY = ("8Gi", "16Gi")


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
    engine: str = "native",
):
    with dsl.ParallelFor(products, parallelism=DEFAULT_PARALLELISM) as uri:
        args = dict(
            product_uri=uri, polarization=polarization, calibration=calibration, speckle=speckle, aoi=aoi,
            resolution=resolution, landseamask=landseamask, landseamask_tolerance=landseamask_tolerance, dem=dem,
            dem_geoid_height=dem_geoid_height, projection=projection, output_format=output_format, engine=engine)
        with dsl.If(engine == "snap"):
            step(s1_grd_preprocess_snap(**args), "S1-GRD-preprocess (SNAP)", cpu="2", memory=SNAP_MEMORY)
        with dsl.Else():
            step(s1_grd_preprocess(**args), "S1-GRD-preprocess", cpu="2", memory=("3Gi", "6Gi"))
