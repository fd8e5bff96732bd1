"""The Kubeflow Pipelines components of train_lstm and tile_classifier: lightweight Python
components on the project's ML image (PyTorch, ONNX Runtime, h5py, plus the EO stack and kfp).

Their parameters mirror ``TrainParams`` and ``ClassifyParams`` one to one (a test keeps them from
drifting apart); an empty string means "not given". Inputs come as artifacts from upstream steps
or as URIs (local paths or s3://). train_lstm reports validation overall accuracy, kappa and
macro F1 as Metrics and the confusion matrix as ClassificationMetrics, both shown by the Kubeflow
UI. Place train_lstm on a GPU node with ``pipelines.gpu.on_gpu``. (No postponed annotations
here: KFP reads the real annotation objects.)
"""


from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.images import ML_IMAGE



@dsl.component(base_image=ML_IMAGE, install_kfp_package=False)
def train_lstm(
    model: Output[Model],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    training_data: Input[Dataset] = None,
    validation_data: Input[Dataset] = None,
    input_uri: str = "",
    n_epochs: int = 50,
    batch_size: int = 32,
    class_weights: int = 0,
    learning_rate: float = 0.001,
    val: str = "",
    hidden_size: int = 64,
    num_layers: int = 2,
    dropout: float = 0.2,
    bidirectional: bool = False,
    seed: int = 0,
    device: str = "auto",
    model_name: str = "crop_lstm",
):
    """Train the crop-type LSTM on train.npy / y_train.npy (a Dataset or input_uri)."""
    from components.crop_lstm.kfp_runtime import execute_train

    execute_train(input_uri, training_data.path if training_data else "",
                  validation_data.path if validation_data else "", model, metrics, confusion,
                  dict(n_epochs=n_epochs, batch_size=batch_size, class_weights=class_weights,
                       learning_rate=learning_rate, val=val, hidden_size=hidden_size, num_layers=num_layers,
                       dropout=dropout, bidirectional=bidirectional, seed=seed, device=device,
                       model_name=model_name))


@dsl.component(base_image=ML_IMAGE, install_kfp_package=False)
def tile_classifier(
    crop_map: Output[Dataset],
    quicklook: Output[HTML],
    metrics: Output[Metrics],
    model: Input[Model] = None,
    composites: Input[Dataset] = None,
    model_uri: str = "",
    mask_uri: str = "",
    mc_uri: str = "",
    majority_size: int = 3,
    min_region_px: int = 0,
    connectivity: str = "8",
    block_size: int = 512,
    batch_pixels: int = 256,
    engine: str = "auto",
    threads: int = 0,
):
    """Crop-type map of the monthly composites (a Dataset or mc_uri) with a trained model (a Model
    artifact or model_uri: a .h5 file or a folder holding one) and an optional crop mask."""
    from components.crop_lstm.kfp_runtime import execute_classify

    execute_classify(model.path if model else "", model_uri, mask_uri,
                     composites.path if composites else "", mc_uri, crop_map, quicklook, metrics,
                     dict(majority_size=majority_size, min_region_px=min_region_px, connectivity=connectivity,
                          block_size=block_size, batch_pixels=batch_pixels, engine=engine, threads=threads))
