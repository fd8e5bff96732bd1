"""Parameters of osm-features (seed D5.2 section 2.2.6: the features of interest and the area
of interest), declared once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from components.common.params import ServiceParams, param

from .dictionary import load_dictionary


@dataclass(frozen=True)
class OsmFeaturesParams(ServiceParams):
    features: tuple[str, ...] = param(
        ("all",), "Comma-separated feature classes or groups of the dictionary (airport, port, "
        "power_line, ..., transport, energy, ...; 'all' for every class): osm-features classes "
        "lists them", flags=("--feature_types", "--types"))
    aoi: Optional[str] = param(None, "Area of interest: WKT polygon (lon/lat) or vector file "
                               "(GeoJSON, Shapefile, GeoPackage); default: the whole extract",
                               flags=("--AoI", "-p"))
    format: Literal["geojson", "gpkg"] = param(
        "geojson", "Output format: RFC 7946 GeoJSON (one FeatureCollection) or GeoPackage (one "
        "layer per class)", flags=("--output_format", "-f"))
    clip: bool = param(False, "Clip lines and polygons to the AoI (default: keep whole features "
                       "that intersect it)")
    dictionary: Optional[str] = param(None, "Data dictionary YAML (feature classes, tag filters, "
                                      "attributes); default: the built-in feature_classes.yaml")

    def __post_init__(self):
        super().__post_init__()
        # validate the names now, against the dictionary they refer to
        object.__setattr__(self, "features", load_dictionary(self.dictionary).expand(self.features))
