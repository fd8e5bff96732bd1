"""Sentinel-1 Level-1 SAFE products (GRD and SLC, IW and SM): what is in them and their metadata.

Parsing is left to ``xarray-sentinel`` where it already does the work: the manifest
(``esa_safe.parse_manifest_sentinel1``), the calibration LUTs, the geolocation grid, the orbit
state vectors and the GRD slant/ground range conversion. What it lacks is added here:

* thermal noise in both layouts: the range vectors with a varying pixel sampling per vector
  (``xarray-sentinel`` refuses those), the IPF < 2.9 ``noiseVector`` layout, and the IPF >= 2.9
  azimuth noise *blocks* of GRDs (it exposes only the first of them);
* the TOPS burst list with the valid-sample ranges used by the deburst;
* the few annotation fields the processing needs (a plain ElementTree read: fast).

Every value read from the metadata (manifest, annotation, calibration and noise XML) is checked
before use: numbers finite (LUTs > 0, noise >= 0), counts whole, times ISO 8601; a bad one is a
:class:`ServiceError` naming the file, the element and the value. So is a damaged measurement
TIFF, whenever a read meets the damage.

A product is opened from a ``.SAFE`` folder or a ``.zip`` (extracted with path checks into the
work folder), under whatever folder or zip name: its name is ESA's, from its manifest. Everything
a user can get wrong is a :class:`ServiceError` with one line.
"""

from __future__ import annotations

import binascii
import copy
import dataclasses
import datetime as dt
import functools
import io
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from components.common.errors import _ENVIRONMENT_ERRNOS, ServiceError
from components.common.metadata import XmlValues
from components.common.readers import ZIP_ERRORS, open_raster, zip_failure

log = logging.getLogger(__name__)

# Thermal noise annotation: from IPF 2.90 the noise file holds range vectors
# (noiseRangeVectorList) and azimuth vectors (noiseAzimuthVectorList, one block per sub-swath
# and azimuth segment for GRDs); before, one 2-D LUT (noiseVectorList/noiseLut).
IPF_AZIMUTH_NOISE = 2.90
# From IPF 2.90 ESA also masks the GRD border noise itself (samples set to 0).
IPF_BORDER_MASKED = 2.90

SPEED_OF_LIGHT = 299_792_458.0
REQUIRED_FILES = ("measurement", "annotation", "calibration")  # noise XML: only for thermal noise removal
RELATIVE_ORBITS = 175  # Sentinel-1 relative orbits are numbered 1..175
SAFE_NS = "http://www.esa.int/safe/sentinel-1.0"
S1SARL1_NS = "http://www.esa.int/safe/sentinel-1.0/sentinel-1/sar/level-1"
ONE_SECOND = np.timedelta64(1_000_000_000, "ns")

_NAME_RE = re.compile(r"^(S1[A-D])_(IW|EW|S[1-6]|WV)_(GRD[HMF]?|SLC)_.")


@dataclasses.dataclass
class Burst:
    """One TOPS burst: first azimuth time and the valid samples of each of its lines."""

    azimuth_time: np.datetime64
    first_valid_sample: np.ndarray  # per line, -1 where the line is invalid
    last_valid_sample: np.ndarray


@dataclasses.dataclass
class NoiseAzimuthBlock:
    """One azimuth noise vector: a rectangle of the image and the LUT sampled at ``lines``."""

    swath: str
    first_line: int
    last_line: int
    first_sample: int
    last_sample: int
    lines: np.ndarray
    lut: np.ndarray


@dataclasses.dataclass
class NoiseRange:
    """Range noise vectors: ``lines`` and, per vector, its own ``pixels`` and LUT values."""

    lines: np.ndarray
    pixels: list[np.ndarray]
    luts: list[np.ndarray]


