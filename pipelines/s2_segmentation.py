"""``s2_segmentation``: pixel classification of Sentinel-2 tiles with s2-patch-classifier.

extract patches -> (if ``pretrained``) self-supervised pre-training of the encoder -> training
on a GPU node (``pipelines.gpu.on_gpu``) -> sliding-window prediction of new tiles. Training
logs IoU and F1 per class, the confusion matrix and a report to the Kubeflow UI.
"""

from kfp import dsl

from components.common.kfp_signature import pipeline_params
from components.s2_patch_classifier.component import extract_patches, predict_tiles, pretrain_encoder, train_model
from pipelines.cluster import step
from pipelines.gpu import on_gpu

# host memory of a training step: the patch set is held in memory (8-bit patches; a large set of
# 256-px patches is a few GiB) beside the CUDA context
GPU_TRAINING_MEMORY = ("8Gi", "16Gi")


def _predict(model, tiles_uri, params):
    task = predict_tiles(model=model, tiles_uri=tiles_uri, **params.of(predict_tiles))
    return step(task, "predict", cpu="4", memory=("4Gi", "8Gi"))


@dsl.pipeline(name="s2-segmentation", description="Train a U-Net (ResNet-50 encoder, optional self-supervised "
              "pre-training) on labelled Sentinel-2 tiles and classify new tiles with it.")
# the steps' parameters; the model file is the training step's output, the device left at "auto"
@pipeline_params(extract_patches, pretrain_encoder, train_model, predict_tiles, exclude=("model_file", "device"))
def s2_segmentation(train_tiles: str, predict_tiles_uri: str, params):
    extract = extract_patches(tiles_uri=train_tiles, **params.of(extract_patches))
    step(extract, "extract patches", cpu="2", memory=("2Gi", "8Gi"))
    patches = extract.outputs["patches"]
    # kfp.local cannot merge artifacts of two branches (dsl.OneOf), so each branch predicts
    with dsl.If(params["pretrained"] == True):  # noqa: E712 - a KFP condition, not a Python comparison
        pre = pretrain_encoder(patches=patches, **params.of(pretrain_encoder))
        on_gpu(step(pre, "self-supervised pre-training", memory=GPU_TRAINING_MEMORY))
        fine = train_model(patches=patches, pretrained_encoder=pre.outputs["encoder_weights"],
                           **params.of(train_model, pretrained=True))
        on_gpu(step(fine, "train (pre-trained encoder)", memory=GPU_TRAINING_MEMORY))
        _predict(fine.outputs["model"], predict_tiles_uri, params)
    with dsl.Else():
        scratch = train_model(patches=patches, **params.of(train_model, pretrained=False))
        on_gpu(step(scratch, "train", memory=GPU_TRAINING_MEMORY))
        _predict(scratch.outputs["model"], predict_tiles_uri, params)

