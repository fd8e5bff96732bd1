"""``s2_segmentation``: pixel classification of Sentinel-2 tiles with s2-patch-classifier.

extract patches -> (if ``pretrained``) self-supervised pre-training of the encoder -> training
on a GPU node (``pipelines.gpu.on_gpu``) -> sliding-window prediction of new tiles. Training
logs IoU and F1 per class, the confusion matrix and a report to the Kubeflow UI.
"""

from kfp import dsl

from components.s2_patch_classifier.component import extract_patches, predict_tiles, pretrain_encoder, train_model
from pipelines.cluster import step
from pipelines.gpu import on_gpu

# host memory of a training step: the patch set is held in memory (8-bit patches; a large set of
# 256-px patches is a few GiB) beside the CUDA context
GPU_TRAINING_MEMORY = ("8Gi", "16Gi")


def _predict(model, tiles_uri, overlap):
    task = predict_tiles(model=model, tiles_uri=tiles_uri, overlap=overlap)
    return step(task, "predict", cpu="4", memory=("4Gi", "8Gi"))


@dsl.pipeline(name="s2-segmentation", description="Train a U-Net (ResNet-50 encoder, optional self-supervised "
              "pre-training) on labelled Sentinel-2 tiles and classify new tiles with it.")
def s2_segmentation(
    train_tiles: str,
    predict_tiles_uri: str,
    pretrained: bool = False,
    bands: str = "",
    selected_classes: str = "1",
    simplified: bool = False,
    criterion: str = "cross_entropy",
    data_aug: bool = False,
    batch_size: int = 2,
    epochs: int = 20,
    pretrain_epochs: int = 0,
    patch_size: int = 256,
    lr: float = 0.0001,
    model_format: str = "pytorch",
    quantize: str = "none",
    encoder: str = "resnet50",
    width: int = 64,
    val_fraction: float = 0.2,
    overlap: float = 0.25,
    seed: int = 0,
):
    extract = extract_patches(tiles_uri=train_tiles, bands=bands, selected_classes=selected_classes,
                              simplified=simplified, patch_size=patch_size, seed=seed)
    step(extract, "extract patches", cpu="2", memory=("2Gi", "8Gi"))
    common = dict(patches=extract.outputs["patches"], criterion=criterion, bands=bands,
                  selected_classes=selected_classes, data_aug=data_aug, batch_size=batch_size, epochs=epochs,
                  patch_size=patch_size, lr=lr, model_format=model_format, quantize=quantize, encoder=encoder, width=width,
                  val_fraction=val_fraction, seed=seed)
    # kfp.local cannot merge artifacts of two branches (dsl.OneOf), so each branch predicts
    with dsl.If(pretrained == True):  # noqa: E712 - a KFP condition, not a Python comparison
        pre = pretrain_encoder(patches=extract.outputs["patches"], epochs=epochs, pretrain_epochs=pretrain_epochs,
                               batch_size=batch_size, lr=lr, encoder=encoder, width=width, seed=seed)
        on_gpu(step(pre, "self-supervised pre-training", memory=GPU_TRAINING_MEMORY))
        fine = train_model(pretrained=True, pretrained_encoder=pre.outputs["encoder_weights"], **common)
        on_gpu(step(fine, "train (pre-trained encoder)", memory=GPU_TRAINING_MEMORY))
        _predict(fine.outputs["model"], predict_tiles_uri, overlap)
    with dsl.Else():
        scratch = train_model(pretrained=False, **common)
        on_gpu(step(scratch, "train", memory=GPU_TRAINING_MEMORY))
        _predict(scratch.outputs["model"], predict_tiles_uri, overlap)