class Image:
    """One measurement (sub-swath x polarisation) of a product and its annotations."""

    # A constant calibration value A (|DN|^2 / A^2) replacing the calibration annotation, for
    # inputs that have none (set only by an explicit option, see :func:`open_pieces`).
    calibration_constant: float | None = None
    # (first line, end line, first sample, end sample) of the image holding pixels; None: all
    data_window: tuple[int, int, int, int] | None = None

    def __init__(self, product: "S1Product", swath: str, polarisation: str, files: dict[str, Path]):
        self.product = product
        # every window read from the measurement, (row_off, col_off, height, width): what the
        # processing touched, reported in the run record
        self.windows_read: list[tuple[int, int, int, int]] = []
        self.swath = swath
        self.polarisation = polarisation
        self.measurement = files["measurement"]
        self.annotation = files["annotation"]
        self.calibration_file = files["calibration"]
        self.noise_file = files.get("noise")  # needed only to remove thermal noise
        root = _parse_xml(self.annotation)
        self._root = root
        info = root.find("imageAnnotation/imageInformation")
        prod = root.find("generalAnnotation/productInformation")
        if info is None or prod is None:
            raise ServiceError(f"corrupt annotation {self.annotation.name}: no imageInformation")
        v = self.values = XmlValues(root, self.annotation.name, product.name)
        self.lines = v.integer("numberOfLines", within=info, minimum=1)
        self.samples = v.integer("numberOfSamples", within=info, minimum=1)
        self.first_line_time = v.time64("productFirstLineUtcTime", within=info)
        self.last_line_time = v.time64("productLastLineUtcTime", within=info)
        if self.last_line_time < self.first_line_time:
            raise v.error("productLastLineUtcTime", v.text("productLastLineUtcTime", within=info),
                          "is before productFirstLineUtcTime")
        self.azimuth_time_interval = v.number("azimuthTimeInterval", within=info, positive=True)
        self.range_pixel_spacing = v.number("rangePixelSpacing", within=info, positive=True)
        self.azimuth_pixel_spacing = v.number("azimuthPixelSpacing", within=info, positive=True)
        self.slant_range_time = v.number("slantRangeTime", within=info, positive=True)
        self.incidence_mid = v.number("incidenceAngleMidSwath", within=info, minimum=0, maximum=90)
        self.range_sampling_rate = v.number("rangeSamplingRate", within=prod, positive=True)
        self.radar_frequency = v.number("radarFrequency", within=prod, positive=True)
        self.projection = v.text("projection", within=prod)
        self.azimuth_steering_rate = v.number("azimuthSteeringRate", False, within=prod) or 0.0
        self.bursts, self.lines_per_burst, self.samples_per_burst = _bursts(v)

    # -- pixels ------------------------------------------------------------------------------

    def read(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """The measurement window: uint16 DN (GRD) or complex64 (SLC). A damaged TIFF is a
        ServiceError naming it, whichever read meets the damage."""
        from rasterio.windows import Window

        self.windows_read.append((int(row_off), int(col_off), int(height), int(width)))
        with _quiet_rasterio(), open_raster(self.measurement, f"{self.measurement.name} in {self.product.name}") as ds:
            if (ds.height, ds.width) != (self.lines, self.samples):
                raise ServiceError(f"measurement {self.measurement.name} is {ds.width}x{ds.height} but "
                                   f"its annotation says {self.samples}x{self.lines}")
            _check_measurement_format(ds, self.measurement.name, self.product.product_type)
            return ds.read(1, window=Window(col_off, row_off, width, height))

    # -- metadata that xarray-sentinel parses ------------------------------------------------

    @functools.cached_property
    def calibration(self):
        """The calibration LUTs (xarray Dataset: sigmaNought, betaNought, gamma, dn on line x pixel)."""
        from xarray_sentinel import sentinel1

        _check_calibration(self.calibration_file, self.product.name)
        try:
            return sentinel1.open_calibration_dataset(str(self.calibration_file), attrs={})
        except ServiceError:
            raise
        except Exception as e:
            raise ServiceError(f"corrupt calibration annotation {self.calibration_file.name}: "
                               f"{_one_line(e)}") from None

    @functools.cached_property
    def gcp(self):
        """The geolocation grid (xarray Dataset on azimuth_time x slant_range_time, with line/pixel)."""
        from xarray_sentinel import sentinel1

        _check_geolocation_grid(self.values)
        try:
            return sentinel1.open_gcp_dataset(str(self.annotation), attrs={})
        except Exception as e:
            raise ServiceError(f"corrupt geolocation grid in {self.annotation.name}: {_one_line(e)}") from None

    @functools.cached_property
    def orbit(self):
        """Annotation orbit state vectors (xarray Dataset: position, velocity on axis x azimuth_time)."""
        from xarray_sentinel import sentinel1

        _check_orbit(self.values)
        try:
            return sentinel1.open_orbit_dataset(str(self.annotation), attrs={})
        except Exception as e:
            raise ServiceError(f"corrupt orbit state vectors in {self.annotation.name}: {_one_line(e)}") from None

    @functools.cached_property
    def coordinate_conversion(self):
        """GRD slant range <-> ground range polynomials (xarray Dataset), None for SLC."""
        from xarray_sentinel import sentinel1

        if self.projection != "Ground Range":
            return None
        _check_coordinate_conversion(self.values)
        try:
            return sentinel1.open_coordinate_conversion_dataset(str(self.annotation), attrs={})
        except Exception as e:
            raise ServiceError(f"corrupt slant/ground range conversion in {self.annotation.name}: "
                               f"{_one_line(e)}") from None

    # -- metadata parsed here ----------------------------------------------------------------

    def _noise_root(self) -> ElementTree.Element:
        if self.noise_file is None or not self.noise_file.is_file():
            name = self.noise_file.relative_to(self.product.path) if self.noise_file else "noise annotation"
            raise ServiceError(f"{self.product.name}: thermal noise removal needs {name}, which is missing "
                               f"(or use --thermal_noise_removal false)")
        return _parse_xml(self.noise_file)

    @functools.cached_property
    def noise_range(self) -> NoiseRange | None:
        root = self._noise_root()
        v = XmlValues(root, self.noise_file.name, self.product.name)
        vectors = root.findall("noiseRangeVectorList/noiseRangeVector")
        lut_tag = "noiseRangeLut"
        if not vectors:  # IPF < 2.9 layout
            vectors = root.findall("noiseVectorList/noiseVector")
            lut_tag = "noiseLut"
        if not vectors:
            return None
        lines, pixels, luts = [], [], []
        for vec in vectors:
            lines.append(v.integer("line", within=vec))
            pixels.append(v.numbers("pixel", within=vec, integer=True).astype(np.float64))
            luts.append(v.numbers(lut_tag, within=vec, nonnegative=True, count=pixels[-1].size))
        return NoiseRange(np.array(lines, np.float64), pixels, luts)

    @functools.cached_property
    def noise_azimuth(self) -> list[NoiseAzimuthBlock]:
        root = self._noise_root()
        v = XmlValues(root, self.noise_file.name, self.product.name)
        blocks = []
        for vec in root.findall("noiseAzimuthVectorList/noiseAzimuthVector"):
            lines = v.numbers("line", within=vec, integer=True).astype(np.float64)
            lut = v.numbers("noiseAzimuthLut", within=vec, nonnegative=True, count=lines.size)
            swath = v.text("swath", False, within=vec) or self.swath
            # SLC vectors may omit the rectangle: then it is the whole image
            first_line = v.integer("firstAzimuthLine", False, within=vec)
            last_line = v.integer("lastAzimuthLine", False, within=vec)
            first_sample = v.integer("firstRangeSample", False, within=vec)
            last_sample = v.integer("lastRangeSample", False, within=vec)
            blocks.append(NoiseAzimuthBlock(swath, 0 if first_line is None else first_line,
                                            self.lines - 1 if last_line is None else last_line,
                                            0 if first_sample is None else first_sample,
                                            self.samples - 1 if last_sample is None else last_sample, lines, lut))
        return blocks

    @property
    def line_times(self) -> tuple[np.datetime64, float]:
        """(azimuth time of line 0, seconds per line) of a GRD or of a debursted SLC grid."""
        return self.first_line_time, self.azimuth_time_interval

    def __repr__(self):
        return f"<Image {self.product.name} {self.swath}/{self.polarisation} {self.samples}x{self.lines}>"


class S1Product:
    """A Sentinel-1 Level-1 product in SAFE layout (folder)."""

    def __init__(self, safe: Path, source: str):
        self.path = Path(safe)
        self.source = source
        # until the manifest gives the product's own name, errors name the folder (or the input)
        self.name = self.path.name[:-5] if self.path.name.upper().endswith(".SAFE") else source
        manifest = self.path / "manifest.safe"
        if not manifest.is_file():
            raise ServiceError(f"not a Sentinel-1 SAFE product: {source} has no manifest.safe")
        try:
            manifest_bytes = manifest.read_bytes()
            root = manifest_root(manifest_bytes, source)
        except OSError as e:
            raise ServiceError(f"corrupt manifest.safe in {source}: {_one_line(e)}") from None
        self.manifest_values = mv = XmlValues(root, "manifest.safe", self.name)
        # checked here: xarray-sentinel would read a bad number as "not a Sentinel-1 product"
        for tag, low, high in ((f"{{{SAFE_NS}}}orbitNumber", 1, None),
                               (f"{{{SAFE_NS}}}relativeOrbitNumber", 1, RELATIVE_ORBITS),
                               (f"{{{S1SARL1_NS}}}missionDataTakeID", 0, None)):
            for el in root.findall(f".//{tag}"):
                mv.integer(tag, el=el, minimum=low, maximum=high)
        self.start_time = mv.time64(f"{{{SAFE_NS}}}startTime")
        self.stop_time = mv.time64(f"{{{SAFE_NS}}}stopTime")
        if self.stop_time < self.start_time:
            raise mv.error("stopTime", mv.text(f"{{{SAFE_NS}}}stopTime"), "is before startTime")
        attrs, files = manifest_attributes(root, source)
        self.attrs = attrs
        self.mission = f"S1{attrs['number']}"
        self.mode = attrs["mode"]
        self.product_type = attrs["product_type"]
        self.relative_orbit = int(attrs["relative_orbit_number"])  # at the start (see manifest_attributes)
        self.absolute_orbit = int(attrs["orbit_number"])
        self.orbit_pass = attrs["pass"]
        # the name outputs and STAC ids carry: the product's own, whatever the folder or zip is called
        self.name = mv.product = _product_name(self.path, root, attrs, files, manifest_bytes)
        self.ipf_version = _ipf_version(mv)
        self.footprint_lonlat  # noqa: B018 - checked now, whatever uses it later
        self._files: dict[tuple[str, str], dict[str, Path]] = {}
        kinds = {"s1Level1ProductSchema": "annotation", "s1Level1CalibrationSchema": "calibration",
                 "s1Level1NoiseSchema": "noise", "s1Level1MeasurementSchema": "measurement"}
        for href, (rep_id, _prefix, swath, pol, _date) in files.items():
            kind = kinds.get(rep_id)
            if kind is None:
                continue
            path = self.path / os.path.normpath(href)
            self._files.setdefault((swath.upper(), pol.upper()), {})[kind] = path
        self._images: dict[tuple[str, str], Image] = {}

    # -- what is there -----------------------------------------------------------------------

    @property
    def listed_polarisations(self) -> list[str]:
        return [p.upper() for p in self.attrs.get("transmitter_receiver_polarisations", [])]

    def complete(self, swath: str, pol: str) -> bool:
        """Measurement, annotation and calibration present (the noise annotation is checked when
        thermal noise removal needs it)."""
        files = self._files.get((swath, pol), {})
        return all(k in files and files[k].is_file() for k in REQUIRED_FILES)

    @property
    def polarisations(self) -> list[str]:
        """Polarisations whose measurement and annotations are all present."""
        pols = []
        for (swath, pol) in self._files:
            if pol not in pols and self.complete(swath, pol):
                pols.append(pol)
        return sorted(pols, key=lambda p: ("VV", "HH", "VH", "HV").index(p) if p in ("VV", "HH", "VH", "HV") else 9)

    def swaths(self, pol: str) -> list[str]:
        return sorted(s for (s, p) in self._files if p == pol and self.complete(s, p))

    def image(self, swath: str, pol: str) -> Image:
        key = (swath.upper(), pol.upper())
        if key not in self._images:
            if not self.complete(*key):
                files = self._files.get(key, {})
                missing = [str(files[k].relative_to(self.path)) if k in files else f"its {k} file"
                           for k in REQUIRED_FILES if not (k in files and files[k].is_file())]
                raise ServiceError(f"{self.name}: {swath}/{pol} is incomplete, missing {', '.join(missing)}")
            self._images[key] = Image(self, key[0], key[1], self._files[key])
        return self._images[key]

    def require_polarisation(self, pol: str) -> str:
        pol = str(pol).strip().upper()
        available = self.polarisations
        if pol not in available:
            listed = ""
            if pol in self.listed_polarisations:
                absent = sorted(str(f.relative_to(self.path)) for (_, p), files in self._files.items() if p == pol
                                for k, f in files.items() if k in REQUIRED_FILES and not f.is_file())
                listed = f" (listed in the manifest but its files are absent: {', '.join(absent)})"
            raise ServiceError(f"polarization {pol} is not in {self.name}{listed}: available "
                               f"{', '.join(available) or 'none'}")
        return pol

    @functools.cached_property
    def footprint_lonlat(self):
        """The manifest footprint as a shapely Polygon in lon/lat (checked when the product opens)."""
        import shapely

        mv = self.manifest_values
        tag = "{http://www.opengis.net/gml}coordinates"
        text = mv.text(tag)
        pts = []
        for pair in text.split():
            lat, _, lon = pair.partition(",")
            pts.append((mv.number(tag, value=lon, minimum=-180, maximum=180),
                        mv.number(tag, value=lat, minimum=-90, maximum=90)))
        polygon = shapely.Polygon(pts) if len(pts) >= 3 else None
        if polygon is None or polygon.area == 0:
            raise mv.error(tag, text, "is not a footprint (at least three lat,lon points enclosing an area)")
        return polygon

    @property
    def sensing_time(self) -> dt.datetime:
        return _to_datetime(self.start_time)

    def __repr__(self):
        return f"<S1Product {self.name} {self.product_type} {self.mode} IPF {self.ipf_version}>"


def _check_measurement_format(ds, name: str, product_type: str) -> None:
    """A measurement is one band of uint16 DN (GRD) or complex samples (SLC) in a GeoTIFF: other
    data read as if it were one would calibrate into a meaningless product."""
    dtype = ds.dtypes[0]
    wanted = "complex samples" if product_type == "SLC" else "uint16 DN"
    right_type = dtype.startswith("complex") if product_type == "SLC" else dtype == "uint16"
    if ds.driver != "GTiff" or ds.count != 1 or not right_type:
        raise ServiceError(f"measurement {name} is not a {product_type} measurement: a {ds.driver} of {ds.count} "
                           f"band(s) of {dtype}, where one band of {wanted} in a GeoTIFF is expected")


# -- opening ---------------------------------------------------------------------------------

def open_product(path: Path, workdir: Path, *, expect: str | None = None) -> S1Product:
    """Open a SAFE folder or zip (extracted into ``workdir``); ``expect`` = "GRD" or "SLC"."""
    path = Path(path)
    source = path.name
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise ServiceError(f"not a Sentinel-1 product: {source} is neither a .SAFE folder nor a zip archive")
        safe = _extract(path, Path(workdir))
    elif path.is_dir():
        safe = path
        if not (safe / "manifest.safe").is_file():
            inner = sorted(p for p in safe.glob("*.SAFE") if (p / "manifest.safe").is_file())
            if len(inner) > 1:
                raise ServiceError(f"{source} holds {len(inner)} SAFE products ({', '.join(p.name for p in inner[:3])}"
                                   f"{', ...' if len(inner) > 3 else ''}): give one product per input")
            if not inner:
                raise ServiceError(f"not a Sentinel-1 SAFE product: {source} has no manifest.safe")
            safe = inner[0]
    else:
        raise ServiceError(f"input not found: {path}")
    product = S1Product(safe, source)
    if product.product_type not in ("GRD", "SLC"):
        raise ServiceError(f"{product.name} is a {product.product_type} product: only GRD and SLC are supported")
    if product.mode not in ("IW", "SM") and not product.mode.startswith("S"):
        raise ServiceError(f"{product.name} was acquired in {product.mode} mode: supported modes are IW and SM")
    if expect and product.product_type != expect:
        other = "S1-SLC-preprocess" if product.product_type == "SLC" else "S1-GRD-preprocess"
        raise ServiceError(f"{product.name} is a {product.product_type} product, not {expect}: use {other}")
    return product


def _extract(archive: Path, workdir: Path) -> Path:
    """Extract the SAFE folder of a zip, refusing members that would land outside ``workdir``;
    ``zipfile`` checks each member's CRC as it is copied."""
    member = None
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            # the top folder may have any name (a renamed download), as for Sentinel-2 zips
            manifests = [n for n in names if n == "manifest.safe" or n.endswith("/manifest.safe")]
            if not manifests:
                raise ServiceError(f"not a Sentinel-1 product: {archive.name} holds no .SAFE/manifest.safe")
            if len(manifests) > 1:
                raise ServiceError(f"{archive.name} holds {len(manifests)} Sentinel-1 products: give one product "
                                   f"per input")
            root = workdir / (archive.stem if archive.stem.upper().endswith(".SAFE") else "product")
            root.mkdir(parents=True, exist_ok=True)
            base = root.resolve()
            for info in zf.infolist():
                target = (root / info.filename).resolve()
                if not target.is_relative_to(base):
                    raise ServiceError(f"unsafe member {info.filename!r} in {archive.name}: it would be "
                                       f"written outside the work folder")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                member = info
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 8 << 20)
    except ServiceError:
        raise
    except ZIP_ERRORS as e:
        raise zip_failure(e, archive, member and Path(member.filename).name, member) from None
    except OSError as e:
        if e.errno in _ENVIRONMENT_ERRNOS:
            raise  # a full disk while extracting: the contract reports the environment
        raise ServiceError(f"corrupt zip archive {archive.name}: {_one_line(e)}") from None
    manifest = manifests[0]
    return root / (manifest[: -len("/manifest.safe")] if "/" in manifest else "")


