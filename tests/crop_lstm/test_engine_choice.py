"""tile_classifier's device choice: PyTorch on the GPU whenever CUDA is present (auto and torch),
ONNX Runtime on the CPU otherwise; the choice made here is the one a GPU node makes."""

from __future__ import annotations

import pytest
import torch

from components.crop_lstm.classify_service import choose_engine


@pytest.mark.parametrize("engine, cuda, expected", [
    ("auto", True, ("torch", "cuda")),
    ("auto", False, ("onnxruntime", "cpu")),
    ("torch", True, ("torch", "cuda")),
    ("torch", False, ("torch", "cpu")),
    ("onnxruntime", True, ("onnxruntime", "cpu")),
    ("onnxruntime", False, ("onnxruntime", "cpu")),
])
def test_engine_and_device(engine, cuda, expected):
    assert choose_engine(engine, cuda) == expected


def test_this_machine():
    kind, device = choose_engine("auto", torch.cuda.is_available())
    assert (kind, device) == (("torch", "cuda") if torch.cuda.is_available() else ("onnxruntime", "cpu"))
