"""The Kubeflow Pipelines component of S2-preprocess: a lightweight Python component on the
project's EO image (which carries kfp and this package, so nothing is installed at start).

Its parameters are generated from ``S2PreprocessParams`` (``components.common.kfp_signature``):
lists are comma-separated strings and an empty string means "not given". (No postponed
annotations here: KFP reads the real annotation objects.)
"""

from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components.common.kfp_signature import params_component
from components.images import EO_IMAGE
from components.s2_preprocess.params import S2PreprocessParams


def _s2_preprocess(product: Output[Dataset], quicklook: Output[HTML], metrics: Output[Metrics],
                   product_uri: str = "", input_product: Input[Dataset] = None, *, params: dict):
    """Sentinel-2 pre-processing of one product (a URI, or a Dataset from an upstream step)."""
    from components.s2_preprocess.kfp_runtime import execute

    execute(product_uri, input_product.path if input_product else "", product, quicklook, metrics, params)


s2_preprocess = params_component(_s2_preprocess, S2PreprocessParams, base_image=EO_IMAGE)
