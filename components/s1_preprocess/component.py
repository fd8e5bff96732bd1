"""The Kubeflow Pipelines components of S1-GRD-preprocess and S1-SLC-preprocess: lightweight
Python components on the project's EO image (which carries kfp and this package, so nothing is
installed at start), and the same components on the SNAP image (``*_snap``, which also carries
SNAP's ``gpt``) for ``engine="snap"``. KFP fixes a step's image when the pipeline is compiled,
so a pipeline picks one of the two with ``dsl.If`` on its ``engine`` parameter.

Their parameters mirror ``S1GRDParams`` / ``S1SLCParams`` one to one (a test keeps them from
drifting apart); lists are comma-separated strings and an empty string means "not given". (No
postponed annotations here: KFP reads the real annotation objects.)
"""


from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components.images import EO_IMAGE, SNAP_IMAGE


def snap_variant(component):
    """``component`` on the SNAP image, named ``<name>-snap``: the same function, inputs and
    outputs. The function it runs keeps its own name (the one its source defines, which the
    container's executor looks up); only the component's name and image differ."""
    variant = dsl.component(component.python_func, base_image=SNAP_IMAGE, install_kfp_package=False)
    variant.component_spec.name = variant.name = f"{component.name}-snap"
    return variant


@dsl.component(base_image=EO_IMAGE, install_kfp_package=False)
def s1_grd_preprocess(
    product: Output[Dataset],
    quicklook: Output[HTML],
    metrics: Output[Metrics],
    product_uri: str = "",
    input_product: Input[Dataset] = None,
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
    thermal_noise_removal: bool = True,
    border_noise_removal: bool = True,
    border_limit: int = 500,
    trim_threshold: float = 0.5,
    dem_outside: str = "error",
    min_valid_percent: float = 0.0,
):
    """Sentinel-1 GRD pre-processing of one product (a URI, or a Dataset from an upstream step)."""
    from components.s1_preprocess.kfp_runtime import execute

    execute("GRD", product_uri, input_product.path if input_product else "", product, quicklook, metrics, dict(
        polarization=polarization, speckle=speckle, filter_size_x=filter_size_x, filter_size_y=filter_size_y,
        damping_factor=damping_factor, enl=enl, estimate_enl=estimate_enl, num_looks=num_looks,
        window_size=window_size, target_window_size=target_window_size, sigma=sigma, aoi=aoi,
        resolution=resolution, landseamask=landseamask, landseamask_tolerance=landseamask_tolerance, dem=dem,
        dem_geoid_height=dem_geoid_height, orbit=orbit, projection=projection, output_format=output_format,
        engine=engine, graph_only=graph_only, calibration=calibration, thermal_noise_removal=thermal_noise_removal,
        border_noise_removal=border_noise_removal, border_limit=border_limit, trim_threshold=trim_threshold,
        dem_outside=dem_outside, min_valid_percent=min_valid_percent))


@dsl.component(base_image=EO_IMAGE, install_kfp_package=False)
def s1_slc_preprocess(
    product: Output[Dataset],
    quicklook: Output[HTML],
    metrics: Output[Metrics],
    product_uri: str = "",
    input_product: Input[Dataset] = None,
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
    thermal_noise_removal: bool = True,
    subswaths: str = "IW1,IW2,IW3",
    dem_outside: str = "error",
    min_valid_percent: float = 0.0,
):
    """Sentinel-1 SLC pre-processing of one product (a URI, or a Dataset from an upstream step)."""
    from components.s1_preprocess.kfp_runtime import execute

    execute("SLC", product_uri, input_product.path if input_product else "", product, quicklook, metrics, dict(
        polarization=polarization, speckle=speckle, filter_size_x=filter_size_x, filter_size_y=filter_size_y,
        damping_factor=damping_factor, enl=enl, estimate_enl=estimate_enl, num_looks=num_looks,
        window_size=window_size, target_window_size=target_window_size, sigma=sigma, aoi=aoi,
        resolution=resolution, landseamask=landseamask, landseamask_tolerance=landseamask_tolerance, dem=dem,
        dem_geoid_height=dem_geoid_height, orbit=orbit, projection=projection, output_format=output_format,
        engine=engine, graph_only=graph_only, calibration=calibration, thermal_noise_removal=thermal_noise_removal,
        subswaths=subswaths, dem_outside=dem_outside, min_valid_percent=min_valid_percent))


s1_grd_preprocess_snap = snap_variant(s1_grd_preprocess)
s1_slc_preprocess_snap = snap_variant(s1_slc_preprocess)
