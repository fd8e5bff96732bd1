"""``crop_type_training``: the TimeSen2Crop archive to a trained crop-type LSTM.

timesen2crop (CPU) reads the archive into monthly training arrays with tile-out validation and
test sets; train_lstm trains the network on a GPU node (``pipelines.gpu.on_gpu``: accelerator
limit, node selector, toleration, memory-backed /dev/shm) and reports validation overall accuracy,
kappa, macro F1 and the confusion matrix in the Kubeflow UI. Locally (kfp.local) the GPU settings
are ignored and training runs on the CPU.
"""

from kfp import dsl

from components.crop_lstm.component import train_lstm
from components.timesen2crop.component import timesen2crop
from pipelines.cluster import step
from pipelines.gpu import on_gpu


@dsl.pipeline(name="crop-type-training", description="TimeSen2Crop archive -> monthly training arrays "
              "(tile-out validation) -> LSTM trained on a GPU node: .h5 + ONNX model, validation metrics.")
def crop_type_training(
    archive_uri: str,
    tiles: str = "",
    val_tiles: str = "33TVN",
    test_tiles: str = "33UVP",
    temporal: str = "monthly",
    season_start: int = 2017,
    usable_conditions: str = "0",
    non_clear: str = "mask",
    classes: str = "",
    bad_files: str = "error",
    n_epochs: int = 50,
    batch_size: int = 32,
    class_weights: int = 0,
    learning_rate: float = 0.001,
    hidden_size: int = 64,
    num_layers: int = 2,
    dropout: float = 0.2,
    bidirectional: bool = False,
    seed: int = 0,
    model_name: str = "crop_lstm",
):
    data = timesen2crop(archive_uri=archive_uri, tiles=tiles, val_tiles=val_tiles, test_tiles=test_tiles,
                        temporal=temporal, season_start=season_start, usable_conditions=usable_conditions,
                        non_clear=non_clear, classes=classes, bad_files=bad_files)
    step(data, "timesen2crop", cpu="8", memory=("4Gi", "16Gi"))
    train = train_lstm(training_data=data.outputs["dataset"], validation_data=data.outputs["val_dataset"],
                       n_epochs=n_epochs, batch_size=batch_size, class_weights=class_weights,
                       learning_rate=learning_rate, hidden_size=hidden_size, num_layers=num_layers, dropout=dropout,
                       bidirectional=bidirectional, seed=seed, device="auto", model_name=model_name)
    on_gpu(step(train, "train_lstm", memory=("8Gi", "16Gi")))
