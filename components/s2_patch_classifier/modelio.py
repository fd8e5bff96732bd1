"""Model files: PyTorch (``.pt``: a dict of plain types and tensors, read with
``weights_only=True``) or ONNX (``.onnx``: the network followed by a softmax, taking raw band
values, with the same metadata as JSON in ``metadata_props["s2_patch_classifier"]``).

The metadata keeps everything prediction needs: the architecture (and ``members``, the networks of
an ensemble), the band order, the classes (label values, 0 = background), the patch size, the
normalisation statistics, the colours, the unit of the input values (``input_unit``, :mod:`.units`;
absent from files of earlier versions), and with ``--dark_object`` the reference dark levels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from components import __version__
from components.common.errors import ServiceError
from components.common.modelfile import first_words, integer, load_weights, read_torch_file

from . import units
from .model import ENCODER_BLOCKS, Arch, Ensemble, UNet, build

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


def save_pytorch(path: Path, model: UNet | Ensemble, meta: dict) -> Path:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": MODEL_FORMAT, "meta": meta, "state_dict": state}, path)
    return path


def save_encoder(path: Path, model, meta: dict) -> Path:
    """A self-supervised encoder checkpoint (``-action pretrain``)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": ENCODER_FORMAT, "meta": meta, "state_dict": state}, path)
    return path


WHAT = {MODEL_FORMAT: "a PyTorch model file of this service", ENCODER_FORMAT: "an encoder checkpoint of this service"}
KIND = {MODEL_FORMAT: "a model from train", ENCODER_FORMAT: "an encoder checkpoint from --action pretrain"}
OTHER_FORMATS = {"aqgan-model": "an aqgan model (aqgan-train)", "eo-kfp-services.crop-lstm": "a crop-type LSTM model"}
MIN_WIDTH, MAX_WIDTH = 4, 128  # the encoder widths the service trains (--width)
MAX_MEMBERS = 8  # networks of an ensemble (--ensemble)
MODEL_META_KEYS = ("arch", "bands", "classes", "patch_size", "stats", "colours")
ENCODER_META_KEYS = ("bands", "encoder", "width", "stats")


def _existing(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ServiceError(f"model file not found: {path}")
    if path.stat().st_size == 0:
        raise ServiceError(f"{path.name} is empty (0 bytes): not a model file")
    return path


def _load(path: Path, kind: str) -> dict:
    """The checkpoint dict of a file written by :func:`save_pytorch` or :func:`save_encoder`, read
    with ``weights_only=True`` (tensors and plain data: a file from elsewhere cannot run code)."""
    path = _existing(path)
    ckpt = read_torch_file(path, WHAT[kind])
    what = WHAT[kind]
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt != kind:
        if fmt in KIND:
            raise ServiceError(f"{path.name} is {KIND[fmt]}, not {KIND[kind]}")
        if fmt in OTHER_FORMATS:
            raise ServiceError(f"{path.name} is {OTHER_FORMATS[fmt]}, not {KIND[kind]}")
        raise ServiceError(f"{path.name} is not {what} (not {KIND[kind]})")
    missing = [k for k in ("meta", "state_dict") if k not in ckpt]
    if missing:
        raise ServiceError(f"{path.name} is incomplete: no {', '.join(repr(k) for k in missing)}")
    return ckpt


def _fail(path: Path, problem: str):
    raise ServiceError(f"{Path(path).name}: {problem}")


def _require(meta, keys, path: Path) -> dict:
    if not isinstance(meta, dict):
        _fail(path, "its metadata is not a table")
    missing = [k for k in keys if k not in meta]
    if missing:
        raise ServiceError(f"{Path(path).name} is incomplete: its metadata has no "
                           f"{', '.join(repr(k) for k in missing)}")
    return meta


def _encoder_name(value, path: Path) -> str:
    if value not in ENCODER_BLOCKS:
        _fail(path, f"unknown encoder {value!r} (known: {', '.join(ENCODER_BLOCKS)})")
    return value


def _bands(value, path: Path, channels: int | None) -> list[str]:
    from components.common.sentinel2 import BAND_NAMES

    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(b, str) for b in value):
        _fail(path, f"bands is {value!r:.80}, not a list of band names")
    for b in value:
        if b not in BAND_NAMES:
            _fail(path, f"unknown band {b!r} (known: {', '.join(BAND_NAMES)})")
    if len(set(value)) != len(value):
        _fail(path, f"bands names a band twice ({', '.join(value)})")
    if channels is not None and len(value) != channels:
        _fail(path, f"{len(value)} bands ({', '.join(value)}) for {channels} input channels")
    return list(value)


