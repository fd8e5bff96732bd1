"""The Kubeflow Pipelines components of train_lstm and tile_classifier: lightweight Python
components on the project's ML image (PyTorch, ONNX Runtime, h5py, plus the EO stack and kfp).

Their parameters are generated from ``TrainParams`` and ``ClassifyParams``
(``components.common.kfp_signature``); an empty string means "not given". Inputs come as artifacts
from upstream steps or as URIs (local paths or s3://). train_lstm reports validation overall
accuracy, kappa and macro F1 as Metrics and the confusion matrix as ClassificationMetrics, both
shown by the Kubeflow UI. Place train_lstm on a GPU node with ``pipelines.gpu.on_gpu``. (No
postponed annotations here: KFP reads the real annotation objects.)
"""

from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.common.kfp_signature import params_component
from components.crop_lstm.params import ClassifyParams, TrainParams
from components.images import ML_IMAGE


def _train_lstm(model: Output[Model], metrics: Output[Metrics], confusion: Output[ClassificationMetrics],
                training_data: Input[Dataset] = None, validation_data: Input[Dataset] = None, input_uri: str = "",
                *, params: dict):
    """Train the crop-type LSTM on train.npy / y_train.npy (a Dataset or input_uri)."""
    from components.crop_lstm.kfp_runtime import execute_train

    execute_train(input_uri, training_data.path if training_data else "",
                  validation_data.path if validation_data else "", model, metrics, confusion, params)


def _tile_classifier(crop_map: Output[Dataset], quicklook: Output[HTML], metrics: Output[Metrics],
                     model: Input[Model] = None, composites: Input[Dataset] = None, model_uri: str = "",
                     mask_uri: str = "", mc_uri: str = "", *, params: dict):
    """Crop-type map of the monthly composites (a Dataset or mc_uri) with a trained model (a Model
    artifact or model_uri: a .h5 file or a folder holding one) and an optional crop mask."""
    from components.crop_lstm.kfp_runtime import execute_classify

    execute_classify(model.path if model else "", model_uri, mask_uri,
                     composites.path if composites else "", mc_uri, crop_map, quicklook, metrics, params)


train_lstm = params_component(_train_lstm, TrainParams, base_image=ML_IMAGE)
tile_classifier = params_component(_tile_classifier, ClassifyParams, base_image=ML_IMAGE)
