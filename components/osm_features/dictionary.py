"""The data dictionary of osm-features: feature classes defined by OSM tag filters, a geometry
type and output attributes mapped from tags (``feature_classes.yaml``, documented there).

:func:`load_dictionary` reads and validates a dictionary file; every problem is a
:class:`ServiceError` naming the file, the place in it and what is allowed. A
:class:`Dictionary` then matches OSM tags to classes and maps tags to attributes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import yaml

from components.common.errors import InvalidParameter, ServiceError

BUILTIN = Path(__file__).with_name("feature_classes.yaml")

GEOMETRIES = ("point", "line", "polygon")
ATTRIBUTE_TYPES = ("str", "int", "float", "bool")
ALL = "all"
# Properties every feature carries; attribute names may not reuse them.
RESERVED = ("class", "category", "osm_type", "osm_id", "osm_timestamp")
TOP_LEVEL = ("version", "common_attributes", "classes", "templates")
CLASS_KEYS = ("title", "category", "geometry", "match", "attributes")
RULE_KEYS = ("tags", "except", "closed_ways")
# Keys a rule may not test: libosmium drops ``type`` from areas built from relations.
FORBIDDEN_KEYS = ("type",)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_NUMBER = re.compile(r"^\s*([-+]?\d+(?:[.,]\d+)?)")
_INTEGER = re.compile(r"^\s*([-+]?\d+)(?!\d|[.,]\d)")
_TRUE = ("yes", "true", "1")
_FALSE = ("no", "false", "0")


@dataclass(frozen=True)
class Condition:
    """``key`` present with one of ``values`` (None: any value)."""

    key: str
    values: frozenset[str] | None

    def holds(self, tags: Mapping[str, str]) -> bool:
        value = tags.get(self.key)
        return value is not None and (self.values is None or value in self.values)


@dataclass(frozen=True)
class Rule:
    """One alternative of a class's ``match``: every ``tags`` condition and no ``except`` one."""

    tags: tuple[Condition, ...]
    excluded: tuple[Condition, ...]
    closed_ways: str  # "polygon" | "line"

    def matches(self, tags: Mapping[str, str]) -> bool:
        return all(c.holds(tags) for c in self.tags) and not any(c.holds(tags) for c in self.excluded)


@dataclass(frozen=True)
class Attribute:
    name: str
    tags: tuple[str, ...]
    type: str

    def value(self, tags: Mapping[str, str]):
        for key in self.tags:
            raw = tags.get(key)
            if raw is not None:
                return convert(raw, self.type)
        return None


@dataclass(frozen=True)
class FeatureClass:
    name: str
    title: str
    category: str
    geometry: frozenset[str]
    rules: tuple[Rule, ...]
    attributes: tuple[Attribute, ...]

    def rule_for(self, tags: Mapping[str, str]) -> Rule | None:
        for rule in self.rules:
            if rule.matches(tags):
                return rule
        return None

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(c.key for r in self.rules for c in r.tags)

    def describe(self) -> dict:
        return {"name": self.name, "title": self.title, "category": self.category,
                "geometry": [g for g in GEOMETRIES if g in self.geometry],
                "match": [{"tags": {c.key: sorted(c.values) if c.values else "*" for c in r.tags},
                           **({"except": {c.key: sorted(c.values) if c.values else "*" for c in r.excluded}}
                              if r.excluded else {})} for r in self.rules],
                "attributes": [a.name for a in self.attributes]}


