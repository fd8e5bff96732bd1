"""Offline STAC validation: the STAC 1.1 core item schema and the GeoJSON schemas that pystac
ships, resolved locally (the validators would otherwise fetch them from the network). Extension
schemas are not bundled; their fields are checked by the tests themselves."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pystac.validation.jsonschemas as bundled
from referencing import Registry, Resource

ROOT = Path(bundled.__file__).parent
SPEC = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/"


def _registry() -> Registry:
    resources = []
    for path in ROOT.glob("geojson/*.json"):
        resources.append((f"https://geojson.org/schema/{path.name}", path))
    for path in ROOT.glob("stac-spec/v1.1.0/*.json"):
        resources.append((SPEC + path.name, path))
    return Registry().with_resources(
        (uri, Resource.from_contents(json.loads(p.read_text()))) for uri, p in resources)


def validate_item(item: dict) -> None:
    schema = json.loads((ROOT / "stac-spec/v1.1.0/item.json").read_text())
    jsonschema.Draft7Validator(schema, registry=_registry()).validate(item)
