"""Sentinel-2 product opening: a SENTINEL-SAFE folder or its .zip, Level-1C or Level-2A, any
processing baseline.

Everything comes from the metadata: band files from ``Granule_List/IMAGE_FILE``, the
quantification value and the ``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET`` of baselines from 04.00,
the tile grid from ``MTD_TL.xml``. Files listed but absent (real products are distributed that
way, and GDAL's SENTINEL2 driver silently reads them as zeros) are detected here, and a needed
one is an error naming the file. Zips are read in place through GDAL's ``/vsizip/``; the CRC of
each member is checked once, when it is first used (GDAL does not check it).

Every value taken from the metadata is checked (dates, numbers, codes, geometry): a bad one is a
:class:`ServiceError` naming the file, the element and the value.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from lxml import etree

from .errors import ServiceError
from .metadata import XmlValues, shown
from .readers import ZIP_ERRORS, check_zip_member, zip_failure

BAND_NAMES = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
NATIVE_RESOLUTION = {"B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20, "B8": 10,
                     "B8A": 20, "B9": 60, "B10": 60, "B11": 20, "B12": 20, "SCL": 20}
BAND_WAVELENGTH_NM = {"B1": 442.7, "B2": 492.7, "B3": 559.8, "B4": 664.6, "B5": 704.1, "B6": 740.5,
                      "B7": 782.8, "B8": 832.8, "B8A": 864.7, "B9": 945.1, "B10": 1373.5, "B11": 1613.7,
                      "B12": 2202.4}
# Bandwidths (full width at half maximum) of the Sentinel-2A MSI bands, nm (ESA's spectral responses)
BAND_FWHM_NM = {"B1": 21, "B2": 66, "B3": 36, "B4": 31, "B5": 15, "B6": 15, "B7": 20, "B8": 106, "B8A": 21,
                "B9": 20, "B10": 31, "B11": 91, "B12": 175}
RESOLUTIONS = (10, 20, 60)
# From processing baseline 04.00 (January 2022) the DN carry an additive offset, read from metadata.
OFFSET_BASELINE = (4, 0)
NODATA_DN = 0

_FILE_BAND = re.compile(r"_(B\d{2}|B8A|SCL|TCI|AOT|WVP)(?:_(\d+)m)?$")


def normalise_band(name: str) -> str:
    """'B02', 'b2' and 'B2' all mean B2; 'B8a' means B8A."""
    m = re.fullmatch(r"[Bb]0*(\d{1,2})([Aa]?)", name.strip())
    if not m:
        return name.strip()
    return f"B{int(m.group(1))}{m.group(2).upper()}"


def file_code(band: str) -> str:
    """Band name as spelled in file names: B2 -> B02, B8A -> B8A, SCL -> SCL."""
    m = re.fullmatch(r"B(\d{1,2})(A?)", band)
    return f"B{int(m.group(1)):02d}{m.group(2)}" if m else band


@dataclass(frozen=True)
class Grid:
    """The tile grid at one resolution."""

    crs: str
    ulx: float
    uly: float
    resolution: float
    rows: int
    cols: int

    @property
    def transform(self):
        from rasterio.transform import Affine
        return Affine(self.resolution, 0.0, self.ulx, 0.0, -self.resolution, self.uly)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.ulx, self.uly - self.rows * self.resolution,
                self.ulx + self.cols * self.resolution, self.uly)


@dataclass
class S2Product:
    """An opened Sentinel-2 product: metadata plus GDAL paths of its files."""

    source: str
    name: str
    level: str  # "L1C" | "L2A"
    baseline: str
    spacecraft: str
    sensing_time: dt.datetime
    relative_orbit: int
    tile: str
    crs: str
    grids: dict[int, Grid]
    quantification: float
    offsets: dict[str, float]
    footprint_lonlat: object  # shapely Polygon
    band_files: dict[tuple[str, int], str]  # (band, resolution) -> relative path of the JP2
    mask_files: dict[str, str]  # MSK_CLASSI / MSK_CLOUDS -> relative path
    _root: str = ""
    _members: frozenset[str] | None = field(default=None, repr=False)
    _checked: set[str] = field(default_factory=set, repr=False)

    # -- files -------------------------------------------------------------------------------
    def gdal_path(self, rel: str) -> str:
        """The GDAL path of a file to read; in a zip, the member's CRC is checked first (once)."""
        if self._members is not None and rel not in self._checked:
            archive, inner = _zip_member(self, rel)
            check_zip_member(archive, inner, PurePosixPath(rel).name)
            self._checked.add(rel)
        return f"{self._root}/{rel}"

    def label(self, rel: str) -> str:
        """How errors name a file of the product: its name and the product's."""
        return f"{PurePosixPath(rel).name} in {self.name or Path(self.source).name}"

    def has_file(self, rel: str) -> bool:
        if self._members is not None:
            return rel in self._members
        return Path(self._root, rel).is_file()

    def read_bytes(self, rel: str) -> bytes:
        return _read_member(self, rel)

    @property
    def has_offset(self) -> bool:
        return baseline_tuple(self.baseline) >= OFFSET_BASELINE

    def scale_offset(self, band: str) -> tuple[float, float]:
        """(scale, offset) such that reflectance = DN * scale + offset."""
        return 1.0 / self.quantification, self.offsets.get(band, 0.0) / self.quantification

    def band_source(self, band: str, target_resolution: float) -> tuple[str, int]:
        """The file to read a band from for a target resolution: the native-resolution file; when
        it is absent, an ESA-resampled copy no coarser than the target. Else an error naming the
        missing native file."""
        native = NATIVE_RESOLUTION[band]
        candidates = [native] + [r for r in RESOLUTIONS if native < r <= target_resolution]
        listed = [(r, self.band_files[(band, r)]) for r in candidates if (band, r) in self.band_files]
        if not listed:
            raise ServiceError(f"band {band} is not listed in the metadata of {self.name} "
                               f"(a {self.level} product)")
        for res, rel in listed:
            if self.has_file(rel):
                return rel, res
        raise ServiceError(f"band file missing from {self.name}: {PurePosixPath(listed[0][1]).name} "
                           f"(needed for {band} at {target_resolution:g} m)")

    def require_file(self, rel: str, why: str) -> str:
        if not self.has_file(rel):
            raise ServiceError(f"file missing from {self.name}: {PurePosixPath(rel).name} ({why})")
        return rel


