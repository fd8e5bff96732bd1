"""Checks of the output grid a run is asked for, made before any pixel is read: the resolution
against the extent it must cover, and the ``--projection`` CRS the product is warped to.
S2-preprocess, S2-CD and the S1 services ask them of their parameters."""

from __future__ import annotations

import math

import numpy as np
import pyproj
from affine import Affine
from rasterio._err import CPLE_BaseError  # GDAL's errors: rasterio.errors does not re-export them
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.warp import calculate_default_transform
from rasterio.warp import transform as transform_points

from components.common.aoi import near_lon
from components.common.errors import InvalidParameter, ServiceError

# A resolution is given in metres; on a grid in degrees a degree counts this many metres (the
# equator's), for every service alike.
METRES_PER_DEGREE = 111_320.0
# fewer pixels than this along a side of the tile is no raster product, and reading the bands at
# such a factor allocates (rows x factor) x (cols x factor) samples (sampling.SourceRaster.read)
MIN_PIXELS_PER_SIDE = 2


def check_resolution(resolution: float, width_m: float, height_m: float, what: str) -> None:
    """InvalidParameter when ``resolution`` (metres) leaves fewer than MIN_PIXELS_PER_SIDE pixels
    along a side of ``what``, ``width_m`` x ``height_m`` metres."""
    largest = min(width_m, height_m) / MIN_PIXELS_PER_SIDE
    if resolution > largest:
        raise InvalidParameter("resolution", resolution,
                               f"at most {largest:g} m: {what} is {width_m:g} m x {height_m:g} m and the product "
                               f"needs at least {MIN_PIXELS_PER_SIDE} pixels along each side")


def pixel_size(resolution_m: float, crs) -> float:
    """The pixel size in the units of ``crs`` (rasterio's or pyproj's) for a resolution in metres:
    degrees at METRES_PER_DEGREE, or the CRS's linear unit (US feet, say)."""
    crs = pyproj.CRS.from_user_input(crs)
    if crs.is_geographic:
        return resolution_m / METRES_PER_DEGREE
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return resolution_m / unit


def horizontal_crs(projection: str, crs: CRS, allowed: str) -> CRS:
    """``crs`` when a raster can lie on it (projected or geographic axes); a vertical, geocentric
    or engineering CRS is an InvalidParameter for ``projection``. A compound CRS (a horizontal
    CRS plus heights) is judged by its horizontal part, the part a raster uses."""
    try:
        full = pyproj.CRS.from_user_input(crs.to_wkt())
    except pyproj.exceptions.CRSError:
        full = pyproj.CRS.from_user_input(projection.strip())
    horizontal = full.sub_crs_list[0] if full.is_compound else full
    if horizontal.is_vertical or horizontal.is_geocentric or not (horizontal.is_projected or horizontal.is_geographic):
        kind = full.type_name[0].lower() + full.type_name[1:]  # "vertical CRS"
        article = "an" if kind[0] in "aeiou" else "a"
        raise InvalidParameter("projection", projection, f"{allowed}, naming a projected or geographic CRS "
                                                         f"({full.name} is {article} {kind}: a raster cannot lie on it)")
    return crs


def parse_crs(projection: str, allowed: str) -> CRS:
    """The CRS ``projection`` names, horizontal (see :func:`horizontal_crs`)."""
    try:
        crs = CRS.from_user_input(projection.strip())
    except CRSError:
        raise InvalidParameter("projection", projection, allowed) from None
    return horizontal_crs(projection, crs, allowed)


def warped_grid(src_crs, bounds: tuple[float, float, float, float], width: int, height: int, dst_crs: CRS,
                resolution: float, what: str, projection: str):
    """(transform, width, height) of ``what`` (its ``bounds`` in ``src_crs``) warped to ``dst_crs``, the
    CRS of ``--projection projection``, at ``resolution`` (in the units of ``dst_crs``). A footprint
    that PROJ cannot bring into that CRS (e.g. beyond the horizon of an orthographic projection) is
    one ServiceError line."""
    try:
        transform, w, h = calculate_default_transform(src_crs, dst_crs, width, height, *bounds,
                                                      resolution=resolution)
        if CRS.from_user_input(dst_crs).is_geographic and w * abs(transform.a) > 180.0:
            transform, w, h = _across_antimeridian(src_crs, bounds, dst_crs, resolution) or (transform, w, h)
    except (CPLE_BaseError, CRSError) as exc:
        raise _not_representable(projection, what, " ".join(str(exc).split()).rstrip(".")) from None
    if not w or not h:
        raise _not_representable(projection, what, "no pixel would be left")
    return transform, w, h


def _across_antimeridian(src_crs, bounds, dst_crs, resolution: float):
    """The geographic grid of an area smaller than a hemisphere that crosses the antimeridian,
    with longitudes running on beyond 180 (GDAL's default grid goes the other way round the
    globe, a raster 360 degrees wide); None for an area that spans more than 180 degrees."""
    lon, lat = lonlat_outline(src_crs, bounds, dst_crs)
    west, east = float(lon.min()), float(lon.max())
    if east - west > 180.0 or not np.isfinite([west, east]).all():
        return None
    if west < -180.0:
        west, east = west + 360.0, east + 360.0
    south, north = float(lat.min()), float(lat.max())
    width, height = math.ceil((east - west) / resolution), math.ceil((north - south) / resolution)
    return Affine(resolution, 0.0, west, 0.0, -resolution, north), width, height


def lonlat_outline(crs, bounds: tuple[float, float, float, float], lonlat_crs="EPSG:4326", points: int = 129):
    """(lon, lat) of ``points`` points along each edge of ``bounds`` in ``crs`` (the extremes of
    a grid's outline in lon/lat need not be its corners), the longitudes continuous along the
    outline: beyond 180 where it crosses the antimeridian."""
    left, bottom, right, top = bounds
    t = np.linspace(0.0, 1.0, points)
    xs = np.concatenate([left + (right - left) * t, np.full_like(t, right), right - (right - left) * t,
                         np.full_like(t, left)])
    ys = np.concatenate([np.full_like(t, bottom), bottom + (top - bottom) * t, np.full_like(t, top),
                         top - (top - bottom) * t])
    lon, lat = (np.asarray(v, np.float64) for v in transform_points(crs, lonlat_crs, xs, ys))
    return near_lon(lon, lon[0]), lat


def _not_representable(projection: str, what: str, reason: str) -> ServiceError:
    text = " ".join(projection.split())
    text = text if len(text) <= 80 else text[:77] + "..."  # a WKT: its start names it
    return ServiceError(f"--projection {text} cannot represent {what} ({reason}): choose a CRS whose area of "
                        "use covers it (UTM(Auto) keeps the tile's UTM zone)")
