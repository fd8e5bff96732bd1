"""``s2_ard``: analysis-ready Sentinel-2 data, many products pre-processed in parallel."""

from kfp import dsl

from components.common.kfp_signature import pipeline_params
from components.s2_preprocess.component import s2_preprocess
from pipelines.cluster import step

DEFAULT_PARALLELISM = 4


@dsl.pipeline(name="s2-ard", description="Pre-process a list of Sentinel-2 products (URIs) in parallel "
              "with S2-preprocess: common grid, cloud and land/sea masks, AoI, COG + STAC + quicklook.")
@pipeline_params(s2_preprocess, exclude=("dem", "min_valid_percent"), defaults={"cloudmask": "L2A"})
def s2_ard(products: list, params):
    with dsl.ParallelFor(products, parallelism=DEFAULT_PARALLELISM) as uri:
        task = s2_preprocess(product_uri=uri, **params.of(s2_preprocess))
        step(task, "S2-preprocess", cpu="2", memory=("2Gi", "4Gi"))