_BASELINE = re.compile(r"(\d{1,2})(?:\.(\d{1,2}))?")


def baseline_tuple(text: str) -> tuple[int, int]:
    m = _BASELINE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a processing baseline: {text!r}")
    return int(m.group(1)), int(m.group(2) or 0)


def open_product(path: str | Path) -> S2Product:
    """Open a .SAFE folder (or a folder holding exactly one) or a .zip of one."""
    p = Path(path)
    if not p.exists():
        raise ServiceError(f"input not found: {p}")
    members = None
    if p.is_file():
        if not zipfile.is_zipfile(p):
            what = "corrupt or truncated zip archive" if p.suffix.lower() == ".zip" else \
                "input is neither a SAFE folder nor a zip archive"
            raise ServiceError(f"{what}: {p.name}")
        try:
            # members are CRC-checked when used (S2Product.gdal_path, _read_member), whatever
            # the archive's size: a full test of a 1 GB archive would read bands never used
            with zipfile.ZipFile(p) as z:
                members = frozenset(n for n in z.namelist() if not n.endswith("/"))
        except (zipfile.BadZipFile, OSError) as e:
            raise ServiceError(f"corrupt zip archive {p.name}: {e}") from None
        mtd = sorted(n for n in members if re.search(r"(^|/)MTD_MSIL(1C|2A)\.xml$", n))
        if not mtd:
            raise ServiceError(f"not a Sentinel-2 product: {p.name} holds no MTD_MSIL1C.xml or MTD_MSIL2A.xml")
        if len(mtd) > 1:
            raise ServiceError(f"{p.name} holds {len(mtd)} Sentinel-2 products ({', '.join(mtd[:3])}"
                               f"{', ...' if len(mtd) > 3 else ''}): give one product per input")
        prefix = mtd[0].rsplit("/", 1)[0] if "/" in mtd[0] else ""
        root = f"/vsizip/{p.resolve()}" + (f"/{prefix}" if prefix else "")
        members = frozenset(n[len(prefix) + 1:] if prefix else n for n in members if n.startswith(prefix))
        mtd_name = PurePosixPath(mtd[0]).name
    else:
        safe = p
        found = list(p.glob("MTD_MSIL[12][AC].xml"))
        if not found:
            inner = sorted(d for d in p.glob("*.SAFE") if d.is_dir())
            if len(inner) == 1:
                safe, found = inner[0], list(inner[0].glob("MTD_MSIL[12][AC].xml"))
            elif len(inner) > 1:
                raise ServiceError(f"{p} holds {len(inner)} SAFE products ({', '.join(d.name for d in inner[:3])}"
                                   f"{', ...' if len(inner) > 3 else ''}): give one product per input")
        if not found:
            raise ServiceError(f"not a Sentinel-2 SAFE product: {p} holds no MTD_MSIL1C.xml or MTD_MSIL2A.xml")
        root = str(safe.resolve())
        mtd_name = found[0].name
    prod = S2Product(source=str(p), name="", level="", baseline="", spacecraft="",
                     sensing_time=dt.datetime.min, relative_orbit=0, tile="", crs="", grids={},
                     quantification=10000.0, offsets={}, footprint_lonlat=None, band_files={},
                     mask_files={}, _root=root, _members=members)
    _parse_product_metadata(prod, _parse_xml(prod, mtd_name), PurePosixPath(mtd_name).name)
    return prod