@dataclass(frozen=True)
class Dictionary:
    source: str
    classes: dict[str, FeatureClass]
    common: tuple[Attribute, ...]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.classes)

    def choices_text(self) -> str:
        groups = ", ".join([ALL] + sorted(self.groups))
        return f"feature classes {', '.join(self.classes)}; or groups {groups}"

    def expand(self, names: Iterable[str], parameter: str = "features") -> tuple[str, ...]:
        """Class names for the given class and group names, in dictionary order; an unknown name
        is an :class:`InvalidParameter` listing the valid ones."""
        wanted: set[str] = set()
        given = [str(n).strip() for n in names if str(n).strip()]
        if not given:
            raise InvalidParameter(parameter, "", "a non-empty list of " + self.choices_text())
        for name in given:
            key = name.lower()
            if key == ALL:
                wanted.update(self.classes)
            elif key in self.classes:
                wanted.add(key)
            elif key in self.groups:
                wanted.update(self.groups[key])
            else:
                raise InvalidParameter(parameter, name, self.choices_text())
        return tuple(n for n in self.classes if n in wanted)

    def attribute_names(self, cls: FeatureClass) -> list[str]:
        return list(RESERVED) + [a.name for a in self.common] + [a.name for a in cls.attributes]

    def properties(self, cls: FeatureClass, tags: Mapping[str, str]) -> dict:
        """Mapped attributes (common first, then the class's own) for one object's tags."""
        out = {a.name: a.value(tags) for a in self.common}
        for a in cls.attributes:
            out[a.name] = a.value(tags)
        return out

    def describe(self) -> list[dict]:
        return [c.describe() for c in self.classes.values()]


def convert(raw: str, kind: str):
    """A tag value as the attribute type; None when it cannot be read as that type."""
    if kind == "str":
        return raw
    if kind == "bool":
        text = raw.strip().lower()
        return True if text in _TRUE else False if text in _FALSE else None
    if kind == "int":
        m = _INTEGER.match(raw)
        return int(m.group(1)) if m else None
    m = _NUMBER.match(raw)
    return float(m.group(1).replace(",", ".")) if m else None


# --------------------------------------------------------------------------------------------
# Loading and validation


