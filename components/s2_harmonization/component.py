"""The Kubeflow Pipelines component of monthlycomposite: a lightweight Python component on the
project's EO image. Its parameters are generated from ``MonthlyCompositeParams``
(``components.common.kfp_signature``); an empty string means "not given". The input is a URI
(folder or s3:// prefix with REFBOA/ and LAI/) or a Dataset from an upstream step. (No postponed
annotations here: KFP reads the real annotation objects.)
"""

from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components.common.kfp_signature import params_component
from components.images import EO_IMAGE
from components.s2_harmonization.params import MonthlyCompositeParams


def _monthlycomposite(composites: Output[Dataset], quicklook: Output[HTML], metrics: Output[Metrics],
                      input_uri: str = "", input_data: Input[Dataset] = None, *, params: dict):
    """Twelve monthly median composites (September to August) of a Sentinel-2 BOA time series."""
    from components.s2_harmonization.kfp_runtime import execute

    execute(input_uri, input_data.path if input_data else "", composites, quicklook, metrics, params)


monthlycomposite = params_component(_monthlycomposite, MonthlyCompositeParams, base_image=EO_IMAGE)
