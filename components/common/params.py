"""Parameters declared once: a frozen dataclass per service, from which the CLI, the KFP
component's inputs and the run record all derive.

Each field is made with :func:`param`, which records the one-line doc, the seed's flag
spellings and numeric bounds. ``Literal`` enumerations are matched case-insensitively and
stored in their canonical spelling; tuples of strings are given as comma-separated lists.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal, get_args, get_origin

from .errors import InvalidParameter


def param(default, doc: str, *, flags: tuple[str, ...] = (), minimum=None, maximum=None,
          choices: tuple[str, ...] | None = None, exclusive_minimum: bool = False):
    """A parameter field: default, one-line doc, extra CLI spellings, bounds, allowed items."""
    meta = {"doc": doc, "flags": flags, "minimum": minimum, "maximum": maximum,
            "choices": choices, "exclusive_minimum": exclusive_minimum}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Spec:
    """What the CLI and the component need to know about one parameter."""

    name: str
    kind: str  # "str" | "float" | "int" | "bool" | "list" | "optional_str"
    default: Any
    doc: str
    flags: tuple[str, ...]
    choices: tuple[str, ...] | None


def _literal_values(tp) -> tuple[str, ...] | None:
    if get_origin(tp) is Literal:
        return tuple(get_args(tp))
    return None


def _kind(tp) -> str:
    if _literal_values(tp) is not None or tp is str:
        return "str"
    if tp is float:
        return "float"
    if tp is bool:
        return "bool"
    if tp is int:
        return "int"
    if get_origin(tp) is tuple:
        return "list"
    if get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and type(None) in get_args(tp):
        return "optional_str"
    raise TypeError(f"unsupported parameter type {tp!r}")


class ServiceParams:
    """Base for every service's parameter dataclass: validation and string parsing."""

    @classmethod
    def specs(cls) -> list[Spec]:
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            choices = _literal_values(tp) or f.metadata.get("choices")
            out.append(Spec(f.name, _kind(tp), f.default, f.metadata.get("doc", ""),
                            tuple(f.metadata.get("flags", ())), choices))
        return out

    @classmethod
    def from_strings(cls, values: dict[str, Any]):
        """Build from CLI or component values (strings, lists or already typed); validates."""
        if not isinstance(values, dict):  # a component's params that are null or a list
            raise InvalidParameter("params", values, "a mapping of parameter names to values")
        known = {s.name: s for s in cls.specs()}
        kwargs = {}
        for name, raw in values.items():
            if name not in known:
                raise InvalidParameter(name, raw, "one of the parameters " + ", ".join(known))
            if raw is None:
                continue
            kwargs[name] = _parse(known[name], raw)
        return cls(**kwargs)

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            tp = hints[f.name]
            allowed = _literal_values(tp)
            if allowed is not None:
                object.__setattr__(self, f.name, _canonical(f.name, value, allowed))
                continue
            choices = f.metadata.get("choices")
            if choices and get_origin(tp) is tuple:
                items = tuple(_canonical(f.name, v, choices) for v in value)
                if not items:
                    raise InvalidParameter(f.name, ",".join(value), "a non-empty list of " + ", ".join(choices))
                if len(set(items)) != len(items):
                    raise InvalidParameter(f.name, ",".join(value), "each item at most once")
                object.__setattr__(self, f.name, items)
            _check_bounds(f, value)

    @classmethod
    def check(cls, name: str, value) -> None:
        """Raise :class:`InvalidParameter` when ``value`` lies outside the bounds declared for the
        parameter ``name`` (for tools that take one parameter on its own, e.g. the benches)."""
        _check_bounds({f.name: f for f in dataclasses.fields(cls)}[name], value)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _canonical(name: str, value, allowed: tuple[str, ...]) -> str:
    for a in allowed:
        if str(value).strip().lower() == str(a).lower():
            return a
    raise InvalidParameter(name, value, "one of " + ", ".join(map(str, allowed)))


def _check_bounds(f: dataclasses.Field, value) -> None:
    # NaN passes every comparison below and inf every minimum: neither is a setting
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidParameter(f.name, value, "a finite number")
    if isinstance(value, int) and not -2 ** 63 <= value < 2 ** 63:  # what torch and NumPy take as an int
        raise InvalidParameter(f.name, value, "an integer of at most 64 bits")
    lo, hi = f.metadata.get("minimum"), f.metadata.get("maximum")
    if lo is None and hi is None or value is None:
        return
    strict = f.metadata.get("exclusive_minimum")
    too_low = lo is not None and (value <= lo if strict else value < lo)
    if too_low or (hi is not None and value > hi):
        lo_text = "" if lo is None else (f"> {lo}" if strict else f">= {lo}")
        hi_text = "" if hi is None else f"<= {hi}"
        raise InvalidParameter(f.name, value, "a number " + " and ".join(t for t in (lo_text, hi_text) if t))


def _parse(spec: Spec, raw):
    if spec.kind == "list":
        if isinstance(raw, str):
            raw = raw.split(",")
        if not isinstance(raw, (list, tuple)) or not all(isinstance(s, str) for s in raw):
            # a component's list of numbers or a scalar: the names are texts, as on the command line
            raise InvalidParameter(spec.name, raw, "a comma-separated text or a list of texts")
        return tuple(s.strip() for s in raw if s.strip())
    if spec.kind in ("float", "int"):
        return _number(spec, raw)
    if spec.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise InvalidParameter(spec.name, raw, "true or false")
    if spec.kind == "optional_str":
        text = str(raw).strip()
        return None if text in ("", "None") else text
    return str(raw)


def _number(spec: Spec, raw):
    """``raw`` (a text, or a component's number) as the parameter's number. True is no number,
    and an int parameter takes no fraction (2.9 epochs are not 2)."""
    allowed = f"a number ({spec.kind})"
    if isinstance(raw, bool):
        raise InvalidParameter(spec.name, raw, allowed)
    try:
        value = float(raw) if spec.kind == "float" else _integer(raw)
    except (TypeError, ValueError, OverflowError):
        raise InvalidParameter(spec.name, raw, allowed) from None
    return value


def _integer(raw) -> int:
    if isinstance(raw, float):
        if not raw.is_integer():
            raise ValueError(raw)
        return int(raw)
    return int(raw)

