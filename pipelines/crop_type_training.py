"""``crop_type_training``: the TimeSen2Crop archive to a trained crop-type LSTM.

timesen2crop (CPU) reads the archive into monthly training arrays with tile-out validation and
test sets; train_lstm trains the network on a GPU node (``pipelines.gpu.on_gpu``: accelerator
limit, node selector, toleration, memory-backed /dev/shm) and reports validation overall accuracy,
kappa, macro F1 and the confusion matrix in the Kubeflow UI. Locally (kfp.local) the GPU settings
are ignored and training runs on the CPU.
"""

from kfp import dsl

from components.common.kfp_signature import pipeline_params
from components.crop_lstm.component import train_lstm
from components.timesen2crop.component import timesen2crop
from pipelines.cluster import step
from pipelines.gpu import on_gpu


@dsl.pipeline(name="crop-type-training", description="TimeSen2Crop archive -> monthly training arrays "
              "(tile-out validation) -> LSTM trained on a GPU node: .h5 + ONNX model, validation metrics.")
# the validation set is timesen2crop's val_dataset output (not train_lstm's val folder) and the
# device "auto" (the GPU of the node on_gpu picks)
@pipeline_params(timesen2crop, train_lstm, exclude=("workers", "val", "device"),
                 defaults={"val_tiles": "33TVN", "test_tiles": "33UVP"})
def crop_type_training(archive_uri: str, params):
    data = timesen2crop(archive_uri=archive_uri, **params.of(timesen2crop))
    step(data, "timesen2crop", cpu="8", memory=("4Gi", "16Gi"))
    train = train_lstm(training_data=data.outputs["dataset"], validation_data=data.outputs["val_dataset"],
                       **params.of(train_lstm, device="auto"))
    on_gpu(step(train, "train_lstm", memory=("8Gi", "16Gi")))
