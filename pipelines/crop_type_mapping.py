"""``crop_type_mapping``: a tile's Sentinel-2 BOA + LAI time series to a crop-type map.

monthlycomposite harmonises the series into 12 monthly median composites (September to August);
tile_classifier applies a model trained by ``crop_type_training`` (``model_uri``: its .h5 file, or
the folder holding it) where the crop mask (``mask_uri``, optional) is 0, then post-processes the
map. Both steps run on CPUs (inference through ONNX Runtime).
"""

from kfp import dsl

from components.common.kfp_signature import pipeline_params
from components.crop_lstm.component import tile_classifier
from components.s2_harmonization.component import monthlycomposite
from pipelines.cluster import step


@dsl.pipeline(name="crop-type-mapping", description="Sentinel-2 BOA + LAI time series -> 12 monthly median "
              "composites -> crop-type map (LSTM, TimeSen2Crop legend) with morphological post-processing.")
# block_size is both steps': one value for both; inference picks its engine and threads itself
@pipeline_params(monthlycomposite, tile_classifier, exclude=("engine", "threads"))
def crop_type_mapping(input_uri: str, model_uri: str, mask_uri: str = "", *, params):
    mc = monthlycomposite(input_uri=input_uri, **params.of(monthlycomposite))
    # block-wise medians: 356 MiB measured with 7 acquisitions a month (bench/monthlycomposite.py)
    step(mc, "monthlycomposite", cpu="4", memory=("1Gi", "4Gi"))
    classify = tile_classifier(composites=mc.outputs["composites"], model_uri=model_uri, mask_uri=mask_uri,
                               **params.of(tile_classifier, engine="auto"))
    step(classify, "tile_classifier", cpu="8", memory=("4Gi", "8Gi"))  # 2.4 GiB on a full tile
