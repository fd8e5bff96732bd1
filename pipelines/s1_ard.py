"""``s1_ard``: analysis-ready Sentinel-1 backscatter, many GRD products pre-processed in parallel.

``engine`` chooses the processor: "native" (the default, on the EO image) or "snap" (the seed's
SNAP graph run by ``gpt``, on the SNAP image). KFP fixes a step's image at compile time, so each
product's step is one of two branches; any other value goes to the native step, which rejects it
with the service's one-line message.
"""

from kfp import dsl

from components.common.kfp_signature import pipeline_params
from components.s1_preprocess.component import s1_grd_preprocess, s1_grd_preprocess_snap
from pipelines.cluster import step

DEFAULT_PARALLELISM = 4
# parameters the S1 pipelines leave at the service's defaults (a step is still run with them): the
# speckle filters' tuning, the orbit (the annotation's state vectors), the SNAP graph dump, thermal
# noise removal (on)
SPECKLE_TUNING = ("filter_size_x", "filter_size_y", "damping_factor", "enl", "estimate_enl", "num_looks",
                  "window_size", "target_window_size", "sigma")
NOT_EXPOSED = (*SPECKLE_TUNING, "orbit", "graph_only", "thermal_noise_removal")
# SNAP's gpt is a JVM whose heap is sized from the container's memory limit (see
# components.s1_preprocess.snap_graphs.gpt_memory); a full scene wants a heap of several GiB,
# so its step asks for more than the native engine's bounded strips need.
SNAP_MEMORY = ("8Gi", "16Gi")


@dsl.pipeline(name="s1-ard", description="Pre-process a list of Sentinel-1 GRD products (URIs) in parallel with "
              "S1-GRD-preprocess: thermal and border noise, calibration, speckle filter, geocoding, "
              "COG + STAC + quicklook.")
@pipeline_params(s1_grd_preprocess, exclude=(*NOT_EXPOSED, "border_noise_removal", "border_limit", "trim_threshold",
                                             "min_valid_percent"))
def s1_ard(products: list, params):
    with dsl.ParallelFor(products, parallelism=DEFAULT_PARALLELISM) as uri:
        args = dict(product_uri=uri, **params.of(s1_grd_preprocess))
        with dsl.If(params["engine"] == "snap"):
            step(s1_grd_preprocess_snap(**args), "S1-GRD-preprocess (SNAP)", cpu="2", memory=SNAP_MEMORY)
        with dsl.Else():
            step(s1_grd_preprocess(**args), "S1-GRD-preprocess", cpu="2", memory=("3Gi", "6Gi"))
