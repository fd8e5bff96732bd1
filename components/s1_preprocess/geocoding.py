"""Geocoding of radar-geometry images onto a map grid. Pure NumPy/SciPy (pyproj for CRS maths).

Inverse models give, for every output pixel, its (row, column) in the radar image:

* **Range-Doppler** (:class:`RangeDopplerModel`): a ground point's zero-Doppler time on the orbit
  (annotation state vectors, or a precise EOF file) gives the row, its slant range the column
  (GRD: through the annotation's slant-to-ground range polynomials, SLC: the range sampling).
  With a DEM (terrain correction) the ground point is at the DEM height; the mapping is solved
  exactly on a coarse grid of output nodes at two heights and interpolated in between (linear in
  height, which is sub-pixel for land heights). Without a DEM (:class:`SurfaceModel`) it is at
  the annotation geolocation grid's height, solved at the same nodes.
* **Geolocation grid** (:class:`GcpModel`): the annotation's lat/lon/height of a grid of lines
  and pixels, interpolated bilinearly and inverted by Newton iterations. Between the grid's rows
  it is off by several pixels (the slant/ground range conversion changes within them), so it
  only gives outlines, heights and first guesses.

Output pixels are sampled bilinearly from the radar image, tile by tile, so memory stays bounded.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import TYPE_CHECKING

import numpy as np
from affine import Affine
from pyproj import CRS, Transformer

from components.common.aoi import lonlat_beside, near_lon
from components.common.errors import InvalidParameter, ServiceError
from components.common.output_grid import horizontal_crs, pixel_size

if TYPE_CHECKING:
    from components.common.landmask import DemHeightSpec

log = logging.getLogger(__name__)

COARSE_STEP = 32  # output pixels between nodes of the coarse inverse map (it is smooth: < 0.01 px error)
NEWTON_ITERATIONS = 8
SURFACE_ITERATIONS = 2  # height fixed point without a DEM: the error shrinks ~5x per iteration
SPEED_OF_LIGHT = 299_792_458.0
WGS84_A = 6378137.0
WGS84_E2 = 6.69437999014e-3


@dataclasses.dataclass(frozen=True)
class Grid:
    """An output map grid: CRS, affine transform (rasterio convention), rows x cols."""

    crs: CRS
    transform: Affine
    rows: int
    cols: int

    @property
    def shape(self):
        return self.rows, self.cols

    def window_transform(self, row_off: int, col_off: int) -> Affine:
        t = self.transform
        return Affine(t.a, t.b, t.c + t.a * col_off, t.d, t.e, t.f + t.e * row_off)


def target_crs(projection: str) -> CRS:
    text = str(projection).strip()
    if text.replace(" ", "").lower() in ("wgs84", "wgs84(dd)", "epsg:4326", "4326", ""):
        return CRS.from_epsg(4326)
    allowed = "WGS84, an EPSG code such as EPSG:32633, or WKT"
    try:
        crs = CRS.from_user_input(text)
    except Exception:
        raise InvalidParameter("projection", projection, allowed) from None
    return horizontal_crs(projection, crs, allowed)  # a vertical or geocentric CRS holds no raster


def make_grid(crs: CRS, resolution_m: float, footprint_lonlat, aoi=None) -> Grid:
    """The output grid covering the footprint (clipped to the AoI), origin aligned on whole
    multiples of the pixel size (SNAP's alignToStandardGrid with origin 0)."""
    import shapely

    area = footprint_lonlat
    if area.bounds[0] < -180.0:  # a scene across the antimeridian: lon/lat grids run on beyond 180
        area = shapely.transform(area, lambda xy: xy + (360.0, 0.0))
    if aoi is not None:
        area = shapely.intersection(area, lonlat_beside(aoi, area))
        if area.is_empty or area.area <= 0:
            raise ServiceError("AoI does not intersect the product footprint")
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    dense = shapely.segmentize(area, 0.01)
    projected = shapely.transform(dense, lambda xy: np.column_stack(to_crs.transform(xy[:, 0], xy[:, 1])))
    minx, miny, maxx, maxy = projected.bounds
    if not all(map(math.isfinite, (minx, miny, maxx, maxy))):
        raise ServiceError(f"the product footprint cannot be expressed in {crs.name}")
    px = pixel_size(resolution_m, crs)
    x0 = math.floor(minx / px) * px
    y0 = math.ceil(maxy / px) * px
    cols = max(1, math.ceil((maxx - x0) / px - 1e-9))
    rows = max(1, math.ceil((y0 - miny) / px - 1e-9))
    if rows * cols > 4e9:
        raise InvalidParameter("resolution", resolution_m, "a pixel size giving fewer than 4e9 output pixels")
    return Grid(crs, Affine(px, 0.0, x0, 0.0, -px, y0), rows, cols)


# -- the annotation geolocation grid -----------------------------------------------------------


class GcpModel:
    """Forward (row, col) -> (lon, lat, h) by bilinear interpolation of a geolocation grid given
    on image rows ``rows`` x columns ``cols``; inverse by Newton iterations."""

    def __init__(self, rows, cols, lon, lat, height):
        self.rows = np.asarray(rows, np.float64)
        self.cols = np.asarray(cols, np.float64)
        # a scene across the antimeridian: longitudes continuous (beyond 180), or the bilinear
        # interpolation would pass through 0 between 179.9 and -179.9
        lon = np.asarray(lon, np.float64)
        self.ref_lon = float(lon.flat[0]) if lon.size and np.ptp(lon) > 180.0 else None
        self.lon = lon if self.ref_lon is None else near_lon(lon, self.ref_lon)
        self._centre_lon = float(np.mean(self.lon)) if lon.size else 0.0
        self.lat = np.asarray(lat, np.float64)
        self.height = np.asarray(height, np.float64)
        # initial guess: affine (row, col) from (lon, lat)
        rr, cc = np.meshgrid(self.rows, self.cols, indexing="ij")
        design = np.column_stack([self.lon.ravel(), self.lat.ravel(), np.ones(rr.size)])
        self._affine, *_ = np.linalg.lstsq(design, np.column_stack([rr.ravel(), cc.ravel()]), rcond=None)

    @classmethod
    def from_gcp(cls, gcp, row_of_line=None, col_of_pixel=None) -> "GcpModel":
        rows = gcp.line.values.astype(np.float64)
        cols = gcp.pixel.values.astype(np.float64)
        if row_of_line is not None:
            rows = row_of_line(gcp)
        if col_of_pixel is not None:
            cols = col_of_pixel(cols)
        return cls(rows, cols, gcp.longitude.values, gcp.latitude.values, gcp.height.values)

    def _cell(self, r, c):
        i = np.clip(np.searchsorted(self.rows, r, side="right") - 1, 0, self.rows.size - 2)
        j = np.clip(np.searchsorted(self.cols, c, side="right") - 1, 0, self.cols.size - 2)
        dr = self.rows[i + 1] - self.rows[i]
        dc = self.cols[j + 1] - self.cols[j]
        return i, j, (r - self.rows[i]) / dr, (c - self.cols[j]) / dc, dr, dc

    def _interp(self, grid, i, j, u, v):
        g00, g01, g10, g11 = grid[i, j], grid[i, j + 1], grid[i + 1, j], grid[i + 1, j + 1]
        val = (1 - u) * (1 - v) * g00 + (1 - u) * v * g01 + u * (1 - v) * g10 + u * v * g11
        d_u = (1 - v) * (g10 - g00) + v * (g11 - g01)
        d_v = (1 - u) * (g01 - g00) + u * (g11 - g10)
        return val, d_u, d_v

    def outline(self, r0: float, r1: float, c0: float, c1: float, steps: int):
        """The border of the image window rows [r0, r1) x columns [c0, c1) in lon/lat, ``steps``
        points per side, as a valid shapely geometry."""
        import shapely

        r = np.linspace(r0, r1 - 1, steps)
        c = np.linspace(c0, c1 - 1, steps)
        rows = np.concatenate([np.full_like(c, r0), r, np.full_like(c, r1 - 1), r[::-1]])
        cols = np.concatenate([c, np.full_like(r, c1 - 1), c[::-1], np.full_like(r, c0)])
        lon, lat, _ = self.forward(rows, cols)
        return shapely.make_valid(shapely.Polygon(np.column_stack([lon, lat])))

    def forward(self, r, c):
        i, j, u, v, _, _ = self._cell(np.asarray(r, np.float64), np.asarray(c, np.float64))
        return (self._interp(self.lon, i, j, u, v)[0], self._interp(self.lat, i, j, u, v)[0],
                self._interp(self.height, i, j, u, v)[0])

    def inverse(self, lon, lat):
        lon = np.asarray(lon, np.float64)
        centre = self._centre_lon
        if lon.size and (np.nanmin(lon) < centre - 180.0 or np.nanmax(lon) > centre + 180.0):
            lon = near_lon(lon, centre)  # the other side of the antimeridian: the model's longitudes
        lat = np.asarray(lat, np.float64)
        a = self._affine
        r = lon * a[0, 0] + lat * a[1, 0] + a[2, 0]
        c = lon * a[0, 1] + lat * a[1, 1] + a[2, 1]
        for _ in range(NEWTON_ITERATIONS):
            i, j, u, v, dr, dc = self._cell(r, c)
            x, xu, xv = self._interp(self.lon, i, j, u, v)
            y, yu, yv = self._interp(self.lat, i, j, u, v)
            xr, xc, yr, yc = xu / dr, xv / dc, yu / dr, yv / dc
            det = xr * yc - xc * yr
            ex, ey = lon - x, lat - y
            with np.errstate(invalid="ignore", divide="ignore"):
                r = r + (yc * ex - xc * ey) / det
                c = c + (-yr * ex + xr * ey) / det
        return r, c


# -- orbits and range-Doppler ----------------------------------------------------------------

@dataclasses.dataclass
class Orbit:
    """State vectors: times (s since ``epoch``), positions and velocities (ECEF, m and m/s)."""

    epoch: np.datetime64
    t: np.ndarray
    pos: np.ndarray  # (n, 3)
    vel: np.ndarray
    source: str

    def state(self, t):
        """Position and velocity at times ``t`` (cubic Hermite on the state vectors)."""
        t = np.asarray(t, np.float64)
        k = np.clip(np.searchsorted(self.t, t, side="right") - 1, 0, self.t.size - 2)
        t0, t1 = self.t[k], self.t[k + 1]
        h = t1 - t0
        s = ((t - t0) / h)[..., None]
        p0, p1, v0, v1 = self.pos[k], self.pos[k + 1], self.vel[k] * h[..., None], self.vel[k + 1] * h[..., None]
        s2, s3 = s * s, s * s * s
        pos = (2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * v0 + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * v1
        dpos = ((6 * s2 - 6 * s) * p0 + (3 * s2 - 4 * s + 1) * v0 + (-6 * s2 + 6 * s) * p1
                + (3 * s2 - 2 * s) * v1) / h[..., None]
        return pos, dpos

    @classmethod
    def from_annotation(cls, ds, epoch) -> "Orbit":
        times = ds.azimuth_time.values
        t = (times - np.datetime64(epoch, "ns")) / np.timedelta64(1, "s")
        return cls(np.datetime64(epoch, "ns"), t.astype(np.float64), ds.position.values.T.astype(np.float64),
                   ds.velocity.values.T.astype(np.float64), "annotation")


EOF_VECTORS_BEYOND = 2  # state vectors an orbit file must hold before the start and after the stop
EOF_MAX_GAP_S = 30.0  # largest gap between state vectors over the acquisition (POEORB/RESORB: 10 s)
EOF_KEEP_S = 120.0  # the vectors kept around the acquisition
EOF_MAX_BYTES = 200 << 20  # an EOF file in a zip larger than this is refused (POEORB: ~5 MB)


@dataclasses.dataclass
class EofFile:
    """One parsed orbit file: mission (S1A... or None when neither header nor name says), type
    (AUX_POEORB, AUX_RESORB, ...), creation time, and its state vectors sorted by time."""

    name: str
    mission: str | None
    file_type: str
    created: str
    times: np.ndarray  # datetime64[ns]
    pos: np.ndarray
    vel: np.ndarray


def _mission_of(text: str | None) -> str | None:
    import re

    m = re.fullmatch(r"\s*SENTINEL[-_ ]?1([A-Z])\s*", (text or "").upper())
    return f"S1{m.group(1)}" if m else None


def _eof_bytes(path) -> bytes:
    """The XML of an orbit file, or of the one ``.EOF`` file inside a ``.zip``."""
    import zipfile

    try:
        if not path.name.lower().endswith(".zip"):
            return path.read_bytes()
        with zipfile.ZipFile(path) as z:
            members = [i for i in z.infolist() if i.filename.upper().endswith(".EOF") and not i.is_dir()]
            if len(members) != 1:
                raise ServiceError(f"orbit file {path.name} holds {len(members) or 'no'} .EOF files: one expected")
            if members[0].file_size > EOF_MAX_BYTES:
                raise ServiceError(f"orbit file {path.name} holds an EOF of {members[0].file_size} bytes: "
                                   f"not an orbit file")
            return z.read(members[0])
    except ServiceError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as e:
        raise ServiceError(f"orbit file {path.name} cannot be read: {' '.join(str(e).split()) or type(e).__name__}") \
            from None


def parse_eof(path) -> EofFile:
    """The header and state vectors of an EOF file (``.EOF``, or a ``.zip`` holding one)."""
    import re
    from pathlib import Path
    from xml.etree import ElementTree

    path = Path(path)
    try:
        root = ElementTree.fromstring(_eof_bytes(path))
    except ElementTree.ParseError as e:
        raise ServiceError(f"orbit file {path.name} is not a readable EOF XML file: {e}") from None
    times, pos, vel = [], [], []
    for osv in root.iter("OSV"):
        utc = (osv.findtext("UTC") or "").replace("UTC=", "")
        try:
            times.append(np.datetime64(utc, "ns"))
            pos.append([float(osv.findtext(k)) for k in ("X", "Y", "Z")])
            vel.append([float(osv.findtext(k)) for k in ("VX", "VY", "VZ")])
        except (TypeError, ValueError):
            raise ServiceError(f"orbit file {path.name} has a malformed state vector") from None
    times = np.array(times, dtype="datetime64[ns]")
    pos, vel = np.array(pos, np.float64).reshape(-1, 3), np.array(vel, np.float64).reshape(-1, 3)
    times, first = np.unique(times, return_index=True)  # sorted; a vector repeated (files joined) once
    pos, vel = pos[first], vel[first]
    if not (np.isfinite(pos).all() and np.isfinite(vel).all()):
        raise ServiceError(f"orbit file {path.name} has a malformed state vector (not a finite number)")
    header = root.find(".//Fixed_Header")
    mission = _mission_of(header.findtext("Mission")) if header is not None else None
    name = re.match(r"(S1[A-Z])_", path.name.upper())
    if mission is None and name:
        mission = name.group(1)
    file_type = (header.findtext("File_Type") if header is not None else None) or \
        next((t for t in ("AUX_POEORB", "AUX_RESORB") if t in path.name.upper()), "")
    created = ((header.findtext("Source/Creation_Date") if header is not None else None) or "").replace("UTC=", "")
    return EofFile(path.name, mission, file_type.strip().upper(), created.strip(), times, pos, vel)


def _utc(t) -> str:
    return str(t)[:19]


def _duration(seconds: float) -> str:
    for unit, size, above in (("days", 86400.0, 172800.0), ("h", 3600.0, 7200.0), ("min", 60.0, 600.0)):
        if seconds >= above:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def eof_problem(eof: EofFile, mission: str, start, stop) -> str | None:
    """Why the orbit file cannot give the orbit of the ``mission`` acquisition [start, stop]
    (None: it can): another mission; fewer than EOF_VECTORS_BEYOND state vectors before the
    start or after the stop; a gap over EOF_MAX_GAP_S seconds between them."""
    if eof.mission and mission and eof.mission != mission.upper():
        return (f"is an orbit file of {eof.mission.replace('S1', 'Sentinel-1')}; the product is from "
                f"{mission.upper().replace('S1', 'Sentinel-1')}")
    t = eof.times
    if t.size == 0:
        return "holds no state vectors (OSV)"
    start, stop = np.datetime64(start, "ns"), np.datetime64(stop, "ns")
    uncovered = f"does not cover the acquisition {_utc(start)} to {_utc(stop)}"

    def secs(dt):
        return float(dt / np.timedelta64(1, "s"))

    n_before, n_after = int((t <= start).sum()), int((t >= stop).sum())
    if t[-1] < stop:
        where = (f"{_duration(secs(start - t[-1]))} before it starts" if t[-1] < start
                 else f"{_duration(secs(stop - t[-1]))} before it ends")
        return f"{uncovered}: its state vectors end at {_utc(t[-1])}, {where}"
    if t[0] > start:
        where = (f"{_duration(secs(t[0] - stop))} after it ends" if t[0] > stop
                 else f"{_duration(secs(t[0] - start))} after it starts")
        return f"{uncovered}: its state vectors begin at {_utc(t[0])}, {where}"
    if n_before < EOF_VECTORS_BEYOND or n_after < EOF_VECTORS_BEYOND:
        return (f"{uncovered} with a margin: it holds {n_before} state vector(s) up to the start and {n_after} "
                f"from the stop, {EOF_VECTORS_BEYOND} are needed on each side")
    i0, i1 = n_before - EOF_VECTORS_BEYOND, t.size - n_after + EOF_VECTORS_BEYOND - 1
    gaps = np.diff(t[i0:i1 + 1]) / np.timedelta64(1, "s")
    k = int(np.argmax(gaps))
    if gaps[k] > EOF_MAX_GAP_S:
        return (f"has a gap of {gaps[k]:.0f} s in its state vectors ({_utc(t[i0 + k])} to {_utc(t[i0 + k + 1])}) "
                f"over the acquisition {_utc(start)} to {_utc(stop)}: at most {EOF_MAX_GAP_S:g} s can be interpolated")
    return None


def read_eof(path, mission: str, start: np.datetime64, stop: np.datetime64, epoch) -> Orbit:
    """State vectors of a precise/restituted orbit EOF file (``.EOF``, or ``.EOF.zip``), or of the
    best file of a folder, for the ``mission`` acquisition [start, stop].

    The file must be of that mission (its header's ``Mission``, else its name) and hold at least
    EOF_VECTORS_BEYOND state vectors before the start and after the stop, with no gap over
    EOF_MAX_GAP_S seconds between them (the cubic Hermite interpolation of :meth:`Orbit.state`
    is exact to centimetres over 10 s, POEORB's and RESORB's spacing, and off by tens of metres
    over minutes). In a folder, the files that qualify are ranked: POEORB before RESORB, then the
    most recently created. Each refusal is one line naming the file(s) and why."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        names = sorted(p for p in path.iterdir()
                       if p.is_file() and p.name.upper().endswith((".EOF", ".EOF.ZIP")))
        # files named for another unit are not candidates (a folder holding both units' files)
        named = [p for p in names if not (len(p.name) > 4 and p.name[:2].upper() == "S1" and p.name[3] == "_"
                                          and p.name[:3].upper() != mission.upper())]
        usable, reasons = [], []
        for cand in named:
            try:
                eof = parse_eof(cand)
            except ServiceError as e:
                reasons.append(str(e).replace("orbit file ", "", 1))
                continue
            problem = eof_problem(eof, mission, start, stop)
            if problem:  # the acquisition is named once, at the start of the line
                reasons.append(f"{cand.name} {problem}".replace(f" the acquisition {_utc(start)} to {_utc(stop)}",
                                                                " the acquisition"))
            else:
                usable.append(eof)
        if not usable:
            what = f"no orbit file in {path} covers {mission} {_utc(start)} to {_utc(stop)}"
            if not names:
                raise ServiceError(f"{what}: it holds no EOF file (*.EOF, *.EOF.zip)")
            if not named:
                raise ServiceError(f"{what}: none of its {len(names)} EOF files is named for {mission}")
            shown = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")
            raise ServiceError(f"{what}: {shown}")
        eof = max(usable, key=lambda e: (e.file_type == "AUX_POEORB", e.created, e.name))
    else:
        if not path.exists():
            raise ServiceError(f"orbit file not found: {path}")
        eof = parse_eof(path)
        problem = eof_problem(eof, mission, start, stop)
        if problem:
            raise ServiceError(f"orbit file {eof.name} {problem}")
    keep = np.timedelta64(int(EOF_KEEP_S), "s")
    sel = (eof.times >= np.datetime64(start, "ns") - keep) & (eof.times <= np.datetime64(stop, "ns") + keep)
    t = (eof.times[sel] - np.datetime64(epoch, "ns")) / np.timedelta64(1, "s")
    return Orbit(np.datetime64(epoch, "ns"), t.astype(np.float64), eof.pos[sel], eof.vel[sel], eof.name)


def geodetic_to_ecef(lon, lat, h):
    lon, lat = np.radians(lon), np.radians(lat)
    n = WGS84_A / np.sqrt(1 - WGS84_E2 * np.sin(lat) ** 2)
    x = (n + h) * np.cos(lat) * np.cos(lon)
    y = (n + h) * np.cos(lat) * np.sin(lon)
    z = (n * (1 - WGS84_E2) + h) * np.sin(lat)
    return np.stack([x, y, z], axis=-1)


class RangeDopplerModel:
    """Inverse (lon, lat, h) -> (row, col) by zero-Doppler time and slant range.

    ``row = (t - t_row0) / row_interval``; ``col`` from the two-way slant range time by
    ``col_of_range_time(t, tau)`` (image-specific: SLC sampling or GRD ground range).
    """

    def __init__(self, orbit: Orbit, t_row0: float, row_interval: float, col_of_range_time):
        self.orbit = orbit
        self.t_row0 = t_row0
        self.row_interval = row_interval
        self.col_of_range_time = col_of_range_time

    def inverse(self, lon, lat, h, rows=None):
        """(row, col) of ground points; ``rows``: a first guess of their rows (else mid-image)."""
        p = geodetic_to_ecef(lon, lat, h)
        if rows is None:
            t = np.full(p.shape[:-1], self.t_row0 + 0.5 * self.row_interval)
        else:
            t = self.t_row0 + np.where(np.isfinite(rows), rows, 0.5) * self.row_interval
        for _ in range(10):
            s, v = self.orbit.state(t)
            d = p - s
            f = np.sum(d * v, axis=-1)
            # d f / dt ~= -|v|^2 (the acceleration term is negligible for the step)
            step = f / np.sum(v * v, axis=-1)
            t = t + step
            if not np.nanmax(np.abs(step), initial=0.0) > 1e-5 * self.row_interval:
                break
        s, _ = self.orbit.state(t)
        tau = 2.0 * np.linalg.norm(p - s, axis=-1) / SPEED_OF_LIGHT
        return (t - self.t_row0) / self.row_interval, self.col_of_range_time(t, tau)


class SurfaceModel:
    """Range-Doppler inverse (lon, lat) -> (row, col) on a surface of known height: the
    geocoding without a DEM. The surface is the annotation geolocation grid's heights (the
    processor's own terrain heights) given on image (row, col): a ground point lies at the
    height of the image position it maps to, found by fixed-point iterations from the grid's
    inverse (each contracts the height error about fivefold: heights vary slowly). Only the
    height comes from the grid; positions come from range-Doppler, because between the grid's
    rows the slant/ground range conversion changes and the grid's lat/lon cannot follow it."""

    def __init__(self, model: "RangeDopplerModel", gcp: GcpModel, iterations: int = SURFACE_ITERATIONS):
        self.model = model
        self.gcp = gcp
        self.iterations = iterations

    def height_at(self, r, c):
        g = self.gcp
        r = np.clip(np.nan_to_num(r, nan=g.rows.mean()), g.rows[0], g.rows[-1])
        c = np.clip(np.nan_to_num(c, nan=g.cols.mean()), g.cols[0], g.cols[-1])
        return g.forward(r, c)[2]

    def inverse(self, lon, lat):
        r, c = self.gcp.inverse(lon, lat)
        for _ in range(self.iterations):
            r, c = self.model.inverse(lon, lat, self.height_at(r, c), rows=r)
        return r, c


class GrdRange:
    """GRD column of a two-way slant range time, from the annotation's slant-to-ground range
    polynomials (``ground = sum c_k (R - sr0)^k``, interpolated in azimuth time)."""

    def __init__(self, conversion, epoch, pixel_spacing: float, col_offset: float = 0.0):
        times = (conversion.azimuth_time.values - np.datetime64(epoch, "ns")) / np.timedelta64(1, "s")
        self.t = times.astype(np.float64)
        self.sr0 = conversion.sr0.values.astype(np.float64)
        self.coef = conversion.srgrCoefficients.values.astype(np.float64)
        self.spacing = pixel_spacing
        self.col_offset = col_offset

    def __call__(self, t, tau):
        r = tau * SPEED_OF_LIGHT / 2.0
        k = np.clip(np.searchsorted(self.t, t, side="right") - 1, 0, max(self.t.size - 2, 0))
        if self.t.size == 1:
            w = np.zeros_like(r)
            k1 = k
        else:
            k1 = k + 1
            w = np.clip((t - self.t[k]) / (self.t[k1] - self.t[k]), 0, 1)
        g = np.zeros_like(r)
        for kk, ww in ((k, 1 - w), (k1, w)):
            x = r - self.sr0[kk]
            val = np.zeros_like(r)
            for d in range(self.coef.shape[1] - 1, -1, -1):
                val = val * x + self.coef[kk, d]
            g += ww * val
        return g / self.spacing - self.col_offset


# -- coarse inverse maps and tile sampling -----------------------------------------------------

class InverseMap:
    """(row, col) in the radar image of every pixel of an output grid, from a coarse node grid.

    ``heights``: None for the ellipsoid model, else a callable giving the DEM height of the
    output pixels of a window (for the terrain model, interpolated between two node heights).
    """

    def __init__(self, grid: Grid, model, *, terrain: bool = False, heights=(0.0, 1000.0),
                 step: int = COARSE_STEP):
        self.grid = grid
        self.model = model
        self.step = step
        self.terrain = terrain
        self.node_rows = np.arange(0, grid.rows + step, step, dtype=np.float64)
        self.node_cols = np.arange(0, grid.cols + step, step, dtype=np.float64)
        cc, rr = np.meshgrid(self.node_cols + 0.5, self.node_rows + 0.5)
        t = grid.transform
        x = t.c + t.a * cc + t.b * rr
        y = t.f + t.d * cc + t.e * rr
        lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(x, y)
        lon, lat = np.asarray(lon), np.asarray(lat)
        self.heights = heights
        if terrain:
            self.maps = [model.inverse(lon, lat, np.full(lon.shape, h)) for h in heights]
        else:
            self.maps = [model.inverse(lon, lat)]

    def radar_bounds(self, rows: int, cols: int, margin: int = 8):
        """Bounding box (r0, r1, c0, c1) of the radar image needed by the grid, clipped to the
        image; None when the grid maps beside it. Every node counts, those mapping outside the
        image too: the pixels between such a node and its neighbour inside are needed (nodes are
        COARSE_STEP output pixels apart, 3.2 km at 100 m)."""
        r = np.concatenate([m[0].ravel() for m in self.maps])
        c = np.concatenate([m[1].ravel() for m in self.maps])
        ok = np.isfinite(r) & np.isfinite(c)
        if not ok.any():
            return None
        r0 = max(0, int(np.floor(r[ok].min())) - margin)
        r1 = min(rows, int(np.ceil(r[ok].max())) + margin + 1)
        c0 = max(0, int(np.floor(c[ok].min())) - margin)
        c1 = min(cols, int(np.ceil(c[ok].max())) + margin + 1)
        return (r0, r1, c0, c1) if r1 > r0 and c1 > c0 else None

    def may_cover(self, row_off: int, col_off: int, height: int, width: int, rows: int, cols: int,
                  margin: float = 2.0) -> bool:
        """False when no node around the output window maps into the radar raster (rows x cols):
        the window is certainly NoData (the map is smooth between nodes)."""
        i0, i1 = row_off // self.step, min(self.node_rows.size, (row_off + height) // self.step + 2)
        j0, j1 = col_off // self.step, min(self.node_cols.size, (col_off + width) // self.step + 2)
        pad = margin + self.step  # a node one step away may still map inside
        for r, c in self.maps:
            rr, cc = r[i0:i1, j0:j1], c[i0:i1, j0:j1]
            inside = (rr > -pad * 4) & (rr < rows + pad * 4) & (cc > -pad * 4) & (cc < cols + pad * 4)
            if inside.any():
                return True
        return False

    def window(self, row_off: int, col_off: int, height: int, width: int, dem=None):
        """(rows, cols) float arrays for the output window; ``dem`` = heights of its pixels."""
        fr = (np.arange(row_off, row_off + height) / self.step)
        fc = (np.arange(col_off, col_off + width) / self.step)
        i = np.minimum(fr.astype(np.int64), self.node_rows.size - 2)
        j = np.minimum(fc.astype(np.int64), self.node_cols.size - 2)
        u = (fr - i)[:, None]
        v = (fc - j)[None, :]

        j0 = int(j.min())
        jj = j - j0

        def up(a):
            # rows first on the few node columns of the window, then columns: no large gathers
            sub = a[:, j0:int(j.max()) + 2]
            rows = sub[i] * (1 - u) + sub[i + 1] * u
            return rows[:, jj] * (1 - v) + rows[:, jj + 1] * v

        if not self.terrain:
            r, c = self.maps[0]
            return up(r), up(c)
        (r0, c0), (r1, c1) = self.maps
        h0, h1 = self.heights
        w = (np.asarray(dem, np.float64) - h0) / (h1 - h0)
        rr0, rr1 = up(r0), up(r1)
        cc0, cc1 = up(c0), up(c1)
        return rr0 + w * (rr1 - rr0), cc0 + w * (cc1 - cc0)


def sample_bilinear(src: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``src`` (NaN = NoData) at fractional pixel-centre coordinates;
    NaN outside the array or next to NoData."""
    from . import _accel

    if _accel.available():
        return _accel.sample_bilinear(src, rows, cols)
    from scipy import ndimage

    out = ndimage.map_coordinates(src, [rows, cols], order=1, mode="constant", cval=np.nan, prefilter=False)
    outside = (rows < 0) | (cols < 0) | (rows > src.shape[0] - 1) | (cols > src.shape[1] - 1) | ~np.isfinite(rows)
    out[outside] = np.nan
    return out


def is_gdal_path(path) -> bool:
    """A GDAL virtual file system path (``/vsizip/...``, ``/vsicurl/...``): opened by GDAL, not
    looked up on the local disk."""
    return str(path).startswith("/vsi")


def read_dem(path: str, grid: Grid, row_off: int, col_off: int, height: int, width: int,
             geoid_height: float = 0.0, transform: Affine | None = None) -> np.ndarray:
    """DEM heights in metres (ellipsoidal: + geoid_height) on an output window (bilinear), NaN
    where the DEM has no data or does not reach; ``transform`` replaces the window's (a coarser
    grid). Stored values become metres by the band's unit (or its vertical CRS's), scale and
    offset; an int16 DEM without NoData value has its voids at -32768 (SRTM's convention)."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    from components.common.landmask import dem_height_spec
    from components.common.readers import open_raster

    out = np.full((height, width), np.nan, np.float32)
    with open_raster(path, f"DEM file {os.path.basename(path)}") as src, src.guard():
        spec = dem_height_spec(src.dataset, os.path.basename(path))
        reproject(rasterio.band(src.dataset, 1), out, src_nodata=spec.nodata, dst_nodata=np.nan,
                  dst_transform=transform or grid.window_transform(row_off, col_off), dst_crs=grid.crs,
                  resampling=Resampling.bilinear)
    out[~np.isfinite(out)] = np.nan  # +-inf heights (a float DEM without NoData value) are no data too
    return spec.to_metres(out) + np.float32(geoid_height)


DEM_CHECK_PIXELS = 4_000_000  # the coverage check samples the output grid at most this finely


def dem_uncovered_share(path: str, grid: Grid, area_lonlat) -> float:
    """Share (0..1) of ``area_lonlat`` (the output's footprint, AoI applied) on ``grid`` where the
    DEM has no height (outside it or NoData), on the grid coarsened to ~DEM_CHECK_PIXELS."""
    import shapely
    from rasterio.features import geometry_mask

    f = max(1, math.ceil(math.sqrt(grid.rows * grid.cols / DEM_CHECK_PIXELS)))
    rows, cols = math.ceil(grid.rows / f), math.ceil(grid.cols / f)
    transform = grid.transform @ Affine.scale(f)
    heights = read_dem(path, grid, 0, 0, rows, cols, transform=transform)
    to_crs = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True)
    area = shapely.transform(shapely.segmentize(area_lonlat, 0.01),
                             lambda xy: np.column_stack(to_crs.transform(xy[:, 0], xy[:, 1])))
    inside = ~geometry_mask([area], (rows, cols), transform, all_touched=False)
    if not inside.any():
        return 0.0
    return float((~np.isfinite(heights) & inside).sum() / inside.sum())


def check_dem(path: str, footprint_lonlat) -> "DemHeightSpec":
    """ServiceError unless ``path`` is a georeferenced raster overlapping the footprint whose
    heights can be read in metres; its :class:`DemHeightSpec`. ``path`` may be a GDAL virtual
    file system path (``/vsizip/archive.zip/dem.tif``)."""
    import rasterio
    from rasterio.warp import transform_bounds
    from shapely.geometry import box

    from components.common.landmask import dem_height_spec

    if not is_gdal_path(path) and not os.path.exists(path):
        raise ServiceError(f"DEM file does not exist: {path}")
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise ServiceError(f"DEM file has no coordinate reference system: {path}")
            spec = dem_height_spec(src, os.path.basename(str(path)))
            bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    except rasterio.errors.RasterioError as e:
        raise ServiceError(f"DEM file cannot be read as a raster: {path}: {' '.join(str(e).split())}") from None
    if not box(*bounds).intersects(footprint_lonlat):
        raise ServiceError(f"DEM file does not cover the product footprint: {path}")
    return spec
