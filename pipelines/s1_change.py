"""``s1_change``: a Sentinel-1 SLC pair to coherence, backscatters, ACD/MTC composites and a change mask.

``engine`` chooses the processor: "native" (the default, on the EO image) or "snap" (the seed's
SNAP graphs run by ``gpt``, on the SNAP image); the step is one of two branches because KFP
fixes a step's image at compile time. Any other value goes to the native step, which rejects it.
"""

from kfp import dsl

from components.common.kfp_signature import pipeline_params
from components.s1_change_detection.component import s1_change_detection, s1_change_detection_snap
from pipelines.cluster import step
from pipelines.s1_ard import NOT_EXPOSED

# SNAP's gpt is a JVM whose heap is sized from the container's memory limit (see
# components.s1_preprocess.snap_graphs.gpt_memory); coregistering a pair wants a heap of several
# GiB, so its step asks for more than the native engine needs.
SNAP_MEMORY = ("8Gi", "16Gi")


@dsl.pipeline(name="s1-change", description="S1-CD on an SLC pair (URIs of the same track, 6 x n days apart): "
              "coherence, backscatter of both dates, ACD and MTC RGBs and a change mask as COGs.")
@pipeline_params(s1_change_detection, exclude=(*NOT_EXPOSED, "landseamask_tolerance", "dem", "dem_geoid_height",
                                               "refine_coregistration"))
def s1_change(input1: str, input2: str, params):
    args = dict(input1_uri=input1, input2_uri=input2, **params.of(s1_change_detection))
    with dsl.If(params["engine"] == "snap"):
        step(s1_change_detection_snap(**args), "S1-CD (SNAP)", cpu="2", memory=SNAP_MEMORY)
    with dsl.Else():
        step(s1_change_detection(**args), "S1-CD", cpu="2", memory=("4Gi", "8Gi"))
