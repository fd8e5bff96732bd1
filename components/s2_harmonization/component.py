"""The Kubeflow Pipelines component of monthlycomposite: a lightweight Python component on the
project's EO image. Its parameters mirror ``MonthlyCompositeParams`` one to one (a test keeps
them from drifting apart); an empty string means "not given". The input is a URI (folder or
s3:// prefix with REFBOA/ and LAI/) or a Dataset from an upstream step. (No postponed
annotations here: KFP reads the real annotation objects.)
"""


from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components.images import EO_IMAGE


@dsl.component(base_image=EO_IMAGE, install_kfp_package=False)
def monthlycomposite(
    composites: Output[Dataset],
    quicklook: Output[HTML],
    metrics: Output[Metrics],
    input_uri: str = "",
    input_data: Input[Dataset] = None,
    tile: str = "",
    season_start: int = 2017,
    empty_months: str = "error",
    block_size: int = 512,
):
    """Twelve monthly median composites (September to August) of a Sentinel-2 BOA time series."""
    from components.s2_harmonization.kfp_runtime import execute

    execute(input_uri, input_data.path if input_data else "", composites, quicklook, metrics,
            dict(tile=tile, season_start=season_start, empty_months=empty_months, block_size=block_size))
