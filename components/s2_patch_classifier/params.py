"""Parameters of s2-patch-classifier (seed D5.2 section 3.2.1, Table 7), declared once.

Table 7's options keep their seed spellings (``-action``, ``-b/--batch-size``, ``-patch_size``,
...) and defaults. The parameters after ``model_file`` are additions, each with a default that
keeps the seed's behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from components.common.errors import InvalidParameter
from components.common.params import ServiceParams, param
from components.common.sentinel2 import BAND_NAMES, normalise_band

ACTIONS = ("full", "extract_data", "train", "predict", "pretrain")
PATCH_SIZES = (64, 256)
FOCAL_CRITERIA = ("focal_loss", "focal_dice")  # the criteria --focal_alpha balances
# normalised differences (a - b) / (a + b) a model may add to its input (--indices)
INDICES = {"NDWI": ("B3", "B8"), "MNDWI": ("B3", "B11"), "NDVI": ("B8", "B4"), "NDBI": ("B11", "B8")}
SHORE_BANDS = INDICES["NDWI"]  # the water line of --shore_weight: where B3 and B8 cross


@dataclass(frozen=True)
class S2PatchClassifierParams(ServiceParams):
    action: Literal["full", "extract_data", "train", "predict", "pretrain"] = param(
        "", "Action (required): full = extract_data + [pretrain] + train + predict; extract_data cuts "
        "labelled tiles into patches; train fits the U-Net; predict classifies tiles; pretrain trains "
        "the encoder self-supervised on unlabelled tiles", flags=("-action",))
    criterion: Literal["cross_entropy", "focal_loss", "focal_dice"] = param(
        "cross_entropy", "Loss criterion used during training (focal_dice, an addition: focal loss plus a soft Dice "
        "term for small objects)", flags=("-criterion",))
    pretrained: bool = param(False, "Start the encoder from a self-supervised checkpoint "
                             "(--pretrained_weights, or pre-trained first on the input tiles in action full)",
                             flags=("-pretrained",))
    bands: tuple[str, ...] = param((), "Comma-separated S2 bands in model order, any of B1..B12, B8A "
                                   "(B02 spelling accepted); default: every band the tiles share",
                                   flags=("-bands",))
    selected_classes: tuple[str, ...] = param(("1",), "Comma-separated label values (1-255) to learn; "
                                              "other values count as background 0",
                                              flags=("-selected-classes", "--selected-classes", "-selected_classes"))
    data_aug: bool = param(False, "Data augmentation: flips, 90-degree rotations, per-band gain/offset "
                           "jitter and noise", flags=("-data_aug", "--data-aug"))
    simplified: bool = param(False, "Map labels from the 17 IGBP classes (Sen12MS) to the simplified "
                             "10-class scheme before selecting classes", flags=("-simplified",))
    batch_size: int = param(2, "Batch size for training", flags=("-b", "--batch-size", "-batch_size"),
                            minimum=2, maximum=64)
    epochs: int = param(20, "Number of training epochs", flags=("-epochs",), minimum=1, maximum=99)
    patch_size: int = param(256, "Patch size in pixels for training and prediction: 256 or 64",
                            flags=("-patch_size", "--patch-size"))
    lr: float = param(1e-4, "Initial learning rate (Adam, cosine decay)", flags=("-lr",), minimum=0,
                      exclusive_minimum=True, maximum=1.0)
    model_format: Literal["pytorch", "onnx"] = param(
        "pytorch", "Model save format", flags=("-model_format", "--model-format"))
    model_file: Optional[str] = param(
        None, "Model file: the name written by train/full (default model.pt or model.onnx); the "
        "model read by predict (required there)", flags=("-model_file", "--model-file"))
    # ---- additions to Table 7
    quantize: Literal["none", "int8"] = param(
        "none", "With -model_format onnx: int8 static quantization (calibrated on training patches) for "
        "faster CPU inference")
    pretrained_weights: Optional[str] = param(
        None, "Encoder checkpoint written by --action pretrain, loaded when --pretrained true")
    pretrain_epochs: int = param(0, "Epochs of self-supervised pre-training (0: as --epochs)", minimum=0,
                                 maximum=999)
    encoder: Literal["resnet50", "resnet26", "resnet14"] = param(
        "resnet50", "Encoder depth: ResNet-50 (3,4,6,3 bottleneck blocks) or a shallower ResNet")
    width: int = param(64, "Encoder base width (64 = the standard ResNet-50)", minimum=4, maximum=128)
    indices: tuple[str, ...] = param((), "Comma-separated normalised differences added to the model's input, "
                                     "any of NDWI (B3,B8), MNDWI (B3,B11), NDVI (B8,B4), NDBI (B11,B8); their "
                                     "bands must be among the model's")
    dark_object: bool = param(False, "Per-scene haze correction: each band of a tile shifted so that its 2nd "
                              "percentile sits at the training tiles' mean (dark-object subtraction), before patches "
                              "are cut and, by the model that records it, before prediction")
    patch_stride: int = param(0, "Labelled tiles are cut into patches every this many px (0: the patch size, side by "
                              "side; less overlaps them: e.g. 32 with -patch_size 64 gives about 4x the patches, each "
                              "object seen at several places in its window, and an epoch as many times the work)",
                              minimum=0)
    ensemble: int = param(1, "Networks to train from seeds seed, seed + 1, ... on the same patches, saved in one "
                          "model file whose class probabilities are their average (steadier on scenes unlike the "
                          "training ones; this many times the training and prediction work; a network whose validation IoU "
                          "stayed 0 in every epoch is left out); 1 = one network",
                          minimum=1, maximum=8)
    ensemble_windows: Literal["same", "mixed"] = param(
        "same", "mixed: on patches cut with --patch_stride below the patch size, networks 2, 4, ... of the ensemble "
        "train on the side-by-side windows alone, for about as many steps as the others (which train on all the "
        "windows, -epochs epochs): networks that saw the objects at different places in their windows (the better "
        "ensemble on unseen ports, see the README); same: every network on all the patches")
    gap_weight: float = param(
        0.0, "Loss weight on the background between nearby objects of a patch (the U-Net's separation weights "
        "1 + w0 exp(-(d1 + d2)^2 / 2 sigma^2), sigma 8 px; d1, d2 the distances to the two nearest objects): "
        "keeps ships moored a few pixels apart from joining into one; e.g. 10; 0: off", minimum=0.0, maximum=100.0)
    shore_weight: float = param(
        0.0, "Loss weight added on the background along the water line (within 2 px of where NDWI from B3 and B8 "
        "crosses 0, away from objects): quays, groynes and piers, which networks of other ports found as ship-like "
        "as ships, are pushed down; needs bands B3 and B8; e.g. 5 with --head_prior 0.01; 0: off",
        minimum=0.0, maximum=100.0)
    head_prior: float = param(
        0.0, "Probability each foreground class starts at (the output layer's bias; Lin et al.'s prior for the "
        "focal loss, e.g. 0.01): networks on rare classes take off where they may not from the default start "
        "(every class equally likely); 0: the default start", minimum=0.0, maximum=0.5)
    restarts: int = param(
        0, "Start a network again from another seed (seed + 1000, + 2000, ...) when its validation IoU of the "
        "foreground classes is still 0 after a third of the epochs (a run that did not take off: its loss stays "
        "high), up to this many times; the last try runs every epoch; e.g. 2; 0: off", minimum=0, maximum=5)
    hard_negatives: float = param(
        0.0, "Share of each epoch's background draws that go to the background patches in proportion to the "
        "highest foreground probability the network gave them when last drawn (hard negatives: piers, bridges), "
        "the rest uniformly; e.g. 0.5; 0: off", minimum=0.0, maximum=1.0)
    shift: int = param(
        0, "Move each training window by up to this many pixels (rows and columns drawn anew at every draw), "
        "cut from its patch and the neighbouring training patches: objects seen at many places in their window "
        "(better on unseen ports, see the README); below the patch size, e.g. 32 with -patch_size 64; 0: off",
        minimum=0, maximum=255)
    scale_jitter: float = param(
        0.0, "With -data_aug: zoom each training sample about its centre by a factor drawn log-uniformly between "
        "1 / (1 + this) and 1 + this (image bilinearly, labels by nearest neighbour, a margin filled by "
        "reflection): objects seen at other sizes than their own (better on unseen ports, see the README); "
        "e.g. 0.3; 0: off", minimum=0.0, maximum=1.0)
    focal_alpha: float = param(
        0.0, "Balanced focal loss (Lin et al. 2017): the foreground classes' pixels weigh this, the background's "
        "1 minus it; with -criterion focal_loss or focal_dice; e.g. 0.75; 0: off (unweighted)",
        minimum=0.0, maximum=0.99)
    val_fraction: float = param(0.2, "Fraction of the patches held out for validation metrics",
                                minimum=0.0, maximum=0.5)
    overlap: float = param(0.25, "Overlap of neighbouring prediction windows, as a fraction of the patch",
                           minimum=0.0, maximum=0.75)
    flips: bool = param(False, "Average each prediction window's class probabilities over its 8 flips and "
                        "90-degree rotations (test-time augmentation: steadier small objects, 8 times the work)")
    grow_threshold: float = param(
        0.0, "Hysteresis: a pixel where a foreground class has at least this probability joins a neighbouring "
        "object of that class found by the argmax or --seed_threshold (e.g. 0.25 for ships under a focal loss; "
        "0: off)",
        minimum=0.0, maximum=0.5)
    seed_threshold: float = param(
        0.0, "Foreground where the most probable foreground class reaches this probability, even when the "
        "background is more probable (e.g. 0.45 for a model trained with --shore_weight, whose ships sit just "
        "below 0.5; with --grow_threshold these pixels seed the objects); 0: the argmax", minimum=0.0, maximum=1.0)
    split_depth: float = param(
        0.0, "With --grow_threshold: an object grown from several seeds is cut apart between two of them where "
        "the probability between them dips more than this below the lower seed's peak, so that ships moored "
        "side by side, joined by the halo around them, count as separate objects (e.g. 0.2); 0: off",
        minimum=0.0, maximum=1.0)
    predict_input: Optional[str] = param(
        None, "Action full: tiles to classify after training (default: the input tiles)")
    device: Literal["auto", "cpu", "cuda"] = param("auto", "Where to train and predict (auto: CUDA when present)")
    batch_scaling: int = param(1, "Larger-batch training for an idle GPU: batches of batch_size x this and lr x its "
                               "square root (e.g. 8 with -b 16: batches of 128); 1 = as given", minimum=1, maximum=64)
    engine: Literal["auto", "onnxruntime", "openvino", "torch"] = param(
        "auto", "Prediction engine: auto = the fastest keeping the fp32 probabilities to 1e-3 (CPU with "
        "native bf16: OpenVINO bf16, or PyTorch bf16 without OpenVINO, checked on probe windows; other CPUs: "
        "ONNX Runtime, a PyTorch model exported once and cached; CUDA: PyTorch, bf16 under the same check, "
        "else fp32); onnxruntime (fp32); openvino (CPU, bf16 where native, unchecked); torch (PyTorch files, "
        "bf16 where native, unchecked)")
    seed: int = param(0, "Random seed (patch split, initialisation, sampling, augmentation)", minimum=0)

    def __post_init__(self):
        if not self.action:
            raise InvalidParameter("action", "", "one of " + ", ".join(ACTIONS) + " (required)")
        bands = tuple(normalise_band(b) for b in self.bands)
        for b in bands:
            if b not in BAND_NAMES:
                raise InvalidParameter("bands", b, "one of " + ", ".join(BAND_NAMES))
        if len(set(bands)) != len(bands):
            raise InvalidParameter("bands", ",".join(self.bands), "each band at most once")
        object.__setattr__(self, "bands", bands)
        classes = []
        for c in self.selected_classes:
            try:
                value = int(str(c).strip())
            except ValueError:
                value = None
            if value is None or not 1 <= value <= 255:
                raise InvalidParameter("selected_classes", c, "class ids 1-255")
            classes.append(str(value))
        if not classes or len(set(classes)) != len(classes):
            raise InvalidParameter("selected_classes", ",".join(self.selected_classes),
                                   "a non-empty list of distinct class ids 1-255")
        if self.simplified and any(int(c) > 10 for c in classes):
            raise InvalidParameter("selected_classes", ",".join(classes),
                                   "class ids 1-10 of the simplified scheme with --simplified true")
        object.__setattr__(self, "selected_classes", tuple(classes))
        indices = tuple(str(i).strip().upper() for i in self.indices if str(i).strip())
        for i in indices:
            if i not in INDICES:
                raise InvalidParameter("indices", i, "one of " + ", ".join(INDICES))
        if len(set(indices)) != len(indices):
            raise InvalidParameter("indices", ",".join(indices), "each index at most once")
        object.__setattr__(self, "indices", indices)
        if str(self.quantize).lower() == "int8" and str(self.model_format).lower() != "onnx":
            raise InvalidParameter("quantize", self.quantize, "none unless -model_format onnx")
        if self.patch_size not in PATCH_SIZES:
            raise InvalidParameter("patch_size", self.patch_size, "64 or 256")
        if self.ensemble_windows == "mixed" and self.ensemble < 2:
            raise InvalidParameter("ensemble_windows", "mixed", "same unless --ensemble is 2 or more")
        if self.patch_stride > self.patch_size:
            raise InvalidParameter("patch_stride", self.patch_stride,
                                   f"0 or at most the patch size ({self.patch_size}): gaps would leave pixels unseen")
        if self.focal_alpha and self.criterion not in FOCAL_CRITERIA:
            raise InvalidParameter("focal_alpha", self.focal_alpha, "0 unless -criterion is focal_loss or focal_dice")
        if self.seed_threshold and self.grow_threshold > self.seed_threshold:
            raise InvalidParameter("seed_threshold", self.seed_threshold,
                                   f"at least --grow_threshold ({self.grow_threshold}): objects grow from their seeds")
        if self.split_depth and not self.grow_threshold:
            raise InvalidParameter("split_depth", self.split_depth,
                                   "0 unless --grow_threshold is set: only grown objects join several seeds")
        if self.shore_weight and self.bands and not all(b in self.bands for b in SHORE_BANDS):
            raise InvalidParameter("shore_weight", self.shore_weight,
                                   "0 unless -bands holds B3 and B8 (the water line is found with them)")
        if self.shift >= self.patch_size:
            raise InvalidParameter("shift", self.shift, f"below the patch size ({self.patch_size})")
        if self.scale_jitter and not self.data_aug:
            raise InvalidParameter("scale_jitter", self.scale_jitter, "0 unless -data_aug is True (a zoom is an "
                                   "augmentation)")
        super().__post_init__()

    @property
    def classes(self) -> tuple[int, ...]:
        return tuple(int(c) for c in self.selected_classes)
