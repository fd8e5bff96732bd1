"""Independent reference counts: the OSM objects that match a class's tag filter, found by
osmium's own C++ filters (``TagFilter``/``KeyFilter`` chained per alternative, one pass per
exclusion), not by the extractor's matching code."""

from __future__ import annotations

from pathlib import Path

import osmium

from components.osm_features.dictionary import Condition, Dictionary, FeatureClass

OSM_TYPES = {"n": "node", "w": "way", "r": "relation"}


def _filter(condition: Condition):
    if condition.values is None:
        return osmium.filter.KeyFilter(condition.key)
    return osmium.filter.TagFilter(*[(condition.key, v) for v in sorted(condition.values)])


def _objects(path: Path, conditions) -> set[tuple[str, int]]:
    processor = osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY | osmium.osm.RELATION)
    for c in conditions:
        processor = processor.with_filter(_filter(c))
    return {(OSM_TYPES[o.type_str()], o.id) for o in processor}


def matched_objects(path: Path, cls: FeatureClass) -> set[tuple[str, int]]:
    """(osm type, id) of every object matching one of the class's alternatives."""
    found: set[tuple[str, int]] = set()
    for rule in cls.rules:
        hits = _objects(path, rule.tags)
        for excluded in rule.excluded:
            hits -= _objects(path, rule.tags + (excluded,))
        found |= hits
    return found


def golden(path: Path, dictionary: Dictionary) -> dict[str, set[tuple[str, int]]]:
    return {name: matched_objects(path, cls) for name, cls in dictionary.classes.items()}
