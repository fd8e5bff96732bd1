"""The data dictionary: the built-in classes, their matching and attribute mapping, and the
validation of dictionary files (every problem one clear message naming where it is)."""

from __future__ import annotations

import textwrap

import pytest

from components.common.errors import InvalidParameter, ServiceError
from components.osm_features.dictionary import convert, load_dictionary

REQUIRED_CLASSES = {
    "airport", "runway", "helipad", "port", "pier", "railway_station", "rail_line", "bridge", "tunnel",
    "power_plant", "substation", "power_line", "dam", "pipeline", "hospital", "school", "police",
    "fire_station", "military_area", "border_crossing", "fuel_station", "building", "place_of_worship",
    "prison", "road_motorway", "road_primary", "road_secondary", "road_local"}


def test_builtin_dictionary_has_the_security_classes():
    d = load_dictionary()
    assert REQUIRED_CLASSES <= set(d.classes)
    assert len(d.classes) >= 25
    for cls in d.classes.values():
        assert cls.title and cls.category and cls.geometry and cls.rules
    assert set(d.groups["roads"]) >= {"road_motorway", "road_primary", "road_local"}


def test_matching_and_attributes():
    d = load_dictionary()
    bridge = d.classes["bridge"]
    assert bridge.rule_for({"highway": "primary", "bridge": "viaduct"}) is not None
    assert bridge.rule_for({"highway": "primary", "bridge": "no"}) is None
    assert bridge.rule_for({"man_made": "bridge"}).closed_ways == "polygon"
    assert bridge.rule_for({"bridge": "yes"}).closed_ways == "line"
    turbine = d.classes["wind_turbine"]
    assert turbine.rule_for({"power": "generator", "generator:source": "wind"}) is not None
    assert turbine.rule_for({"power": "generator", "generator:source": "solar"}) is None
    props = d.properties(d.classes["power_line"], {"voltage": "380000;220000", "cables": "6", "name": "X",
                                                   "frequency": "50"})
    assert props["voltage_v"] == 380000 and props["cables"] == 6 and props["frequency_hz"] == 50.0
    assert props["name"] == "X" and props["operator"] is None


@pytest.mark.parametrize("raw, kind, value", [
    ("35 m", "float", 35.0), ("2,5", "float", 2.5), ("abc", "float", None), ("12", "int", 12),
    ("12.5", "int", None), ("yes", "bool", True), ("no", "bool", False), ("maybe", "bool", None),
    ("x", "str", "x")])
def test_convert(raw, kind, value):
    assert convert(raw, kind) == value


def test_expand_groups_and_unknown_names():
    d = load_dictionary()
    assert d.expand(["all"]) == d.names
    assert set(d.expand(["energy", "airport"])) == set(d.groups["energy"]) | {"airport"}
    with pytest.raises(InvalidParameter) as e:
        d.expand(["airport", "spaceport"])
    message = str(e.value)
    assert "'spaceport'" in message and "airport, heliport" in message and "groups all" in message


GOOD_CLASS = """
classes:
  depot:
    title: Depot
    category: logistics
    geometry: [point, polygon]
    match:
      - tags: {landuse: depot}
"""

BAD_DICTIONARIES = [
    ("not yaml", "classes: [unclosed", "is not valid YAML at line"),
    ("duplicate key", GOOD_CLASS + "  depot:\n    title: again\n", "duplicate key 'depot' at line"),
    ("no classes", "version: 1\n", "classes: a non-empty mapping"),
    ("unknown top key", "colour: red\n" + GOOD_CLASS, "top level: unknown key 'colour'"),
    ("bad geometry", GOOD_CLASS.replace("[point, polygon]", "[point, area]"),
     "classes.depot.geometry: unknown geometry 'area' (allowed: point, line, polygon)"),
    ("missing match", GOOD_CLASS.replace("    match:\n      - tags: {landuse: depot}\n", ""),
     "classes.depot: 'match' is missing"),
    ("unquoted no", GOOD_CLASS.replace("{landuse: depot}", "{landuse: no}"),
     "classes.depot.match[0].tags.landuse: a non-empty text is required"),
    ("type key", GOOD_CLASS.replace("{landuse: depot}", "{type: multipolygon}"),
     "the key 'type' cannot be tested"),
    ("bad closed_ways", GOOD_CLASS.replace("{landuse: depot}", "{landuse: depot}\n        closed_ways: line"),
     "closed_ways: 'line' is not among the class's geometry"),
    ("bad attribute type", GOOD_CLASS + "    attributes:\n      size: {tags: size, type: decimal}\n",
     "classes.depot.attributes.size.type: unknown type 'decimal'"),
    ("reserved attribute", GOOD_CLASS + "    attributes:\n      osm_id: ref\n",
     "classes.depot.attributes.osm_id: the name is already used"),
    ("bad class name", GOOD_CLASS.replace("  depot:", "  Depot-Area:"), "'Depot-Area' is not a valid name"),
    ("group clash", GOOD_CLASS.replace("category: logistics", "category: depot"),
     "category 'depot' has the name of a class"),
]


@pytest.mark.parametrize("case, text, fragment", BAD_DICTIONARIES, ids=[c[0] for c in BAD_DICTIONARIES])
def test_invalid_dictionaries(case, text, fragment, tmp_path):
    path = tmp_path / f"{case.replace(' ', '_')}.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ServiceError) as e:
        load_dictionary(path)
    message = e.value.one_line()
    assert message.startswith(f"feature dictionary {path}")
    assert fragment in message, message


def test_custom_dictionary_is_accepted(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD_CLASS)
    d = load_dictionary(path)
    assert d.names == ("depot",) and d.groups == {"logistics": ("depot",)}
