"""The Kubeflow Pipelines components of osm-features: lightweight Python components on the
project's EO image (which carries kfp and this package, so nothing is installed at start).

``osm_features`` takes the parameters of ``OsmFeaturesParams``, generated from it
(``components.common.kfp_signature``): lists are comma-separated strings and an empty string
means "not given". ``store_product`` copies a product folder to a local folder or ``s3://``
prefix. (No postponed annotations here: KFP reads the real annotation objects.)
"""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components.common.kfp_signature import params_component
from components.images import EO_IMAGE
from components.osm_features.params import OsmFeaturesParams


def _osm_features(product: Output[Dataset], quicklook: Output[HTML], metrics: Output[Metrics],
                  input_uri: str = "", input_pbf: Input[Dataset] = None, *, params: dict):
    """Features of the chosen classes in an AoI from an OSM extract (a URI, or a Dataset)."""
    from components.osm_features.kfp_runtime import execute

    execute(input_uri, input_pbf.path if input_pbf else "", product, quicklook, metrics, params)


osm_features = params_component(_osm_features, OsmFeaturesParams, base_image=EO_IMAGE)


@dsl.component(base_image=EO_IMAGE, install_kfp_package=False)
def store_product(product: Input[Dataset], destination: str = "") -> str:
    """Copy a product folder to ``destination`` (a folder or s3://bucket/prefix); the URIs
    written, one per line. An empty destination keeps the product in the artifact store only."""
    from components.osm_features.kfp_runtime import store

    return store(product.path, destination)
