"""Parameters of S2-CD (seed D5.2 section 2.2.5, Table 6), declared once.

The Table 6 parameters keep the seed's spellings (``numberClasses``, ``referenceVector``,
``levelConfidence``, ``--AoI``); the resolution default is 10 m (the seed's cell was copied from
the radar table). The parameters after them are the method's own settings, documented in the
README; their defaults are the fixed parameter set scored on OSCD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

from components.common.errors import InvalidParameter
from components.common.params import ServiceParams, param
from components.common.sentinel2 import BAND_NAMES, normalise_band
from components.s2_preprocess.params import DEFAULT_CLOUD_CLASSES

# 0 is "no change" and 255 NoData in the uint8 class map: at most 254 change classes.
MAX_CLASSES = 254


@dataclass(frozen=True)
class S2ChangeParams(ServiceParams):
    resolution: float = param(10.0, "Output pixel size in metres (10 recommended as the minimum)",
                              minimum=0, exclusive_minimum=True)
    bands: tuple[str, ...] = param(("B2", "B3", "B4", "B8"), "Comma-separated bands used for the change "
                                   "vector: B1..B12, B8A (B10 only in L1C); B02 spelling accepted",
                                   choices=BAND_NAMES)
    aoi: Optional[str] = param(None, "Area of interest: WKT polygon (lon/lat) or vector file "
                               "(GeoJSON, Shapefile, GeoPackage)", flags=("--AoI", "-p"))
    projection: str = param("UTM(Auto)", "Output CRS: UTM(Auto) keeps the grid of the inputs (the tile's UTM "
                            "zone; no resampling), WGS84 (EPSG:4326, the seed's default), any EPSG code or WKT")
    numberClasses: int = param(4, "Number of classes the changed pixels are grouped into by K-means "
                               f"(1..{MAX_CLASSES})", flags=("--number_classes",), minimum=1,
                               maximum=MAX_CLASSES)
    referenceVector: tuple[str, ...] = param(
        (), "Comma-separated reference vector for the change direction (angle), one value per band; "
        "empty means 1,0,0,... (the first band's axis)", flags=("--reference_vector",))
    levelConfidence: float = param(99.99, "Confidence level in percent (> 0 and < 100) of the chi-squared "
                                   "test that marks a pixel as changed", flags=("--level_confidence",))
    output_format: str = param("GeoTIFF", "GeoTIFF (Cloud Optimized) or any GDAL raster driver name")
    filter_size: int = param(3, "Window in pixels of the median filter applied to each band of the "
                             "difference image before the test (1: no filter); odd", minimum=1, maximum=15)
    min_area: int = param(4, "Smallest change region kept, in pixels (8-connected); 1 keeps every pixel",
                          minimum=1)
    noise_model: Literal["Covariance", "Diagonal"] = param(
        "Covariance", "Noise of the difference estimated on stable pixels: full band covariance "
        "(Mahalanobis test) or one standard deviation per band")
    normalisation: Literal["Regression", "None"] = param(
        "Regression", "Relative radiometric normalisation of input2 to input1: per-band linear regression "
        "on stable pixels, or none")
    cloud_classes: tuple[str, ...] = param(tuple(map(str, DEFAULT_CLOUD_CLASSES)),
                                           "SCL classes treated as cloudy (Level-2A inputs)",
                                           choices=tuple(str(i) for i in range(12)))

    def __post_init__(self):
        object.__setattr__(self, "bands", tuple(normalise_band(b) for b in self.bands))
        super().__post_init__()
        if not 0 < self.levelConfidence < 100:
            raise InvalidParameter("levelConfidence", self.levelConfidence, "a number > 0 and < 100 (percent)")
        if self.filter_size % 2 == 0:
            raise InvalidParameter("filter_size", self.filter_size, "an odd number of pixels (1, 3, 5, ...)")
        if self.referenceVector:
            values = []
            for v in self.referenceVector:
                try:
                    values.append(float(v))
                except (TypeError, ValueError):
                    raise InvalidParameter("referenceVector", ",".join(map(str, self.referenceVector)),
                                           "comma-separated numbers") from None
            text = ",".join(map(str, self.referenceVector))
            if len(values) != len(self.bands):
                raise InvalidParameter("referenceVector", text, f"{len(self.bands)} values, one per band "
                                       f"({','.join(self.bands)})")
            if not all(math.isfinite(v) for v in values) or not any(values):
                raise InvalidParameter("referenceVector", text, "finite numbers, not all zero")
            object.__setattr__(self, "referenceVector", tuple(str(v) for v in values))

    @property
    def reference(self) -> tuple[float, ...]:
        """The reference vector as numbers, one per band (1,0,0,... when not given)."""
        if self.referenceVector:
            return tuple(float(v) for v in self.referenceVector)
        return (1.0,) + (0.0,) * (len(self.bands) - 1)
