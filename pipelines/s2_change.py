"""``s2_change``: change detection between two Sentinel-2 products of one tile.

check_pair (names only) -> S2-preprocess of both products in parallel (selected bands on the
tile grid, clouds masked, AoI) -> S2-CD on the two pre-processed stacks.
"""

from kfp import dsl

from components.common.kfp_signature import pipeline_params
from components.s2_change_detection.component import check_pair, s2_change_detection
from components.s2_preprocess.component import s2_preprocess
from pipelines.cluster import step


@dsl.pipeline(name="s2-change", description="Sentinel-2 change detection (Change Vector Analysis) between "
              "two products of the same tile: both pre-processed in parallel by S2-preprocess, then S2-CD "
              "writes the change classes and the CVA (COG + STAC + quicklook + report).")
# S2-CD's parameters, and S2-preprocess's cloud mask; both steps share the grid (resolution,
# bands, AoI) and the cloud classes, while projection and output_format are S2-CD's: the
# pre-processed stacks stay on the tile's UTM grid as GeoTIFF
@pipeline_params(s2_change_detection, s2_preprocess,
                 exclude=("landseamask", "landseamask_tolerance", "dem", "upsampling", "downsampling",
                          "flagdownsampling", "toa", "min_valid_percent"),
                 defaults={"cloudmask": "L2A", "projection": "UTM(Auto)"})
def s2_change(product1: str, product2: str, params):
    check = check_pair(product1=product1, product2=product2)
    step(check, "check pair", cpu="1", memory=("256Mi", "1Gi"))
    check.set_caching_options(False)
    pre = []
    for i, uri in enumerate((product1, product2), start=1):
        task = s2_preprocess(product_uri=uri,
                             **params.of(s2_preprocess, projection="UTM(Auto)", output_format="GeoTIFF"))
        task.after(check)
        step(task, f"S2-preprocess {i}", cpu="2", memory=("2Gi", "4Gi"))
        pre.append(task)
    cd = s2_change_detection(input1=pre[0].outputs["product"], input2=pre[1].outputs["product"],
                             **params.of(s2_change_detection))
    step(cd, "S2-CD", cpu="2", memory=("2Gi", "6Gi"))