def manifest_root(data: bytes, source: str) -> ElementTree.Element:
    """The root of the manifest.safe of ``source``; ServiceError unless it is a Sentinel-1 one."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as e:
        raise ServiceError(f"corrupt manifest.safe in {source}: {_one_line(e)}") from None
    if (root.findtext(f".//{{{SAFE_NS}}}platform/{{{SAFE_NS}}}familyName") or "").strip() != "SENTINEL-1":
        # other SAFE products (Sentinel-2's) have a manifest.safe too: say what it is, not what it lacks
        platform = root.find(".//{*}platform")
        family = "" if platform is None else (platform.findtext("{*}familyName") or "").strip()
        number = "" if platform is None else (platform.findtext("{*}number") or "").strip()
        what = f"a {(family + ('' if family[-1:].isdigit() else '-') + number).title()} product" \
            if family and number else "its manifest.safe names no Sentinel-1 platform"
        raise ServiceError(f"not a Sentinel-1 product: {source} is {what}")
    return root


def manifest_attributes(root: ElementTree.Element, source: str) -> tuple[dict, dict]:
    """xarray-sentinel's attributes and file list of a manifest, slices across the ascending node
    included: ESA writes their start and stop orbits (N and N+1, relative orbits too), which
    xarray-sentinel refuses. Their orbits are the start ones, as in ESA's product name and
    catalogue; the stop ones are kept as ``orbit_number_stop`` and ``relative_orbit_number_stop``."""
    from xarray_sentinel import esa_safe

    edited, stops = copy.deepcopy(root), {}
    for tag, after in (("orbitNumber", lambda n: n + 1), ("relativeOrbitNumber", lambda n: n % RELATIVE_ORBITS + 1)):
        found = {el.get("type"): el for el in edited.iter(f"{{{SAFE_NS}}}{tag}")}
        start, stop = found.get("start"), found.get("stop")
        if start is None or stop is None or not (start.text or "").strip().isdigit() or \
                not (stop.text or "").strip().isdigit() or int(start.text) == int(stop.text):
            continue  # the same orbit, or a problem that xarray-sentinel's error names
        if int(stop.text) != after(int(start.text)):
            raise ServiceError(f"manifest.safe of {source}: {tag} stop {stop.text.strip()} is neither the start "
                               f"orbit {start.text.strip()} nor the next one")
        stops[tag], stop.text = int(stop.text), start.text
    try:
        attrs, files = esa_safe.parse_manifest_sentinel1.__wrapped__(io.BytesIO(ElementTree.tostring(edited)))
    except ValueError as e:
        raise ServiceError(f"not a Sentinel-1 product: {source} ({_one_line(e)})") from None
    except Exception as e:
        raise ServiceError(f"corrupt manifest.safe in {source}: {_one_line(e)}") from None
    attrs["orbit_number_stop"] = stops.get("orbitNumber", attrs["orbit_number"])
    attrs["relative_orbit_number_stop"] = stops.get("relativeOrbitNumber", attrs["relative_orbit_number"])
    return attrs, files


_POLARISATIONS_CODE = {("HH",): "SH", ("VV",): "SV", ("HH", "HV"): "DH", ("VH", "VV"): "DV", ("HV",): "HV",
                       ("VH",): "VH"}


def _product_name(safe: Path, root: ElementTree.Element, attrs: dict, files: dict, manifest: bytes) -> str:
    """ESA's name of the product, MMM_BB_TTTR_LFPP_<start>_<stop>_<orbit>_<data take>_<id>, from its
    manifest: the folder's own name where it is that name; else built as ESA builds it, the
    resolution class from the pixel spacing and the unique id the CRC-16 (CCITT) of manifest.safe."""
    mode = attrs["swaths"][0] if attrs["mode"] == "SM" and attrs["swaths"] else attrs["mode"]  # S1..S6
    pols = tuple(sorted(p.upper() for p in attrs["transmitter_receiver_polarisations"]))
    klass = (root.findtext(f".//{{{S1SARL1_NS}}}productClass") or "S").strip()
    times = "_".join(re.sub(r"[-:]", "", attrs[t])[:15] for t in ("start_time", "stop_time"))
    head = f"S1{attrs['number']}_{mode}_{attrs['product_type']}"
    tail = (f"_1{klass}{_POLARISATIONS_CODE.get(pols, 'D' + pols[0][0] if pols else 'XX')}_{times}_"
            f"{attrs['orbit_number']:06d}_{attrs['mission_data_take_id']:06X}")
    stem = safe.name[:-5] if safe.name.upper().endswith(".SAFE") else safe.name
    if re.fullmatch(re.escape(head) + "[FHM_]" + re.escape(tail) + "_[0-9A-F]{4}", stem):
        return stem
    crc = binascii.crc_hqx(manifest, 0xFFFF)
    return f"{head}{_resolution_class(safe, attrs, files)}{tail}_{crc:04X}"


def _resolution_class(safe: Path, attrs: dict, files: dict) -> str:
    """F, H or M for a GRD (from its pixel spacing: SM 4 / 10 / 40 m, IW 10 / 40 m, EW 25 / 40 m;
    WV products are all M), "_" for other products or when no annotation tells."""
    if attrs["product_type"] != "GRD":
        return "_"
    if attrs["mode"] == "WV":
        return "M"
    for href, (rep_id, *_rest) in files.items():
        if rep_id == "s1Level1ProductSchema":
            try:
                spacing = float(ElementTree.parse(safe / os.path.normpath(href)).getroot().findtext(
                    "imageAnnotation/imageInformation/rangePixelSpacing"))
            except (OSError, ElementTree.ParseError, TypeError, ValueError):
                continue
            return "F" if spacing < 9 else "H" if spacing <= 25 else "M"
    return "_"


# -- helpers ---------------------------------------------------------------------------------

def _parse_xml(path: Path) -> ElementTree.Element:
    try:
        return ElementTree.parse(path).getroot()
    except ElementTree.ParseError as e:
        raise ServiceError(f"corrupt annotation {Path(path).name}: {_one_line(e)}") from None
    except OSError as e:
        raise ServiceError(f"cannot read {Path(path).name}: {e.strerror or e}") from None


def _bursts(v: XmlValues) -> tuple[list[Burst], int, int]:
    timing = v.root.find("swathTiming")
    if timing is None:
        return [], 0, 0
    lines = v.integer("linesPerBurst", False, within=timing, minimum=0) or 0
    samples = v.integer("samplesPerBurst", False, within=timing, minimum=0) or 0
    bursts = []
    for b in timing.findall("burstList/burst"):
        first = v.numbers("firstValidSample", within=b, integer=True, count=lines or None)
        last = v.numbers("lastValidSample", within=b, integer=True, count=first.size)
        bursts.append(Burst(v.time64("azimuthTime", within=b), first, last))
    return bursts, lines, samples


def _ipf_version(mv: XmlValues) -> float:
    """The IPF version of the manifest (0.0 when it names none)."""
    for el in mv.root.findall(f".//{{{SAFE_NS}}}software"):
        if el.get("name") == "Sentinel-1 IPF":
            text = (el.get("version") or "").strip()
            if not re.fullmatch(r"\d{1,3}(\.\d{1,3})?", text):
                raise mv.error("software version", text, "is not a Sentinel-1 IPF version (such as 003.40)")
            return float(text)
    return 0.0


def _check_calibration(path: Path, product: str) -> None:
    """Every calibration vector: time, line, whole pixels, and LUTs of finite values > 0."""
    v = XmlValues(_parse_xml(path), path.name, product)
    vectors = v.root.findall("calibrationVectorList/calibrationVector")
    if not vectors:
        raise v.missing("calibrationVector")
    for vec in vectors:
        v.time64("azimuthTime", within=vec)
        v.integer("line", within=vec)
        pixels = v.numbers("pixel", within=vec, integer=True)
        for tag in ("sigmaNought", "betaNought", "gamma", "dn"):
            if vec.find(tag) is not None:
                v.numbers(tag, within=vec, positive=True, count=pixels.size)


def _check_geolocation_grid(v: XmlValues) -> None:
    points = v.root.findall("geolocationGrid/geolocationGridPointList/geolocationGridPoint")
    if len(points) < 4:
        raise ServiceError(f"{v.where}: the geolocation grid has {len(points)} points, at least 4 expected")
    for pt in points:
        v.time64("azimuthTime", within=pt)
        v.number("slantRangeTime", within=pt, positive=True)
        v.integer("line", within=pt)
        v.integer("pixel", within=pt)
        v.number("latitude", within=pt, minimum=-90, maximum=90)
        v.number("longitude", within=pt, minimum=-180, maximum=180)
        v.number("height", within=pt)
        for tag in ("incidenceAngle", "elevationAngle"):
            v.number(tag, False, within=pt)


def _check_orbit(v: XmlValues) -> None:
    vectors = v.root.findall("generalAnnotation/orbitList/orbit")
    if len(vectors) < 2:
        raise ServiceError(f"{v.where}: {len(vectors)} orbit state vectors, at least 2 expected")
    for orb in vectors:
        v.time64("time", within=orb)
        for part in ("position", "velocity"):
            for axis in "xyz":
                v.number(f"{part}/{axis}", within=orb)


def _check_coordinate_conversion(v: XmlValues) -> None:
    for cc in v.root.findall("coordinateConversion/coordinateConversionList/coordinateConversion"):
        v.time64("azimuthTime", within=cc)
        v.number("slantRangeTime", within=cc, positive=True)
        v.number("sr0", within=cc)
        v.numbers("srgrCoefficients", within=cc)
        v.number("gr0", within=cc)
        v.numbers("grsrCoefficients", within=cc)


def _to_datetime(t: np.datetime64) -> dt.datetime:
    seconds = (t - np.datetime64("1970-01-01T00:00:00", "ns")) / ONE_SECOND
    return dt.datetime.fromtimestamp(float(seconds), dt.timezone.utc)


def seconds_between(a: np.datetime64, b: np.datetime64) -> float:
    """b - a in seconds (float)."""
    return float((np.datetime64(b, "ns") - np.datetime64(a, "ns")) / ONE_SECOND)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class _quiet_rasterio:
    """Silence GDAL's NotGeoreferencedWarning on SAFE measurements (they carry GCPs or nothing)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        import rasterio.errors

        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


