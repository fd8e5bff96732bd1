"""Parameters of S1-GRD-preprocess and S1-SLC-preprocess (seed D5.2 sections 2.2.1-2.2.2,
Tables 2 and 3), declared once. The speckle-filter parameters carry SNAP's Speckle-Filter
names and defaults (filterSizeX/Y, dampingFactor, enl, estimateENL, numLooksStr, windowSize,
targetWindowSizeStr, sigmaStr)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from components.common.params import ServiceParams, param

from .filters import FilterSpec

CALIBRATIONS = ("Sigma", "Gamma", "Beta", "SigmaDB", "GammaDB", "BetaDB")
SPECKLE_FILTERS = ("Lee Sigma", "Lee", "Refined Lee", "Frost", "Gamma Map", "Boxcar", "Median", "None")
DEFAULT_RESOLUTION = {"IW": 10.0, "SM": 5.0}
DEM_OUTSIDE_DOC = ("With --dem, output pixels the DEM does not cover (outside it or NoData): error refuses the "
                   "run; geoid geocodes them at height 0 above the geoid (dem_geoid_height above the ellipsoid); "
                   "ellipsoid at ellipsoid height 0. The filled share is in the STAC item and run.json")


@dataclass(frozen=True)
class S1CommonParams(ServiceParams):
    """What every Sentinel-1 service shares: radiometry, filter, grid, masks, engine."""

    polarization: str = param("VV", "Polarisation to process (VV, VH, HH, HV; must be in the product)")
    speckle: Literal["Lee Sigma", "Lee", "Refined Lee", "Frost", "Gamma Map", "Boxcar", "Median", "None"] = param(
        "Lee Sigma", "Speckle filter (SNAP's Speckle-Filter definitions)", flags=("--speckle_filter",))
    filter_size_x: int = param(3, "Window width for Boxcar, Median, Lee, Frost, Gamma Map (SNAP filterSizeX)",
                               minimum=1, maximum=101)
    filter_size_y: int = param(3, "Window height for Boxcar, Median, Lee, Frost, Gamma Map (SNAP filterSizeY)",
                               minimum=1, maximum=101)
    damping_factor: int = param(2, "Frost damping factor (SNAP dampingFactor)", minimum=1, maximum=100)
    enl: float = param(1.0, "Equivalent number of looks for Lee, Refined Lee, Gamma Map (SNAP enl)",
                       minimum=0, exclusive_minimum=True)
    estimate_enl: bool = param(False, "Estimate the ENL from the data per block (SNAP estimateENL)")
    num_looks: Literal["1", "2", "3", "4"] = param("1", "Lee Sigma number of looks (SNAP numLooksStr)")
    window_size: Literal["5x5", "7x7", "9x9", "11x11"] = param("7x7", "Lee Sigma window (SNAP windowSize)")
    target_window_size: Literal["3x3", "5x5"] = param("3x3", "Lee Sigma target window (SNAP targetWindowSizeStr)")
    sigma: Literal["0.5", "0.6", "0.7", "0.8", "0.9"] = param("0.9", "Lee Sigma sigma (SNAP sigmaStr)")
    aoi: Optional[str] = param(None, "Area of interest: WKT polygon (lon/lat) or vector file", flags=("--AoI", "-p"))
    resolution: float = param(0.0, "Output pixel size in metres; 0 = 10 for IW, 5 for SM (the recommended "
                              "minimum)", minimum=0)
    landseamask: Literal["None", "Land", "Sea"] = param(
        "None", "Pixels set to NoData: Land removes land, Sea removes sea", flags=("--land_sea_mask",))
    landseamask_tolerance: float = param(
        0.0, "Margin in metres of the removed class kept next to the other (as S2-preprocess)", minimum=0)
    dem: Optional[str] = param(None, "DEM file (a path, s3:// URI or GDAL /vsi path; heights in metres or feet "
                               "by its unit, scale and offset): range-Doppler terrain correction (else range-Doppler "
                               "on the ellipsoid at the annotation geolocation grid's heights) and the land/sea mask")
    dem_geoid_height: float = param(
        0.0, "The geoid's height above the WGS84 ellipsoid over the scene, in metres (EGM96: about 47 over Rome), "
        "added to the DEM heights to make them ellipsoidal. Needed (not 0) for a DEM whose CRS declares heights "
        "above a geoid (e.g. EPSG:9707, 4326+3855); refused (must be 0) for one that declares ellipsoidal heights "
        "(EPSG:4979); for a DEM that declares no vertical datum, 0 takes its heights as ellipsoidal")
    orbit: Optional[str] = param(None, "Precise/restituted orbit EOF file (.EOF or .EOF.zip) or folder of them "
                                 "(path or s3:// URI), covering the acquisition; default: the annotation state vectors")
    projection: str = param("WGS84", "Output CRS: WGS84 (EPSG:4326), any EPSG code or WKT")
    output_format: str = param("GeoTIFF", "GeoTIFF (Cloud Optimized) or any GDAL raster driver name")
    engine: Literal["native", "snap"] = param("native", "native (this package) or snap (SNAP gpt graph)")
    graph_only: bool = param(False, "With --engine snap: write the gpt graph XML and stop")

    def filter_spec(self) -> FilterSpec:
        return FilterSpec(name=self.speckle, filter_size_x=self.filter_size_x, filter_size_y=self.filter_size_y,
                          damping_factor=self.damping_factor, enl=self.enl, estimate_enl=self.estimate_enl,
                          num_looks=int(self.num_looks), window_size=int(self.window_size.split("x")[0]),
                          target_window_size=int(self.target_window_size.split("x")[0]), sigma=float(self.sigma))

    def resolved_resolution(self, mode: str) -> float:
        if self.resolution > 0:
            return float(self.resolution)
        return DEFAULT_RESOLUTION["IW" if mode == "IW" else "SM"]


@dataclass(frozen=True)
class S1GRDParams(S1CommonParams):
    calibration: Literal["Sigma", "Gamma", "Beta", "SigmaDB", "GammaDB", "BetaDB", "GammaRTC", "GammaRTCDB"] = param(
        "Sigma", "Backscatter convention; the DB variants are in decibels; GammaRTC is gamma0 radiometrically "
        "terrain-flattened with the DEM (Small 2011, SNAP Terrain-Flattening; needs --dem)",
        flags=("--calibration_output",))
    thermal_noise_removal: bool = param(True, "Subtract the annotated thermal noise (SNAP ThermalNoiseRemoval)")
    border_noise_removal: bool = param(True, "Trim GRD border noise (SNAP Remove-GRD-Border-Noise)")
    border_limit: int = param(500, "Border noise: deepest trim in samples (SNAP borderLimit)", minimum=0)
    trim_threshold: float = param(0.5, "Border noise: noise-removed intensity (DN^2) below which border "
                                  "samples are trimmed (SNAP trimThreshold)", minimum=0)
    dem_outside: Literal["error", "geoid", "ellipsoid"] = param("error", DEM_OUTSIDE_DOC)
    min_valid_percent: float = param(
        0.0, "Fail (exit status 2, no product written) when fewer than this percentage of the output "
        "pixels are valid; 0 accepts any product, and an empty one is logged as a warning",
        minimum=0, maximum=100)


@dataclass(frozen=True)
class S1SLCParams(S1CommonParams):
    calibration: Literal["Sigma", "Gamma", "Beta", "SigmaDB", "GammaDB", "BetaDB"] = param(
        "Sigma", "Backscatter convention; the DB variants are in decibels", flags=("--calibration_output",))
    thermal_noise_removal: bool = param(True, "Subtract the annotated thermal noise (SNAP ThermalNoiseRemoval)")
    subswaths: tuple[str, ...] = param(("IW1", "IW2", "IW3"), "IW sub-swaths to process (ignored for SM)",
                                       choices=("IW1", "IW2", "IW3"))
    calibration_constant: float = param(
        0.0, "Constant calibration value A (value = |DN|^2 / A^2) for an input given as pieces (swath "
        "annotation + measurement, no calibration annotation), e.g. 237 with Beta; 0 = none (a SAFE's "
        "calibration annotation is always used)", minimum=0)
    crop_offset: Optional[str] = param(
        None, "LINE,SAMPLE of a cropped measurement's first pixel in its swath, for an input given as pieces; "
        "default: from its file name (..._hight<LINE>_<end>_width<SAMPLE>_<end>.tiff)")
    dem_outside: Literal["error", "geoid", "ellipsoid"] = param("error", DEM_OUTSIDE_DOC)
    min_valid_percent: float = param(
        0.0, "Fail (exit status 2, no product written) when fewer than this percentage of the output "
        "pixels are valid; 0 accepts any product, and an empty one is logged as a warning",
        minimum=0, maximum=100)