def _stats(value, path: Path, n: int) -> dict:
    if not isinstance(value, dict):
        _fail(path, "stats is not a table of normalisation statistics")
    for key in ("low", "high", "mean", "std"):
        v = value.get(key)
        if not isinstance(v, (list, tuple)):
            _fail(path, f"stats.{key} is missing or not a list")
        if len(v) != n:
            _fail(path, f"stats.{key} has {len(v)} values for {n} bands")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
            _fail(path, f"stats.{key} holds values that are not finite numbers")
    if any(s <= 0 for s in value["std"]):
        _fail(path, "stats.std holds a standard deviation <= 0")
    return value


def check_meta(meta, path: Path) -> dict:
    """The metadata of a model (PyTorch or ONNX), checked: known architecture, Sentinel-2 bands
    matching its input channels, classes matching its outputs, a patch size the service uses,
    statistics and colours for every band and class. Returns it; a problem is a ServiceError."""
    from .params import PATCH_SIZES

    _require(meta, MODEL_META_KEYS, path)
    arch = _require(meta["arch"], ("in_channels", "num_classes", "encoder", "width"), path)
    unknown = sorted(set(arch) - {"in_channels", "num_classes", "encoder", "width", "indices"})
    if unknown:
        _fail(path, f"arch has unknown keys {', '.join(unknown)}")
    n = integer(arch["in_channels"], path, "arch.in_channels", 1, 13)
    indices = arch.get("indices", [])
    if not isinstance(indices, (list, tuple)) or not all(
            isinstance(pair, (list, tuple)) and len(pair) == 2 and
            all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in pair) for pair in indices):
        _fail(path, f"arch.indices is {indices!r:.80}, not a list of band position pairs below {n}")
    k = integer(arch["num_classes"], path, "arch.num_classes", 2, 256)
    _encoder_name(arch["encoder"], path)
    integer(arch["width"], path, "arch.width", MIN_WIDTH, MAX_WIDTH)
    _bands(meta["bands"], path, n)
    classes = meta["classes"]
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, int) and not isinstance(c, bool)
                                                         and 0 <= c <= 255 for c in classes):
        _fail(path, f"classes is {classes!r:.80}, not a list of class ids 0-255")
    if len(classes) != k:
        _fail(path, f"{len(classes)} classes for {k} network outputs")
    if classes[0] != 0 or len(set(classes)) != len(classes):
        _fail(path, f"classes {classes} must start with background 0 and name each class once")
    if meta["patch_size"] not in PATCH_SIZES or isinstance(meta["patch_size"], bool):
        _fail(path, f"patch size {meta['patch_size']!r} is not one of {', '.join(map(str, PATCH_SIZES))}")
    _stats(meta["stats"], path, n)
    if "input_unit" in meta and units.problem(meta["input_unit"]):
        _fail(path, f"input_unit {units.problem(meta['input_unit'])}")
    if "members" in meta:
        integer(meta["members"], path, "members", 1, MAX_MEMBERS)
    if "dark_object" in meta:
        _dark_object(meta["dark_object"], path, n)
    colours = meta["colours"]
    if not isinstance(colours, (list, tuple)) or len(colours) != k or not all(
            isinstance(c, (list, tuple)) and len(c) in (3, 4) and
            all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c) for c in colours):
        _fail(path, f"colours is not one RGB colour (0-255) per class ({k} classes)")
    return meta


def _dark_object(value, path: Path, n: int) -> None:
    from .radiometry import DARK_PERCENTILE

    if not isinstance(value, dict) or value.get("percentile") != DARK_PERCENTILE:
        _fail(path, f"dark_object is {value!r:.80}, not the dark levels of the {DARK_PERCENTILE:g}th percentile")
    levels = value.get("levels")
    if not isinstance(levels, (list, tuple)) or len(levels) != n or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in levels):
        _fail(path, f"dark_object.levels is {levels!r:.80}, not {n} finite numbers (one per band)")


def _describe(arch: Arch) -> str:
    return f"{arch.encoder}, width {arch.width}, {arch.in_channels} bands, {arch.num_classes} classes"


