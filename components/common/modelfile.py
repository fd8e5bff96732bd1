"""Reading PyTorch files given by the user (models, encoder and training checkpoints) safely.

Files are read with ``torch.load(weights_only=True)``: tensors and plain data only, so a file
from elsewhere cannot run code. Whatever is wrong with a file (empty, truncated, another kind of
file, pickled objects, weights that do not fit the architecture it records) is a
:class:`ServiceError` that names the file and the problem in one line.
"""

from __future__ import annotations

import math
import pickle
import re
import warnings
from pathlib import Path

from components.common.errors import ServiceError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_GLOBAL = re.compile(r"unsupported global", re.IGNORECASE)


def first_words(exc: BaseException, limit: int = 120) -> str:
    """The first sentence of an exception's message, on one line."""
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r}" if exc.args else "a key is missing"
    text = " ".join(str(exc).split()) or type(exc).__name__
    cut = text.find(". ")
    text = text[:cut] if cut > 0 else text
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_torch_file(path: Path, what: str):
    """The object in a file written by ``torch.save``; ``what`` ("an aqgan model file") is what
    the file should be, for the messages."""
    import torch

    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(len(HDF5_SIGNATURE))
    except OSError as e:
        raise ServiceError(f"{path.name} cannot be read ({e.strerror or e}): not {what}") from None
    if size == 0:
        raise ServiceError(f"{path.name} is empty (0 bytes): not {what}")
    if head == HDF5_SIGNATURE:
        raise ServiceError(f"{path.name} is an HDF5 file (a crop-type LSTM or Keras model?), not {what}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of foreign files
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if _GLOBAL.search(str(e)):
            raise ServiceError(f"{path.name} holds pickled Python objects (a whole pickled model?), not {what}: "
                               "not loaded, as unpickling it could run code") from None
        raise ServiceError(f"{path.name} is not {what}: not a readable PyTorch file") from None
    except Exception as e:  # noqa: BLE001 - zip, unpickling and storage errors all mean a damaged file
        detail = "" if isinstance(e, OSError) else f": {first_words(e)}"
        raise ServiceError(f"{path.name} is not {what}: not a readable PyTorch file (truncated or "
                           f"corrupt{detail})") from None


def require(state: dict, keys, path: Path) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise ServiceError(f"{Path(path).name} is incomplete: no {', '.join(repr(k) for k in missing)}")


def _few(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def load_weights(module, state, path: Path, label: str, described: str = "") -> None:
    """Load ``state`` into ``module`` (strict); a mismatch is one line summarising the first
    missing, unexpected and mis-shaped weights (``described``: the architecture, for it)."""
    import torch

    name = Path(path).name
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ServiceError(f"{name}: the {label} weights are not a table of named tensors")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ServiceError(f"{name}: the {label} weight {key} is not a tensor ({type(value).__name__})")
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append("missing " + _few(missing))
        if unexpected:
            parts.append("unexpected " + _few(unexpected))
        for k in shapes[:2]:
            parts.append(f"{k} is {list(state[k].shape)}, the architecture needs {list(expected[k].shape)}")
        if len(shapes) > 2:
            parts.append(f"{len(shapes) - 2} more of other shapes")
        arch = f" ({described})" if described else ""
        raise ServiceError(f"{name}: the {label} weights do not match its architecture{arch}: {'; '.join(parts)}")
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ServiceError(f"{name}: non-finite values in weight {key} of the {label}")
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ServiceError(f"{name}: the {label} weights do not load ({first_words(e)})") from None


def integer(value, path: Path, key: str, lo: int, hi: int | None = None) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo and (hi is None or value <= hi)
    if not ok:
        allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ServiceError(f"{Path(path).name}: {key} is {value!r}, not an integer {allowed}")
    return value


def number(value, path: Path, key: str, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
        (value > 0 or not positive)
    if not ok:
        raise ServiceError(f"{Path(path).name}: {key} is {value!r}, not a finite{' positive' if positive else ''} "
                           "number")
    return float(value)
