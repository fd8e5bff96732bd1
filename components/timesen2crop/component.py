"""The Kubeflow Pipelines component of timesen2crop: a lightweight Python component on the
project's EO image (which carries kfp and this package, so nothing is installed at start).

Its parameters mirror ``TimeSen2CropParams`` one to one (a test keeps them from drifting apart);
lists are comma-separated strings. The archive is a URI (a mounted folder, a .zip, or s3://);
the training arrays, the validation set and the test set are three Dataset outputs so that the
validation set can feed train_lstm directly. (No postponed annotations here: KFP reads the real
annotation objects.)
"""


from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from components.images import EO_IMAGE


@dsl.component(base_image=EO_IMAGE, install_kfp_package=False)
def timesen2crop(
    dataset: Output[Dataset],
    val_dataset: Output[Dataset],
    test_dataset: Output[Dataset],
    metrics: Output[Metrics],
    archive_uri: str,
    tiles: str = "",
    val_tiles: str = "",
    test_tiles: str = "",
    temporal: str = "monthly",
    season_start: int = 2017,
    usable_conditions: str = "0",
    non_clear: str = "mask",
    classes: str = "",
    bad_files: str = "error",
    workers: int = 0,
):
    """TimeSen2Crop archive to train.npy / y_train.npy (+ tile-out validation and test sets)."""
    from components.timesen2crop.kfp_runtime import execute

    execute(archive_uri, dataset, val_dataset, test_dataset, metrics,
            dict(tiles=tiles, val_tiles=val_tiles, test_tiles=test_tiles, temporal=temporal,
                 season_start=season_start, usable_conditions=usable_conditions, non_clear=non_clear,
                 classes=classes, bad_files=bad_files, workers=workers))
