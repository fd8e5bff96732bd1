"""The Kubeflow Pipelines component of energy-datasets: stage one dataset of the catalogue into
a Dataset artifact (a lightweight Python component on the project's EO image).

Its parameters are generated from ``StageParams`` (``components.common.kfp_signature``): lists
are comma-separated strings and an empty string means "not given". (No postponed annotations
here: KFP reads the real annotation objects.)
"""

from kfp.dsl import Dataset, Markdown, Output

from components.common.kfp_signature import params_component
from components.energy_datasets.params import StageParams
from components.images import EO_IMAGE


def _energy_dataset(dataset: Output[Dataset], report: Output[Markdown], name: str, *, params: dict):
    """Stage the catalogue dataset ``name`` (files with a manifest, or the ERA5 CDS request)."""
    from components.energy_datasets.kfp_runtime import execute

    execute(name, dataset, report, params)


energy_dataset = params_component(_energy_dataset, StageParams, base_image=EO_IMAGE)
