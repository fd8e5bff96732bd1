"""The Kubeflow Pipelines component of energy-datasets: stage one dataset of the catalogue into
a Dataset artifact (a lightweight Python component on the project's EO image).

Its parameters mirror ``StageParams`` one to one (a test keeps them from drifting apart); lists
are comma-separated strings and an empty string means "not given". (No postponed annotations
here: KFP reads the real annotation objects.)
"""


from kfp import dsl
from kfp.dsl import Dataset, Markdown, Output

from components.images import EO_IMAGE


@dsl.component(base_image=EO_IMAGE, install_kfp_package=False)
def energy_dataset(
    dataset: Output[Dataset],
    report: Output[Markdown],
    name: str,
    catalogue: str = "",
    start: str = "",
    end: str = "",
    aoi: str = "",
    variables: str = "",
    data_format: str = "netcdf",
    retries: int = 3,
    timeout_s: float = 60.0,
    workdir: str = "",
):
    """Stage the catalogue dataset ``name`` (files with a manifest, or the ERA5 CDS request)."""
    from components.energy_datasets.kfp_runtime import execute

    execute(name, dataset, report, dict(catalogue=catalogue, start=start, end=end, aoi=aoi,
                                        variables=variables, data_format=data_format, retries=retries,
                                        timeout_s=timeout_s, workdir=workdir))
