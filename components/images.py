"""Container images the components run on (built from images/ by `make images`)."""

from components import __version__

REGISTRY = "ghcr.io/eo-kfp-services"
EO_IMAGE = f"{REGISTRY}/eo:{__version__}"  # GDAL stack + kfp + this package
ML_IMAGE = f"{REGISTRY}/ml:{__version__}"  # the same with CUDA PyTorch, for training and inference
SNAP_IMAGE = f"{REGISTRY}/snap:{__version__}"  # ESA SNAP gpt, for --engine snap