class _Invalid(Exception):
    """A problem at a place in the dictionary (converted to ServiceError with the file name)."""


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys (PyYAML would silently keep the last one)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise _Invalid(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_dictionary(path: str | Path | None = None) -> Dictionary:
    """Read and validate a dictionary file (the built-in one when ``path`` is None)."""
    path = Path(path) if path else BUILTIN
    return _load_cached(str(path.resolve()) if path.exists() else str(path))


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> Dictionary:
    where = f"feature dictionary {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ServiceError(f"{where} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceError(f"{where} cannot be read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _Invalid as exc:
        raise ServiceError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ServiceError(f"{where} is not valid YAML{at}: {' '.join(str(problem).split())}") from None
    try:
        return _validate(data, path)
    except _Invalid as exc:
        raise ServiceError(f"{where}: {exc}") from None


def _validate(data, source: str) -> Dictionary:
    if not isinstance(data, dict):
        raise _Invalid("the top level must be a mapping with 'classes'")
    _known_keys(data, TOP_LEVEL, "top level")
    if data.get("version", 1) != 1:
        raise _Invalid(f"version: {data.get('version')!r} is not supported (allowed: 1)")
    common = _attributes(data.get("common_attributes") or {}, "common_attributes", reserved=RESERVED)
    classes_data = data.get("classes")
    if not isinstance(classes_data, dict) or not classes_data:
        raise _Invalid("classes: a non-empty mapping of class name -> definition is required")
    common_names = {a.name for a in common}
    classes: dict[str, FeatureClass] = {}
    for name, spec in classes_data.items():
        classes[name] = _feature_class(name, spec, common_names)
    groups: dict[str, list[str]] = {}
    for cls in classes.values():
        groups.setdefault(cls.category, []).append(cls.name)
    for group in groups:
        if group in classes:
            raise _Invalid(f"category {group!r} has the name of a class; group and class names "
                           "must differ")
    return Dictionary(source, classes, common, {g: tuple(v) for g, v in groups.items()})


def _known_keys(data: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise _Invalid(f"{where}: unknown key {key!r} (allowed: {', '.join(allowed)})")


def _name(value, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise _Invalid(f"{where}: {value!r} is not a valid name (lower-case letters, digits and "
                       "underscores, starting with a letter)")
    if value == ALL:
        raise _Invalid(f"{where}: {value!r} is reserved (it selects every class)")
    return value


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"{where}: a non-empty text is required (YAML reads yes/no/on/off and "
                       "numbers as other types: quote them)")
    return value


def _feature_class(name, spec, common_names: set[str]) -> FeatureClass:
    where = f"classes.{name}"
    _name(name, where)
    if not isinstance(spec, dict):
        raise _Invalid(f"{where}: a mapping with {', '.join(CLASS_KEYS)} is required")
    _known_keys(spec, CLASS_KEYS, where)
    for key in ("title", "category", "geometry", "match"):
        if key not in spec:
            raise _Invalid(f"{where}: '{key}' is missing")
    title = _text(spec["title"], f"{where}.title")
    category = _name(spec["category"], f"{where}.category")
    geometry = spec["geometry"]
    geometry = [geometry] if isinstance(geometry, str) else geometry
    if not isinstance(geometry, list) or not geometry:
        raise _Invalid(f"{where}.geometry: a list of {', '.join(GEOMETRIES)} is required")
    for g in geometry:
        if g not in GEOMETRIES:
            raise _Invalid(f"{where}.geometry: unknown geometry {g!r} (allowed: {', '.join(GEOMETRIES)})")
    geometry = frozenset(geometry)
    match = spec["match"]
    if not isinstance(match, list) or not match:
        raise _Invalid(f"{where}.match: a non-empty list of alternatives is required")
    rules = tuple(_rule(r, f"{where}.match[{i}]", geometry) for i, r in enumerate(match))
    attributes = _attributes(spec.get("attributes") or {}, f"{where}.attributes",
                             reserved=RESERVED + tuple(common_names))
    return FeatureClass(name, title, category, geometry, rules, attributes)


def _rule(spec, where: str, geometry: frozenset[str]) -> Rule:
    if not isinstance(spec, dict) or "tags" not in spec:
        raise _Invalid(f"{where}: a mapping with 'tags' (and optionally 'except', 'closed_ways') "
                       "is required")
    _known_keys(spec, RULE_KEYS, where)
    tags = _conditions(spec["tags"], f"{where}.tags")
    if not tags:
        raise _Invalid(f"{where}.tags: at least one key is required")
    excluded = _conditions(spec.get("except") or {}, f"{where}.except")
    closed = spec.get("closed_ways", "polygon" if "polygon" in geometry else "line")
    if closed not in ("polygon", "line"):
        raise _Invalid(f"{where}.closed_ways: {closed!r} is not allowed (allowed: polygon, line)")
    if closed not in geometry:
        raise _Invalid(f"{where}.closed_ways: {closed!r} is not among the class's geometry "
                       f"({', '.join(sorted(geometry))})")
    return Rule(tags, excluded, closed)


def _conditions(spec, where: str) -> tuple[Condition, ...]:
    if not isinstance(spec, dict):
        raise _Invalid(f"{where}: a mapping of OSM key -> value, list of values or \"*\" is required")
    out = []
    for key, value in spec.items():
        key = _text(key, f"{where} key")
        if key in FORBIDDEN_KEYS:
            raise _Invalid(f"{where}: the key {key!r} cannot be tested (areas built from relations "
                           "do not keep it)")
        if value == "*":
            out.append(Condition(key, None))
            continue
        values = value if isinstance(value, list) else [value]
        if not values:
            raise _Invalid(f"{where}.{key}: an empty list matches nothing")
        out.append(Condition(key, frozenset(_text(v, f"{where}.{key}") for v in values)))
    return tuple(out)


def _attributes(spec, where: str, reserved: tuple[str, ...]) -> tuple[Attribute, ...]:
    if not isinstance(spec, dict):
        raise _Invalid(f"{where}: a mapping of attribute name -> tag, list of tags or "
                       "{tags, type} is required")
    out = []
    for name, value in spec.items():
        _name(name, f"{where}")
        if name in reserved:
            raise _Invalid(f"{where}.{name}: the name is already used ({', '.join(reserved)} are "
                           "given to every feature)")
        kind = "str"
        if isinstance(value, dict):
            unknown = set(value) - {"tags", "type"}
            if unknown or "tags" not in value:
                raise _Invalid(f"{where}.{name}: a mapping needs 'tags' and may have 'type' only")
            kind = value.get("type", "str")
            if kind not in ATTRIBUTE_TYPES:
                raise _Invalid(f"{where}.{name}.type: unknown type {kind!r} (allowed: "
                               f"{', '.join(ATTRIBUTE_TYPES)})")
            value = value["tags"]
        tags = value if isinstance(value, list) else [value]
        if not tags:
            raise _Invalid(f"{where}.{name}: at least one tag is required")
        out.append(Attribute(name, tuple(_text(t, f"{where}.{name}") for t in tags), kind))
    return tuple(out)
