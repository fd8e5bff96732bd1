"""The Kubeflow Pipelines components of s2-patch-classifier: lightweight Python components on the
project's ML image (which carries kfp, torch and this package; nothing is installed at start).

- ``s2_patch_classifier``: the whole service, every parameter of ``S2PatchClassifierParams``
  (a test keeps them from drifting apart), any ``action``;
- one component per step for pipelines, each taking the parameters of its step under the same
  names, types and defaults: ``extract_patches`` -> ``pretrain_encoder`` -> ``train_model`` ->
  ``predict_tiles``. Training logs its scores to the Kubeflow UI: IoU and F1 per class
  (``Metrics``), the confusion matrix (``ClassificationMetrics``) and a small HTML report.

Lists are comma-separated strings and an empty string means "not given". Tiles come as a URI
(``tiles_uri``: local path or s3://) or as a Dataset from an upstream step. (No postponed
annotations here: KFP reads the real annotation objects.)
"""


from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.images import ML_IMAGE



@dsl.component(base_image=ML_IMAGE, install_kfp_package=False)
def s2_patch_classifier(
    output: Output[Dataset],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[HTML],
    input_uri: str = "",
    input_data: Input[Dataset] = None,
    action: str = "",
    criterion: str = "cross_entropy",
    pretrained: bool = False,
    bands: str = "",
    selected_classes: str = "1",
    data_aug: bool = False,
    simplified: bool = False,
    batch_size: int = 2,
    epochs: int = 20,
    patch_size: int = 256,
    lr: float = 0.0001,
    model_format: str = "pytorch",
    model_file: str = "",
    quantize: str = "none",
    pretrained_weights: str = "",
    pretrain_epochs: int = 0,
    encoder: str = "resnet50",
    width: int = 64,
    val_fraction: float = 0.2,
    overlap: float = 0.25,
    predict_input: str = "",
    device: str = "auto",
    seed: int = 0,
):
    """s2-patch-classifier, any action, on a URI or an upstream Dataset; everything in ``output``."""
    from components.s2_patch_classifier.kfp_runtime import execute, log_scores

    result = execute(input_uri or (input_data.path if input_data else ""), output.path, dict(
        action=action, criterion=criterion, pretrained=pretrained, bands=bands, selected_classes=selected_classes,
        data_aug=data_aug, simplified=simplified, batch_size=batch_size, epochs=epochs, patch_size=patch_size,
        lr=lr, model_format=model_format, model_file=model_file, quantize=quantize,
        pretrained_weights=pretrained_weights,
        pretrain_epochs=pretrain_epochs, encoder=encoder, width=width, val_fraction=val_fraction,
        overlap=overlap, predict_input=predict_input, device=device, seed=seed))
    log_scores(result, metrics, confusion, report)


@dsl.component(base_image=ML_IMAGE, install_kfp_package=False)
def extract_patches(
    patches: Output[Dataset],
    tiles_uri: str = "",
    tiles: Input[Dataset] = None,
    bands: str = "",
    selected_classes: str = "1",
    simplified: bool = False,
    patch_size: int = 256,
    seed: int = 0,
):
    """Labelled tiles (S2 bands + label rasters or COCO) cut into patches with their statistics."""
    from components.s2_patch_classifier.kfp_runtime import execute

    result = execute(tiles_uri or (tiles.path if tiles else ""), patches.path, dict(
        action="extract_data", bands=bands, selected_classes=selected_classes, simplified=simplified,
        patch_size=patch_size, seed=seed))
    patches.metadata.update(result.scores)


@dsl.component(base_image=ML_IMAGE, install_kfp_package=False)
def pretrain_encoder(
    patches: Input[Dataset],
    encoder_weights: Output[Model],
    metrics: Output[Metrics],
    epochs: int = 20,
    pretrain_epochs: int = 0,
    batch_size: int = 2,
    lr: float = 0.0001,
    encoder: str = "resnet50",
    width: int = 64,
    device: str = "auto",
    seed: int = 0,
):
    """Self-supervised pre-training (MoCo v2) of the ResNet encoder on the patches, labels unused."""
    from components.s2_patch_classifier.kfp_runtime import execute, log_pretrain

    result = execute(patches.path, encoder_weights.path, dict(
        action="pretrain", epochs=epochs, pretrain_epochs=pretrain_epochs, batch_size=batch_size, lr=lr,
        encoder=encoder, width=width, device=device, seed=seed))
    log_pretrain(result, encoder_weights, metrics)


@dsl.component(base_image=ML_IMAGE, install_kfp_package=False)
def train_model(
    patches: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[HTML],
    pretrained_encoder: Input[Model] = None,
    criterion: str = "cross_entropy",
    pretrained: bool = False,
    bands: str = "",
    selected_classes: str = "1",
    data_aug: bool = False,
    batch_size: int = 2,
    epochs: int = 20,
    patch_size: int = 256,
    lr: float = 0.0001,
    model_format: str = "pytorch",
    model_file: str = "",
    quantize: str = "none",
    encoder: str = "resnet50",
    width: int = 64,
    val_fraction: float = 0.2,
    device: str = "auto",
    seed: int = 0,
):
    """U-Net training on the patches; IoU/F1 per class and the confusion matrix to the UI."""
    from components.s2_patch_classifier.kfp_runtime import execute, log_scores

    result = execute(patches.path, model.path, dict(
        action="train", criterion=criterion, pretrained=pretrained, bands=bands, selected_classes=selected_classes,
        data_aug=data_aug, batch_size=batch_size, epochs=epochs, patch_size=patch_size, lr=lr,
        model_format=model_format, model_file=model_file, quantize=quantize,
        pretrained_weights=pretrained_encoder.path if (pretrained and pretrained_encoder) else "",
        encoder=encoder, width=width, val_fraction=val_fraction, device=device, seed=seed))
    model.metadata.update({"framework": model_format, "file": result.model.rsplit("/", 1)[-1]})
    log_scores(result, metrics, confusion, report)


@dsl.component(base_image=ML_IMAGE, install_kfp_package=False)
def predict_tiles(
    model: Input[Model],
    classes: Output[Dataset],
    quicklook: Output[HTML],
    tiles_uri: str = "",
    tiles: Input[Dataset] = None,
    overlap: float = 0.25,
    device: str = "auto",
):
    """Sliding-window classification of tiles: class-map COGs with colour table, STAC items."""
    from components.s2_patch_classifier.kfp_runtime import execute, predict_report

    result = execute(tiles_uri or (tiles.path if tiles else ""), classes.path, dict(
        action="predict", model_file=model.path, overlap=overlap, device=device))
    predict_report(result, classes, quicklook)