# -- pieces of a product: swath annotation + (cropped) measurement, no SAFE folder ------------

# SARProcessing.jl's crops: "<swath measurement>_subset_hight<l0>_<l1>_width<s0>_<s1>.tiff"; only
# the first line and sample are used (the size is the TIFF's own: the names' end values are not
# always right, the shared Terceira crop says width11000_11000 for 1401 samples)
CROP_NAME_RE = re.compile(r"_hight(\d+)_\d+_width(\d+)_\d+", re.IGNORECASE)
_PIECE_RE = re.compile(r"^(s1[a-d])-(iw[1-3]|s[1-6])-slc-(hh|hv|vh|vv)[-_]", re.IGNORECASE)
# Sentinel-1 relative orbit of absolute orbit 1 (ESA's formula: (absolute - offset) mod 175 + 1),
# per mission as (offset, last absolute orbit it holds for): S1C moved to its final orbit in June
# 2026 (offset 172 up to orbit 8018, 99 after; ESA's SentiWiki "S1 Products" and FRINGE 2026)
_RELATIVE_ORBIT_OFFSET = {"S1A": ((73, None),), "S1B": ((27, None),), "S1C": ((172, 8018), (99, None))}


def _relative_orbit(mission: str, absolute: int) -> int | None:
    """ESA's relative orbit of an absolute orbit, None for a mission without a known formula."""
    for offset, last in _RELATIVE_ORBIT_OFFSET.get(mission, ()):
        if last is None or absolute <= last:
            return (absolute - offset) % RELATIVE_ORBITS + 1
    return None


