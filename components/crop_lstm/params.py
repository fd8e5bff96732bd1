"""Parameters of ``train_lstm`` (seed D5.2 section 3.2.4, Table 10) and ``tile_classifier``
(section 3.2.5), declared once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from components.common.errors import InvalidParameter
from components.common.params import ServiceParams, param


@dataclass(frozen=True)
class TrainParams(ServiceParams):
    n_epochs: int = param(50, "Number of epochs to update the internal model parameters (> 1)",
                          minimum=1, exclusive_minimum=True)
    batch_size: int = param(32, "Number of samples per update: a power of 2 greater than 2")
    class_weights: int = param(0, "1: weight each class by the inverse of its a-priori probability in the "
                               "training set; 0: not used", minimum=0, maximum=1)
    learning_rate: float = param(1e-3, "Step size of the optimiser (Adam): 0 < learning_rate < 1",
                                 minimum=0, exclusive_minimum=True)
    val: Optional[str] = param(None, "Folder holding a validation set: <name>.npy and y_<name>.npy "
                               "(val.npy and y_val.npy as timesen2crop writes them)")
    hidden_size: int = param(64, "LSTM units per layer", minimum=1, maximum=2048)
    num_layers: int = param(2, "Stacked LSTM layers", minimum=1, maximum=8)
    dropout: float = param(0.2, "Dropout between LSTM layers and before the classifier", minimum=0, maximum=0.9)
    bidirectional: bool = param(False, "Bidirectional LSTM")
    seed: int = param(0, "Random seed of the initial weights and the shuffling", minimum=0)
    device: Literal["auto", "cpu", "cuda"] = param("auto", "Training device: auto uses the GPU when one is present")
    batch_scaling: int = param(1, "Larger-batch mode for an idle GPU: train with batch_size x this (a power of 2) "
                               "and learning_rate x its square root; 1 = batch_size and learning_rate as given",
                               minimum=1, maximum=1024)
    model_name: str = param("crop_lstm", "Base name of the model files (<name>.h5, <name>.onnx)")

    def __post_init__(self):
        b = self.batch_size
        if isinstance(b, int) and (b <= 2 or b & (b - 1)):
            raise InvalidParameter("batch_size", b, "a power of 2 greater than 2 (4, 8, 16, 32, ...)")
        k = self.batch_scaling
        if isinstance(k, int) and k & (k - 1):
            raise InvalidParameter("batch_scaling", k, "a power of 2 (1 = off, 2, 4, ..., 1024)")
        if isinstance(self.learning_rate, (int, float)) and self.learning_rate >= 1:
            raise InvalidParameter("learning_rate", self.learning_rate, "a number > 0 and < 1")
        name = self.model_name.strip()
        if not name or any(c in name for c in "/\\") or name.startswith("."):
            raise InvalidParameter("model_name", self.model_name, "a file name without folders")
        super().__post_init__()


@dataclass(frozen=True)
class ClassifyParams(ServiceParams):
    majority_size: int = param(3, "Morphological post-processing: window (pixels, odd) of the majority filter "
                               "that replaces each class label by the most frequent one around it; 1 = off",
                               minimum=1, maximum=31)
    min_region_px: int = param(0, "Morphological post-processing: connected regions of one class smaller than "
                               "this many pixels are merged into their largest neighbour (sieve); 0 = off",
                               minimum=0)
    connectivity: Literal["4", "8"] = param("8", "Pixel connectivity of the regions of min_region_px")
    block_size: int = param(512, "Rows and columns classified at a time (bounds memory)", minimum=64, maximum=8192)
    batch_pixels: int = param(256, "Pixels per inference call on the CPU (on a GPU: at least 262144)",
                              minimum=1, maximum=4194304)
    engine: Literal["auto", "onnxruntime", "torch"] = param(
        "auto", "Inference engine: auto = PyTorch on a CUDA GPU when present, else ONNX Runtime on the CPU")
    threads: int = param(0, "Parallel CPU inference threads (0: one per CPU)", minimum=0)

    def __post_init__(self):
        if isinstance(self.majority_size, int) and self.majority_size % 2 == 0:
            raise InvalidParameter("majority_size", self.majority_size, "an odd number (1 = off, 3, 5, ...)")
        super().__post_init__()
