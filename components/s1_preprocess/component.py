"""The Kubeflow Pipelines components of S1-GRD-preprocess and S1-SLC-preprocess: lightweight
Python components on the project's EO image (which carries kfp and this package, so nothing is
installed at start), and the same components on the SNAP image (``*_snap``, which also carries
SNAP's ``gpt``) for ``engine="snap"``. KFP fixes a step's image when the pipeline is compiled,
so a pipeline picks one of the two with ``dsl.If`` on its ``engine`` parameter.

Their parameters are generated from ``S1GRDParams`` / ``S1SLCParams``
(``components.common.kfp_signature``): lists are comma-separated strings and an empty string
means "not given". (No postponed annotations here: KFP reads the real annotation objects.)
"""

from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components.common.kfp_signature import on_image, params_component
from components.images import EO_IMAGE, SNAP_IMAGE
from components.s1_preprocess.params import S1GRDParams, S1SLCParams


def snap_variant(component):
    """``component`` on the SNAP image, named ``<name>-snap``: the same function, inputs and
    outputs. The function it runs keeps its own name (the one its source defines, which the
    container's executor looks up); only the component's name and image differ."""
    return on_image(component, SNAP_IMAGE, f"{component.name}-snap")


def _s1_grd_preprocess(product: Output[Dataset], quicklook: Output[HTML], metrics: Output[Metrics],
                       product_uri: str = "", input_product: Input[Dataset] = None, *, params: dict):
    """Sentinel-1 GRD pre-processing of one product (a URI, or a Dataset from an upstream step)."""
    from components.s1_preprocess.kfp_runtime import execute

    execute("GRD", product_uri, input_product.path if input_product else "", product, quicklook, metrics, params)


def _s1_slc_preprocess(product: Output[Dataset], quicklook: Output[HTML], metrics: Output[Metrics],
                       product_uri: str = "", input_product: Input[Dataset] = None, *, params: dict):
    """Sentinel-1 SLC pre-processing of one product (a URI, or a Dataset from an upstream step)."""
    from components.s1_preprocess.kfp_runtime import execute

    execute("SLC", product_uri, input_product.path if input_product else "", product, quicklook, metrics, params)


s1_grd_preprocess = params_component(_s1_grd_preprocess, S1GRDParams, base_image=EO_IMAGE)
s1_slc_preprocess = params_component(_s1_slc_preprocess, S1SLCParams, base_image=EO_IMAGE)
s1_grd_preprocess_snap = snap_variant(s1_grd_preprocess)
s1_slc_preprocess_snap = snap_variant(s1_slc_preprocess)
