"""The Kubeflow Pipelines component of S1-CD: a lightweight Python component on the project's
EO image, and the same on the SNAP image (``s1_change_detection_snap``) for ``engine="snap"``.
Its parameters mirror ``S1CDParams`` one to one (a test keeps them from drifting apart); lists
are comma-separated strings and an empty string means "not given"."""


from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components.images import EO_IMAGE
from components.s1_preprocess.component import snap_variant


@dsl.component(base_image=EO_IMAGE, install_kfp_package=False)
def s1_change_detection(
    products: Output[Dataset],
    quicklook: Output[HTML],
    metrics: Output[Metrics],
    input1_uri: str = "",
    input2_uri: str = "",
    input1: Input[Dataset] = None,
    input2: Input[Dataset] = None,
    polarization: str = "VV",
    speckle: str = "Lee Sigma",
    filter_size_x: int = 3,
    filter_size_y: int = 3,
    damping_factor: int = 2,
    enl: float = 1.0,
    estimate_enl: bool = False,
    num_looks: str = "1",
    window_size: str = "7x7",
    target_window_size: str = "3x3",
    sigma: str = "0.9",
    aoi: str = "",
    resolution: float = 0.0,
    landseamask: str = "None",
    landseamask_tolerance: float = 0.0,
    dem: str = "",
    dem_geoid_height: float = 0.0,
    orbit: str = "",
    projection: str = "WGS84",
    output_format: str = "GeoTIFF",
    engine: str = "native",
    graph_only: bool = False,
    calibration: str = "Sigma",
    coherence_window_rg: int = 10,
    coherence_window_az: int = 10,
    percentile_low: float = 2.5,
    percentile_high: float = 97.5,
    change_db: float = 3.0,
    change_coherence: float = 0.5,
    subswaths: str = "IW1,IW2,IW3",
    refine_coregistration: bool = True,
    thermal_noise_removal: bool = True,
):
    """Sentinel-1 change detection of an SLC pair (URIs, or Datasets from upstream steps)."""
    from components.s1_change_detection.kfp_runtime import execute

    execute(input1_uri or (input1.path if input1 else ""), input2_uri or (input2.path if input2 else ""),
            products, quicklook, metrics, dict(
                polarization=polarization, speckle=speckle, filter_size_x=filter_size_x,
                filter_size_y=filter_size_y, damping_factor=damping_factor, enl=enl, estimate_enl=estimate_enl,
                num_looks=num_looks, window_size=window_size, target_window_size=target_window_size, sigma=sigma,
                aoi=aoi, resolution=resolution, landseamask=landseamask,
                landseamask_tolerance=landseamask_tolerance, dem=dem, dem_geoid_height=dem_geoid_height,
                orbit=orbit, projection=projection, output_format=output_format, engine=engine,
                graph_only=graph_only, calibration=calibration, coherence_window_rg=coherence_window_rg,
                coherence_window_az=coherence_window_az, percentile_low=percentile_low,
                percentile_high=percentile_high, change_db=change_db, change_coherence=change_coherence,
                subswaths=subswaths, refine_coregistration=refine_coregistration,
                thermal_noise_removal=thermal_noise_removal))


s1_change_detection_snap = snap_variant(s1_change_detection)
