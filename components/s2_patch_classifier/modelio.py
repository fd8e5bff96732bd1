"""Model files: PyTorch (``.pt``: a dict of plain types and tensors, read with
``weights_only=True``) or ONNX (``.onnx``: the network followed by a softmax, taking raw band
values, with the same metadata as JSON in ``metadata_props["s2_patch_classifier"]``).

The metadata keeps everything prediction needs: the architecture, the band order, the classes
(label values, 0 = background), the patch size, the normalisation statistics and the colours.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from components import __version__
from components.common.errors import ServiceError

from .model import Arch, UNet, build

MODEL_FORMAT = "s2-patch-classifier-model"
ENCODER_FORMAT = "s2-patch-classifier-encoder"
META_KEY = "s2_patch_classifier"
SUFFIX = {"pytorch": ".pt", "onnx": ".onnx"}

# Class colours: background black, then well-separated hues; the simplified SEN12MS scheme has
# land-cover colours of its own.
PALETTE = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
           (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195)]
SIMPLIFIED_PALETTE = {1: (0, 100, 0), 2: (180, 150, 80), 3: (220, 200, 90), 4: (160, 220, 110), 5: (0, 150, 160),
                      6: (240, 220, 0), 7: (200, 0, 0), 8: (250, 250, 250), 9: (170, 170, 170), 10: (0, 60, 220)}


def colours(classes: list[int], simplified: bool) -> list[list[int]]:
    out = []
    for i, c in enumerate(classes):
        if simplified and c in SIMPLIFIED_PALETTE:
            out.append(list(SIMPLIFIED_PALETTE[c]))
        else:
            out.append(list(PALETTE[i % len(PALETTE)]) if i else [0, 0, 0])
    return out


def save_pytorch(path: Path, model: UNet, meta: dict) -> Path:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": MODEL_FORMAT, "meta": meta, "state_dict": state}, path)
    return path


def save_encoder(path: Path, model, meta: dict) -> Path:
    """A self-supervised encoder checkpoint (``-action pretrain``)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": ENCODER_FORMAT, "meta": meta, "state_dict": state}, path)
    return path


def _load(path: Path, kind: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ServiceError(f"model file not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not our file"
        raise ServiceError(f"{path.name} is not a PyTorch model file of this service "
                           f"({' '.join(str(e).split())[:120]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != kind:
        what = "an encoder checkpoint from --action pretrain" if kind == ENCODER_FORMAT else "a model from train"
        raise ServiceError(f"{path.name} is not {what}")
    return ckpt


def load_pytorch(path: Path) -> tuple[UNet, dict]:
    ckpt = _load(path, MODEL_FORMAT)
    meta = ckpt["meta"]
    model = build(Arch(**meta["arch"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), meta


def load_encoder(path: Path) -> tuple[dict, dict]:
    ckpt = _load(path, ENCODER_FORMAT)
    return ckpt["state_dict"], ckpt["meta"]


def read_meta(path: Path) -> dict:
    """The metadata of a PyTorch or ONNX model file."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        import onnx

        if not path.is_file():
            raise ServiceError(f"model file not found: {path}")
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # noqa: BLE001
            raise ServiceError(f"{path.name} is not a readable ONNX file ({' '.join(str(e).split())[:120]})") from None
        props = {p.key: p.value for p in proto.metadata_props}
        if META_KEY not in props:
            raise ServiceError(f"{path.name} is an ONNX file without this service's metadata (bands, classes)")
        return json.loads(props[META_KEY])
    return _load(path, MODEL_FORMAT)["meta"]


def base_meta(arch: Arch, bands, classes, patch_size: int, stats: dict, simplified: bool) -> dict:
    return {"service_version": __version__, "arch": arch.as_dict(), "bands": list(bands), "classes": list(classes),
            "patch_size": patch_size, "stats": stats, "simplified": simplified,
            "colours": colours(list(classes), simplified)}
