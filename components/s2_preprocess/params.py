"""Parameters of S2-preprocess (seed D5.2 section 2.2.3, Table 4), declared once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from components.common.params import ServiceParams, param
from components.common.sentinel2 import BAND_NAMES, normalise_band

# SCL classes set to NoData by --cloudmask L2A: cloud shadow, cloud medium and high
# probability, thin cirrus (the L2A product's Scene_Classification_List).
DEFAULT_CLOUD_CLASSES = (3, 8, 9, 10)


@dataclass(frozen=True)
class S2PreprocessParams(ServiceParams):
    resolution: float = param(10.0, "Output pixel size in metres (10 recommended as the minimum)",
                              minimum=0, exclusive_minimum=True)
    bands: tuple[str, ...] = param(("B2", "B3", "B4", "B8"), "Comma-separated bands: B1..B12, B8A "
                                   "(B10 only in L1C); B02 spelling accepted", choices=BAND_NAMES)
    landseamask: Literal["None", "Land", "Sea"] = param(
        "None", "Pixels set to NoData: Land removes land, Sea removes sea", flags=("--land_sea_mask",))
    landseamask_tolerance: float = param(
        0.0, "Margin in metres of the kept class that survives the land/sea mask", minimum=0)
    dem: Optional[str] = param(None, "DEM file for the land/sea mask (elevation <= 0 is sea); "
                               "default: the embedded global land mask")
    cloudmask: Literal["None", "L2A", "L1C"] = param(
        "None", "Cloudy pixels set to NoData: L2A from SCL, L1C from MSK_CLASSI or MSK_CLOUDS GML")
    cloud_classes: tuple[str, ...] = param(tuple(map(str, DEFAULT_CLOUD_CLASSES)),
                                           "SCL classes masked by --cloudmask L2A",
                                           choices=tuple(str(i) for i in range(12)))
    aoi: Optional[str] = param(None, "Area of interest: WKT polygon (lon/lat) or vector file "
                               "(GeoJSON, Shapefile, GeoPackage)", flags=("--AoI", "-p"))
    upsampling: Literal["Nearest", "Bilinear", "Bicubic"] = param(
        "Nearest", "Method for bands coarser than the output resolution")
    downsampling: Literal["First", "Min", "Max", "Mean", "Median"] = param(
        "First", "Method for bands finer than the output resolution")
    flagdownsampling: Literal["First", "FlagAnd", "FlagOr", "FlagMedianAnd", "FlagMedianOr"] = param(
        "First", "Method for mask and flag bands finer than the output resolution",
        flags=("--flag_downsampling",))
    projection: str = param("UTM(Auto)", "Output CRS: UTM(Auto) keeps the tile's UTM zone; "
                            "any EPSG code (EPSG:4326) or WKT")
    output_format: str = param("GeoTIFF", "GeoTIFF (Cloud Optimized) or any GDAL raster driver name")
    toa: bool = param(False, "Accept a Level-1C product without Sen2Cor and write top-of-atmosphere "
                      "reflectance")
    min_valid_percent: float = param(
        0.0, "Fail (exit status 2, no product written) when fewer than this percentage of the output "
        "pixels are valid; 0 accepts any product, and an empty one is logged as a warning",
        minimum=0, maximum=100)

    def __post_init__(self):
        object.__setattr__(self, "bands", tuple(normalise_band(b) for b in self.bands))
        super().__post_init__()
