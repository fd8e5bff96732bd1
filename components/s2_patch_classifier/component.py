"""The Kubeflow Pipelines components of s2-patch-classifier: lightweight Python components on the
project's ML image (which carries kfp, torch and this package; nothing is installed at start).

- ``s2_patch_classifier``: the whole service, every parameter of ``S2PatchClassifierParams``
  (generated from it by ``components.common.kfp_signature``), any ``action``;
- one component per step for pipelines, each taking the parameters of its step (the ``include``
  list), generated the same way: ``extract_patches`` -> ``pretrain_encoder`` -> ``train_model`` ->
  ``predict_tiles``. Training logs its scores to the Kubeflow UI: IoU and F1 per class
  (``Metrics``), the confusion matrix (``ClassificationMetrics``) and a small HTML report.

Lists are comma-separated strings and an empty string means "not given". Tiles come as a URI
(``tiles_uri``: local path or s3://) or as a Dataset from an upstream step. (No postponed
annotations here: KFP reads the real annotation objects.)
"""

from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.common.kfp_signature import params_component
from components.images import ML_IMAGE
from components.s2_patch_classifier.params import S2PatchClassifierParams


def _s2_patch_classifier(output: Output[Dataset], metrics: Output[Metrics], confusion: Output[ClassificationMetrics],
                         report: Output[HTML], input_uri: str = "", input_data: Input[Dataset] = None, *,
                         params: dict):
    """s2-patch-classifier, any action, on a URI or an upstream Dataset; everything in ``output``."""
    from components.s2_patch_classifier.kfp_runtime import execute, log_scores

    result = execute(input_uri or (input_data.path if input_data else ""), output.path, params)
    log_scores(result, metrics, confusion, report)


def _extract_patches(patches: Output[Dataset], tiles_uri: str = "", tiles: Input[Dataset] = None, *, params: dict):
    """Labelled tiles (S2 bands + label rasters or COCO) cut into patches with their statistics."""
    from components.s2_patch_classifier.kfp_runtime import execute

    result = execute(tiles_uri or (tiles.path if tiles else ""), patches.path, dict(params, action="extract_data"))
    patches.metadata.update(result.scores)


def _pretrain_encoder(patches: Input[Dataset], encoder_weights: Output[Model], metrics: Output[Metrics], *,
                      params: dict):
    """Self-supervised pre-training (MoCo v2) of the ResNet encoder on the patches, labels unused."""
    from components.s2_patch_classifier.kfp_runtime import execute, log_pretrain

    result = execute(patches.path, encoder_weights.path, dict(params, action="pretrain"))
    log_pretrain(result, encoder_weights, metrics)


def _train_model(patches: Input[Dataset], model: Output[Model], metrics: Output[Metrics],
                 confusion: Output[ClassificationMetrics], report: Output[HTML],
                 pretrained_encoder: Input[Model] = None, *, params: dict):
    """U-Net training on the patches; IoU/F1 per class and the confusion matrix to the UI."""
    from components.s2_patch_classifier.kfp_runtime import execute, log_scores

    use_encoder = params["pretrained"] and pretrained_encoder
    result = execute(patches.path, model.path, dict(
        params, action="train", pretrained_weights=pretrained_encoder.path if use_encoder else ""))
    model.metadata.update({"framework": params["model_format"], "file": result.model.rsplit("/", 1)[-1]})
    log_scores(result, metrics, confusion, report)


def _predict_tiles(model: Input[Model], classes: Output[Dataset], quicklook: Output[HTML], tiles_uri: str = "",
                   tiles: Input[Dataset] = None, *, params: dict):
    """Sliding-window classification of tiles: class-map COGs with colour table, STAC items."""
    from components.s2_patch_classifier.kfp_runtime import execute, predict_report

    result = execute(tiles_uri or (tiles.path if tiles else ""), classes.path,
                     dict(params, action="predict", model_file=model.path))
    predict_report(result, classes, quicklook)


def _step(body, *include):
    return params_component(body, S2PatchClassifierParams, base_image=ML_IMAGE, include=include)


s2_patch_classifier = params_component(_s2_patch_classifier, S2PatchClassifierParams, base_image=ML_IMAGE)
extract_patches = _step(_extract_patches, "bands", "selected_classes", "simplified", "patch_size", "patch_stride",
                        "dark_object", "seed")
pretrain_encoder = _step(_pretrain_encoder, "epochs", "pretrain_epochs", "batch_size", "lr", "encoder", "width",
                         "device", "seed")
train_model = _step(_train_model, "criterion", "pretrained", "bands", "selected_classes", "data_aug", "batch_size",
                    "epochs", "patch_size", "lr", "model_format", "model_file", "quantize", "encoder", "width",
                    "val_fraction", "device", "batch_scaling", "indices", "ensemble", "ensemble_windows", "gap_weight",
                    "shore_weight", "head_prior", "restarts", "hard_negatives", "shift", "scale_jitter", "focal_alpha",
                    "dark_object", "seed")
predict_tiles = _step(_predict_tiles, "overlap", "flips", "grow_threshold", "seed_threshold", "split_depth", "device",
                      "engine")
