"""Offline STAC validation: an item against the STAC 1.1 core item schema (shipped with pystac)
and against the JSON schema of every extension it declares (shipped in tests/data/stac-extensions,
each found by its $id). An item that declares an extension whose schema is not shipped fails, and
so does a prefixed field (``eo:...``, in the properties, an asset or a band) whose extension the
item does not declare."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pystac.validation.jsonschemas as bundled
from referencing import Registry, Resource

ROOT = Path(bundled.__file__).parent
EXTENSIONS = Path(__file__).parent / "data" / "stac-extensions"
SPEC = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/"
# the field prefix of an extension whose name differs from its prefix
PREFIXES = {"sentinel-2": "s2", "projection": "proj"}
_EXTENSION_URI = re.compile(r"^https://stac-extensions\.github\.io/([^/]+)/v[^/]+/schema\.json$")


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def extension_schemas() -> dict[str, dict]:
    """The shipped extension schemas by the URI items declare them with."""
    found = {}
    for path in EXTENSIONS.glob("*/*/schema.json"):
        schema = _load(path)
        found[schema["$id"].rstrip("#")] = schema
    return found


def _registry(extensions: dict[str, dict]) -> Registry:
    resources = [(f"https://geojson.org/schema/{p.name}", _load(p)) for p in ROOT.glob("geojson/*.json")]
    resources += [(SPEC + p.name, _load(p)) for p in ROOT.glob("stac-spec/v1.1.0/*.json")]
    resources += list(extensions.items())
    return Registry().with_resources((uri, Resource.from_contents(s)) for uri, s in resources)


def _prefixed_fields(item: dict) -> set[str]:
    objects = [item.get("properties", {})]
    for asset in item.get("assets", {}).values():
        objects += [asset, *asset.get("bands", [])]
    return {key for obj in objects for key in obj if ":" in key}


def validate_item(item: dict) -> None:
    extensions = extension_schemas()
    registry = _registry(extensions)
    core = _load(ROOT / "stac-spec/v1.1.0/item.json")
    jsonschema.Draft7Validator(core, registry=registry).validate(item)
    declared = item.get("stac_extensions", [])
    missing = [uri for uri in declared if uri not in extensions]
    assert not missing, f"item {item.get('id')}: no schema shipped in {EXTENSIONS} for {missing}"
    prefixes = set()
    for uri in declared:
        name = _EXTENSION_URI.match(uri).group(1)
        prefixes.add(PREFIXES.get(name, name))
    undeclared = sorted(f for f in _prefixed_fields(item) if f.split(":")[0] not in prefixes)
    assert not undeclared, f"item {item.get('id')}: fields of undeclared extensions: {undeclared}"
    for uri in declared:
        jsonschema.Draft7Validator(extensions[uri], registry=registry).validate(item)