def _zip_member(prod: S2Product, rel: str) -> tuple[str, str]:
    """(archive path, member name) of a file of a zipped product."""
    archive, _, inner_root = prod._root.removeprefix("/vsizip/").partition(".zip")
    inner = (inner_root.strip("/") + "/" if inner_root.strip("/") else "") + rel
    return archive + ".zip", inner


def _read_member(prod: S2Product, rel: str) -> bytes:
    """A (small) file of the product; ``zipfile`` checks the member's CRC as it reads."""
    if prod._members is None:
        return Path(prod._root, rel).read_bytes()
    archive, inner = _zip_member(prod, rel)
    info = None
    try:
        with zipfile.ZipFile(archive) as z:
            info = z.getinfo(inner)
            return z.read(info)
    except ZIP_ERRORS as e:
        raise zip_failure(e, archive, PurePosixPath(rel).name, info) from None


def _parse_xml(prod: S2Product, rel: str):
    if not prod.has_file(rel):
        raise ServiceError(f"file missing from product {Path(prod.source).name}: {rel}")
    try:
        return etree.fromstring(_read_member(prod, rel))
    except (etree.XMLSyntaxError, zipfile.BadZipFile, OSError) as e:
        raise ServiceError(f"corrupt metadata {PurePosixPath(rel).name} in {Path(prod.source).name}: "
                           f"{' '.join(str(e).split())}") from None


RELATIVE_ORBITS = 143  # Sentinel-2 relative orbits are numbered 1..143