def load_pytorch(path: Path) -> tuple[UNet | Ensemble, dict]:
    """The model of a file written by ``train`` (in eval mode) and its checked metadata."""
    ckpt = _load(path, MODEL_FORMAT)
    meta = check_meta(ckpt["meta"], path)
    arch = Arch(**meta["arch"])
    members = meta.get("members", 1)
    model = build(arch, members)
    load_weights(model, ckpt["state_dict"], path, "model",
                 _describe(arch) + (f", an ensemble of {members}" if members > 1 else ""))
    return model.eval(), meta


def load_encoder(path: Path) -> tuple[dict, dict]:
    """The weights (a ResNetEncoder state dict, checked against the architecture its metadata
    records) and metadata of an encoder checkpoint of ``--action pretrain``."""
    from .model import ResNetEncoder

    ckpt = _load(path, ENCODER_FORMAT)
    meta = _require(ckpt["meta"], ENCODER_META_KEYS, path)
    encoder = _encoder_name(meta["encoder"], path)
    width = integer(meta["width"], path, "width", MIN_WIDTH, MAX_WIDTH)
    channels = meta.get("in_channels")
    if channels is not None:
        integer(channels, path, "in_channels", 1, 13)
    bands = _bands(meta["bands"], path, channels)
    _stats(meta["stats"], path, len(bands))
    if not isinstance(meta.get("dark_object", False), bool):
        _fail(path, f"dark_object {meta['dark_object']!r} is not true or false")
    if "input_unit" in meta and units.problem(meta["input_unit"]):
        _fail(path, f"input_unit {units.problem(meta['input_unit'])}")
    load_weights(ResNetEncoder(len(bands), encoder, width), ckpt["state_dict"], path, "encoder",
                 f"{encoder}, width {width}, {len(bands)} bands")
    return ckpt["state_dict"], meta


def read_meta(path: Path) -> dict:
    """The checked metadata of a PyTorch or ONNX model file; for ONNX, also the graph's input and
    output checked against it (bands, window size, classes)."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        return load_pytorch(path)[1]
    import onnx

    path = _existing(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf decoding errors of any kind
        raise ServiceError(f"{path.name} is not a readable ONNX file ({first_words(e)})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in props:
        raise ServiceError(f"{path.name} is an ONNX file without this service's metadata (bands, classes)")
    try:
        meta = json.loads(props[META_KEY])
    except ValueError:
        raise ServiceError(f"{path.name}: its metadata ({META_KEY}) is not readable JSON") from None
    check_meta(meta, path)
    _check_graph(proto, meta, path)
    return meta


def _dims(value_info) -> list:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def _check_graph(proto, meta: dict, path: Path) -> None:
    graph = proto.graph
    initialisers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if len(inputs) != 1 or not graph.output:
        _fail(path, f"the ONNX graph has {len(inputs)} inputs and {len(graph.output)} outputs, not one of each")
    bands, patch, k = meta["bands"], meta["patch_size"], len(meta["classes"])
    dims = _dims(inputs[0])
    if len(dims) != 4:
        _fail(path, f"the ONNX graph takes a {len(dims)}-D input, not windows (batch, bands, rows, cols)")
    if dims[1] is not None and dims[1] != len(bands):
        _fail(path, f"the ONNX graph takes {dims[1]} bands, its metadata lists {len(bands)} ({', '.join(bands)})")
    if any(d is not None and d != patch for d in dims[2:]):
        _fail(path, f"the ONNX graph takes {dims[2]}x{dims[3]} px windows, its metadata says {patch}")
    out = _dims(graph.output[0])
    if len(out) == 4 and out[1] is not None and out[1] != k:
        _fail(path, f"the ONNX graph gives {out[1]} classes, its metadata lists {k}")


def base_meta(arch: Arch, bands, classes, patch_size: int, stats: dict, simplified: bool, members: int = 1,
              unit: str = units.UNIT) -> dict:
    """``unit``: what the model's input values are (:mod:`.units`), checked at prediction."""
    meta = {"service_version": __version__, "arch": arch.as_dict(), "bands": list(bands), "classes": list(classes),
            "patch_size": patch_size, "stats": stats, "simplified": simplified,
            "colours": colours(list(classes), simplified), "input_unit": unit}
    if members > 1:  # single networks keep the keys their files always had
        meta["members"] = members
    return meta
