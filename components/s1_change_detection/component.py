"""The Kubeflow Pipelines component of S1-CD: a lightweight Python component on the project's
EO image, and the same on the SNAP image (``s1_change_detection_snap``) for ``engine="snap"``.
Its parameters are generated from ``S1CDParams`` (``components.common.kfp_signature``): lists
are comma-separated strings and an empty string means "not given"."""

from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components.common.kfp_signature import params_component
from components.images import EO_IMAGE
from components.s1_change_detection.params import S1CDParams
from components.s1_preprocess.component import snap_variant


def _s1_change_detection(products: Output[Dataset], quicklook: Output[HTML], metrics: Output[Metrics],
                         input1_uri: str = "", input2_uri: str = "", input1: Input[Dataset] = None,
                         input2: Input[Dataset] = None, *, params: dict):
    """Sentinel-1 change detection of an SLC pair (URIs, or Datasets from upstream steps)."""
    from components.s1_change_detection.kfp_runtime import execute

    execute(input1_uri or (input1.path if input1 else ""), input2_uri or (input2.path if input2 else ""),
            products, quicklook, metrics, params)


s1_change_detection = params_component(_s1_change_detection, S1CDParams, base_image=EO_IMAGE)
s1_change_detection_snap = snap_variant(s1_change_detection)
