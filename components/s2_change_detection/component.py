"""The Kubeflow Pipelines components of S2-CD: lightweight Python components on the project's EO
image (which carries kfp and this package, so nothing is installed at start).

``s2_change_detection`` takes the parameters of ``S2ChangeParams``, generated from it
(``components.common.kfp_signature``): lists are comma-separated strings and an empty string
means "not given". Each input is a URI (``input1_uri``) or a Dataset from an upstream step
(``input1``, e.g. the output folder of the S2-preprocess component). ``check_pair`` refuses a
pair whose names show two different tiles before anything is downloaded or pre-processed. (No
postponed annotations here: KFP reads the real annotation objects.)
"""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from components.common.kfp_signature import params_component
from components.images import EO_IMAGE
from components.s2_change_detection.params import S2ChangeParams


@dsl.component(base_image=EO_IMAGE, install_kfp_package=False)
def check_pair(product1: str, product2: str) -> str:
    """Refuse two products whose names carry different Sentinel-2 tiles; returns the tile."""
    from components.s2_change_detection.kfp_runtime import check_names

    return check_names(product1, product2)


def _s2_change_detection(change: Output[Dataset], quicklook: Output[HTML], report: Output[Markdown],
                         metrics: Output[Metrics], input1_uri: str = "", input2_uri: str = "",
                         input1: Input[Dataset] = None, input2: Input[Dataset] = None, *, params: dict):
    """Sentinel-2 change detection (CVA) between two acquisitions of one tile."""
    from components.s2_change_detection.kfp_runtime import execute

    execute(input1_uri or (input1.path if input1 else ""), input2_uri or (input2.path if input2 else ""),
            change, quicklook, report, metrics, params)


s2_change_detection = params_component(_s2_change_detection, S2ChangeParams, base_image=EO_IMAGE)