def _parse_product_metadata(prod: S2Product, root, file: str) -> None:
    uri = (root.findtext(".//PRODUCT_URI") or "").strip() or Path(prod.source).name
    prod.name = re.sub(r"\.(SAFE|zip)$", "", uri)
    v = XmlValues(root, file, prod.name)
    ptype = v.text("PRODUCT_TYPE")
    if ptype not in ("S2MSI1C", "S2MSI2A"):
        raise ServiceError(f"unsupported Sentinel-2 product type {ptype} (S2MSI1C or S2MSI2A expected)")
    prod.level = "L1C" if ptype == "S2MSI1C" else "L2A"
    prod.baseline = v.text("PROCESSING_BASELINE")
    try:
        baseline_tuple(prod.baseline)
    except ValueError:
        raise v.error("PROCESSING_BASELINE", prod.baseline, "is not a processing baseline (such as 04.00)") from None
    prod.spacecraft = v.text("SPACECRAFT_NAME", required=False) or ""
    prod.sensing_time = v.time("PRODUCT_START_TIME")
    prod.relative_orbit = v.integer("SENSING_ORBIT_NUMBER", minimum=1, maximum=RELATIVE_ORBITS, required=False) or 0

    ids = {}
    for el in root.iter("Spectral_Information"):
        band_id = v.integer("Spectral_Information bandId", value=el.get("bandId") or "", minimum=0,
                            maximum=len(BAND_NAMES) - 1)
        physical = normalise_band(el.get("physicalBand") or "")
        if physical not in BAND_NAMES:
            raise v.error("Spectral_Information physicalBand", el.get("physicalBand"), "is not a Sentinel-2 band")
        ids[str(band_id)] = physical
    q_tag = "BOA_QUANTIFICATION_VALUE" if prod.level == "L2A" else "QUANTIFICATION_VALUE"
    prod.quantification = v.number(q_tag, positive=True)
    off_tag = "BOA_ADD_OFFSET" if prod.level == "L2A" else "RADIO_ADD_OFFSET"
    for el in root.iter(off_tag):
        offset = v.number(off_tag, el=el)
        band = ids.get((el.get("band_id") or "").strip())
        if band:
            prod.offsets[band] = offset
    if prod.has_offset and not prod.offsets:
        raise ServiceError(f"{file} of {prod.name} (baseline {prod.baseline}) lacks {off_tag}")

    granule_dir = None
    for el in root.iter("IMAGE_FILE"):
        rel = v.text("IMAGE_FILE", el=el)
        if rel.startswith("/") or ".." in PurePosixPath(rel).parts:
            raise v.error("IMAGE_FILE", rel, "is not a path inside the product")
        rel = rel if rel.endswith(".jp2") else rel + ".jp2"
        granule_dir = granule_dir or "/".join(rel.split("/")[:2])
        m = _FILE_BAND.search(rel[:-4])
        if not m:
            continue
        band = normalise_band(m.group(1))
        res = int(m.group(2)) if m.group(2) else NATIVE_RESOLUTION.get(band, 10)
        prod.band_files[(band, res)] = rel
    if granule_dir is None:
        raise ServiceError(f"{file} of {prod.name} lists no image files (IMAGE_FILE)")

    prod.footprint_lonlat = _footprint(v)

    tl_rel = f"{granule_dir}/MTD_TL.xml"
    t = XmlValues(_parse_xml(prod, tl_rel), "MTD_TL.xml", prod.name)
    prod.crs = _epsg(t)
    tile = re.search(r"_(T\d\d[A-Z]{3})_", prod.name + "_")
    prod.tile = tile.group(1) if tile else ""
    sizes = {}
    for el in t.root.iter("Size"):
        res = t.integer("Size resolution", value=el.get("resolution") or "", minimum=1)
        sizes[res] = (t.integer("NROWS", within=el, minimum=1), t.integer("NCOLS", within=el, minimum=1))
    for g in t.root.iter("Geoposition"):
        res = t.integer("Geoposition resolution", value=g.get("resolution") or "", minimum=1)
        if res in sizes:
            prod.grids[res] = Grid(prod.crs, t.number("ULX", within=g), t.number("ULY", within=g),
                                   float(res), *sizes[res])
    if 10 not in prod.grids:
        raise ServiceError(f"MTD_TL.xml of {prod.name} has no 10 m tile geocoding (Size and Geoposition)")
    for el in t.root.iter("MASK_FILENAME"):
        kind = el.get("type")
        if kind in ("MSK_CLASSI", "MSK_CLOUDS") and el.text and el.text.strip():
            prod.mask_files[kind] = el.text.strip()


def _footprint(v: XmlValues):
    """EXT_POS_LIST ("lat lon" pairs) as a lon/lat polygon."""
    from shapely.geometry import Polygon

    tag = "EXT_POS_LIST"
    values = v.numbers(tag)
    text = " ".join(v.text(tag).split())
    if values.size % 2 or values.size < 6:
        raise v.error(tag, shown(text), "is not a list of at least three lat lon pairs")
    lat, lon = values[0::2], values[1::2]
    if (np.abs(lat) > 90).any() or (np.abs(lon) > 180).any():
        raise v.error(tag, shown(text), "holds a latitude outside -90..90 or a longitude outside -180..180")
    polygon = Polygon(np.column_stack([lon, lat]))
    if polygon.area == 0:
        raise v.error(tag, shown(text), "does not enclose an area")
    return polygon


def _epsg(t: XmlValues) -> str:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    tag = "HORIZONTAL_CS_CODE"
    code = t.text(tag)
    m = re.fullmatch(r"EPSG:(\d{4,6})", code, re.IGNORECASE)
    if not m:
        raise t.error(tag, code, "is not an EPSG code (such as EPSG:32629)")
    try:
        CRS.from_epsg(int(m.group(1)))
    except CRSError:
        raise t.error(tag, code, "is not a known EPSG coordinate reference system") from None
    return f"EPSG:{m.group(1)}"
