"""``s2_segmentation``: pixel classification of Sentinel-2 tiles with s2-patch-classifier.

extract patches -> (if ``pretrained``) self-supervised pre-training of the encoder -> training
on a GPU node (``pipelines.gpu.on_gpu``) -> sliding-window prediction of new tiles. Training
logs IoU and F1 per class, the confusion matrix and a report to the Kubeflow UI.
"""

from kfp import dsl

from components.s2_patch_classifier.component import extract_patches, predict_tiles, pretrain_encoder, train_model
from pipelines.gpu import on_gpu


def _predict(model, tiles_uri, overlap):
    task = predict_tiles(model=model, tiles_uri=tiles_uri, overlap=overlap)
    task.set_display_name("predict")
    task.set_cpu_limit("4").set_memory_request("4Gi").set_memory_limit("8Gi")
    return task


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
    extract.set_display_name("extract patches")
    extract.set_cpu_limit("2").set_memory_request("2Gi").set_memory_limit("8Gi")
    common = dict(patches=extract.outputs["patches"], criterion=criterion, bands=bands,
                  selected_classes=selected_classes, data_aug=data_aug, batch_size=batch_size, epochs=epochs,
                  patch_size=patch_size, lr=lr, model_format=model_format, quantize=quantize, encoder=encoder, width=width,
                  val_fraction=val_fraction, seed=seed)
    # kfp.local cannot merge artifacts of two branches (dsl.OneOf), so each branch predicts
    with dsl.If(pretrained == True):  # noqa: E712 - a KFP condition, not a Python comparison
        pre = pretrain_encoder(patches=extract.outputs["patches"], epochs=epochs, pretrain_epochs=pretrain_epochs,
                               batch_size=batch_size, lr=lr, encoder=encoder, width=width, seed=seed)
        pre.set_display_name("self-supervised pre-training")
        on_gpu(pre)
        fine = train_model(pretrained=True, pretrained_encoder=pre.outputs["encoder_weights"], **common)
        fine.set_display_name("train (pre-trained encoder)")
        on_gpu(fine)
        _predict(fine.outputs["model"], predict_tiles_uri, overlap)
    with dsl.Else():
        scratch = train_model(pretrained=False, **common)
        scratch.set_display_name("train")
        on_gpu(scratch)
        _predict(scratch.outputs["model"], predict_tiles_uri, overlap)