def is_pieces(path: Path) -> bool:
    """True for a folder without manifest.safe that holds SLC swath annotation XML files."""
    path = Path(path)
    return path.is_dir() and not (path / "manifest.safe").exists() and not any(path.glob("*.SAFE")) and \
        any(_PIECE_RE.match(p.name) for p in path.glob("*.xml"))


def crop_offset_from_name(name: str) -> tuple[int, int] | None:
    m = CROP_NAME_RE.search(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


class CropImage(Image):
    """A measurement that holds a window of its swath (read as zeros, i.e. NoData, elsewhere),
    with no calibration or noise annotation."""

    def __init__(self, product, swath, polarisation, files, offset: tuple[int, int] | None,
                 calibration_constant: float):
        super().__init__(product, swath, polarisation, {**files, "calibration": None, "noise": None})
        self.calibration_constant = float(calibration_constant)
        where = f"{self.measurement.name}"
        if offset is None:
            offset = crop_offset_from_name(self.measurement.name)
        with _quiet_rasterio(), open_raster(self.measurement, where) as ds:
            height, width, dtype = ds.height, ds.width, ds.dtypes[0]
        if offset is None:
            if (height, width) != (self.lines, self.samples):
                raise ServiceError(f"measurement {where} is {width}x{height}, not the {self.samples}x{self.lines} "
                                   f"of its annotation, and its name gives no crop offset: set --crop_offset "
                                   f"LINE,SAMPLE")
            offset = (0, 0)
        if not dtype.startswith("complex"):
            raise ServiceError(f"measurement {where} holds {dtype} samples, not complex SLC samples")
        l0, s0 = offset
        if l0 < 0 or s0 < 0 or l0 + height > self.lines or s0 + width > self.samples:
            raise ServiceError(f"measurement {where} ({width}x{height} at line {l0}, sample {s0}) does not fit in "
                               f"the {self.samples}x{self.lines} swath of {self.annotation.name}")
        self.offset = (int(l0), int(s0))
        self.data_window = (int(l0), int(l0 + height), int(s0), int(s0 + width))

    def read(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """The swath window: the crop's samples where it has them, 0 (NoData) elsewhere."""
        from rasterio.windows import Window

        self.windows_read.append((int(row_off), int(col_off), int(height), int(width)))
        out = np.zeros((height, width), np.complex64)
        l0, l1, s0, s1 = self.data_window
        a0, a1 = max(row_off, l0), min(row_off + height, l1)
        b0, b1 = max(col_off, s0), min(col_off + width, s1)
        if a1 <= a0 or b1 <= b0:
            return out
        with _quiet_rasterio(), open_raster(self.measurement, f"{self.measurement.name}") as ds:
            out[a0 - row_off:a1 - row_off, b0 - col_off:b1 - col_off] = ds.read(
                1, window=Window(b0 - s0, a0 - l0, b1 - b0, a1 - a0))
        return out


class PiecesProduct:
    """An SLC given as pieces: swath annotation XML files and their measurement TIFFs (matched
    by their "s1x-<swath>-slc-<pol>" prefix) in one folder, without manifest, calibration or noise
    annotation. What the manifest would say is taken from the annotation header."""

    product_type = "SLC"

    def __init__(self, folder: Path, source: str, *, calibration_constant: float | None,
                 offset: tuple[int, int] | None = None):
        self.path = Path(folder)
        self.source = source
        self.name = self.path.name
        if not calibration_constant:
            raise ServiceError(f"{source} has no calibration annotation (pieces of a product, no SAFE folder): "
                               f"give the calibration value with --calibration_constant (e.g. 237 for Beta, "
                               f"the constant betaNought of IW SLCs)")
        self.calibration_constant = float(calibration_constant)
        self._pieces: dict[tuple[str, str], dict[str, Path]] = {}
        tiffs = sorted(p for p in self.path.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
        for xml in sorted(self.path.glob("*.xml")):
            m = _PIECE_RE.match(xml.name)
            if not m:
                continue
            prefix = xml.name[:m.end() - 1].lower()
            match = [t for t in tiffs if t.name.lower().startswith(prefix)]
            if len(match) != 1:
                raise ServiceError(f"{source}: {len(match)} measurement TIFFs named {prefix}* for {xml.name}, "
                                   f"one expected")
            self._pieces[(m.group(2).upper(), m.group(3).upper())] = {"annotation": xml, "measurement": match[0]}
        if not self._pieces:
            raise ServiceError(f"{source} holds no SLC swath annotation (s1x-<swath>-slc-<pol>-*.xml)")
        self._offset = offset
        self._images: dict[tuple[str, str], Image] = {}
        first = next(iter(self._pieces.values()))["annotation"]
        root = _parse_xml(first)
        v = XmlValues(root, first.name, self.name)
        header = root.find("adsHeader")
        if header is None or v.text("productType", within=header) != "SLC":
            raise ServiceError(f"{first.name} is not the annotation of an SLC swath (adsHeader/productType)")
        self.mission = v.text("missionId", within=header).upper()
        mode = v.text("mode", within=header).upper()
        self.mode = mode
        self.start_time = v.time64("startTime", within=header)
        self.stop_time = v.time64("stopTime", within=header)
        self.absolute_orbit = v.integer("absoluteOrbitNumber", within=header, minimum=1)
        self.relative_orbit = _relative_orbit(self.mission, self.absolute_orbit)
        self.orbit_pass = v.text("generalAnnotation/productInformation/pass", False) or "unknown"
        self.ipf_version = 0.0  # not in a swath annotation; used only by the noise removal, absent here
        self.attrs = {}

    @property
    def polarisations(self) -> list[str]:
        return sorted({p for (_, p) in self._pieces})

    listed_polarisations = polarisations

    def swaths(self, pol: str) -> list[str]:
        return sorted(s for (s, p) in self._pieces if p == pol)

    def image(self, swath: str, pol: str) -> Image:
        key = (swath.upper(), pol.upper())
        if key not in self._pieces:
            raise ServiceError(f"{self.name}: no {swath}/{pol} annotation and measurement")
        if key not in self._images:
            self._images[key] = CropImage(self, key[0], key[1], self._pieces[key], self._offset,
                                          self.calibration_constant)
        return self._images[key]

    def require_polarisation(self, pol: str) -> str:
        pol = str(pol).strip().upper()
        if pol not in self.polarisations:
            raise ServiceError(f"polarization {pol} is not in {self.name}: available {', '.join(self.polarisations)}")
        return pol

    @functools.cached_property
    def footprint_lonlat(self):
        """The outline of the measurements' pixels in lon/lat (geolocation grid, bilinear)."""
        import shapely

        from .geocoding import GcpModel

        parts = []
        for key in self._pieces:
            im = self.image(*key)
            l0, l1, s0, s1 = im.data_window
            parts.append(GcpModel.from_gcp(im.gcp).outline(l0, l1, s0, s1, 9))
        return shapely.union_all(parts)

    @property
    def sensing_time(self) -> dt.datetime:
        return _to_datetime(self.start_time)

    def __repr__(self):
        return f"<PiecesProduct {self.name} SLC {self.mode}>"


def open_pieces(folder: Path, *, calibration_constant: float | None, offset: tuple[int, int] | None = None):
    """An SLC given as pieces (see :class:`PiecesProduct`); ``offset`` = (line, sample) of the
    measurement's first pixel in its swath (default: from the measurement's file name)."""
    return PiecesProduct(Path(folder), Path(folder).name, calibration_constant=calibration_constant, offset=offset)
