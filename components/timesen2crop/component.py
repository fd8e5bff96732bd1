"""The Kubeflow Pipelines component of timesen2crop: a lightweight Python component on the
project's EO image (which carries kfp and this package, so nothing is installed at start).

Its parameters are generated from ``TimeSen2CropParams`` (``components.common.kfp_signature``):
lists are comma-separated strings. The archive is a URI (a mounted folder, a .zip, or s3://); the
training arrays, the validation set and the test set are three Dataset outputs so that the
validation set can feed train_lstm directly. (No postponed annotations here: KFP reads the real
annotation objects.)
"""

from kfp.dsl import Dataset, Metrics, Output

from components.common.kfp_signature import params_component
from components.images import EO_IMAGE
from components.timesen2crop.params import TimeSen2CropParams


def _timesen2crop(dataset: Output[Dataset], val_dataset: Output[Dataset], test_dataset: Output[Dataset],
                  metrics: Output[Metrics], archive_uri: str, *, params: dict):
    """TimeSen2Crop archive to train.npy / y_train.npy (+ tile-out validation and test sets)."""
    from components.timesen2crop.kfp_runtime import execute

    execute(archive_uri, dataset, val_dataset, test_dataset, metrics, params)


timesen2crop = params_component(_timesen2crop, TimeSen2CropParams, base_image=EO_IMAGE)
