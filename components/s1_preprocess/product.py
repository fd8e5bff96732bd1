"""Sentinel-1 Level-1 SAFE products (GRD and SLC, IW and SM): what is in them and their metadata.

Parsing is left to ``xarray-sentinel`` where it already does the work: the manifest
(``esa_safe.parse_manifest_sentinel1``), the calibration LUTs, the geolocation grid, the orbit
state vectors and the GRD slant/ground range conversion. What it lacks is added here:

* thermal noise in both layouts: the range vectors with a varying pixel sampling per vector
  (``xarray-sentinel`` refuses those), the IPF < 2.9 ``noiseVector`` layout, and the IPF >= 2.9
  azimuth noise *blocks* of GRDs (it exposes only the first of them);
* the TOPS burst list with the valid-sample ranges used by the deburst;
* the few annotation fields the processing needs (a plain ElementTree read: fast).

A product is opened from a ``.SAFE`` folder or a ``.zip`` (extracted with path checks into the
work folder). Everything a user can get wrong is a :class:`ServiceError` with one line.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from components.common.errors import ServiceError

log = logging.getLogger(__name__)

# Thermal noise annotation: from IPF 2.90 the noise file holds range vectors
# (noiseRangeVectorList) and azimuth vectors (noiseAzimuthVectorList, one block per sub-swath
# and azimuth segment for GRDs); before, one 2-D LUT (noiseVectorList/noiseLut).
IPF_AZIMUTH_NOISE = 2.90
# From IPF 2.90 ESA also masks the GRD border noise itself (samples set to 0).
IPF_BORDER_MASKED = 2.90

SPEED_OF_LIGHT = 299_792_458.0
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

    def __init__(self, product: "S1Product", swath: str, polarisation: str, files: dict[str, Path]):
        self.product = product
        self.swath = swath
        self.polarisation = polarisation
        self.measurement = files["measurement"]
        self.annotation = files["annotation"]
        self.calibration_file = files["calibration"]
        self.noise_file = files["noise"]
        root = _parse_xml(self.annotation)
        self._root = root
        info = root.find("imageAnnotation/imageInformation")
        prod = root.find("generalAnnotation/productInformation")
        if info is None or prod is None:
            raise ServiceError(f"corrupt annotation {self.annotation.name}: no imageInformation")
        self.lines = int(_text(info, "numberOfLines"))
        self.samples = int(_text(info, "numberOfSamples"))
        self.first_line_time = np.datetime64(_text(info, "productFirstLineUtcTime"), "ns")
        self.last_line_time = np.datetime64(_text(info, "productLastLineUtcTime"), "ns")
        self.azimuth_time_interval = float(_text(info, "azimuthTimeInterval"))
        self.range_pixel_spacing = float(_text(info, "rangePixelSpacing"))
        self.azimuth_pixel_spacing = float(_text(info, "azimuthPixelSpacing"))
        self.slant_range_time = float(_text(info, "slantRangeTime"))
        self.incidence_mid = float(_text(info, "incidenceAngleMidSwath"))
        self.range_sampling_rate = float(_text(prod, "rangeSamplingRate"))
        self.radar_frequency = float(_text(prod, "radarFrequency"))
        self.projection = _text(prod, "projection")
        steering = prod.find("azimuthSteeringRate")
        self.azimuth_steering_rate = float(steering.text) if steering is not None else 0.0
        self.bursts, self.lines_per_burst, self.samples_per_burst = _bursts(root)

    # -- pixels ------------------------------------------------------------------------------

    def read(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """The measurement window: uint16 DN (GRD) or complex64 (SLC)."""
        import rasterio
        from rasterio.windows import Window

        try:
            with _quiet_rasterio(), rasterio.open(self.measurement) as ds:
                if (ds.height, ds.width) != (self.lines, self.samples):
                    raise ServiceError(f"measurement {self.measurement.name} is {ds.width}x{ds.height} but "
                                       f"its annotation says {self.samples}x{self.lines}")
                return ds.read(1, window=Window(col_off, row_off, width, height))
        except rasterio.errors.RasterioError as e:
            raise ServiceError(f"cannot read measurement {self.measurement.name}: {_one_line(e)}") from None

    # -- metadata that xarray-sentinel parses ------------------------------------------------

    @functools.cached_property
    def calibration(self):
        """The calibration LUTs (xarray Dataset: sigmaNought, betaNought, gamma, dn on line x pixel)."""
        from xarray_sentinel import sentinel1

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

        try:
            return sentinel1.open_gcp_dataset(str(self.annotation), attrs={})
        except Exception as e:
            raise ServiceError(f"corrupt geolocation grid in {self.annotation.name}: {_one_line(e)}") from None

    @functools.cached_property
    def orbit(self):
        """Annotation orbit state vectors (xarray Dataset: position, velocity on axis x azimuth_time)."""
        from xarray_sentinel import sentinel1

        return sentinel1.open_orbit_dataset(str(self.annotation), attrs={})

    @functools.cached_property
    def coordinate_conversion(self):
        """GRD slant range <-> ground range polynomials (xarray Dataset), None for SLC."""
        from xarray_sentinel import sentinel1

        if self.projection != "Ground Range":
            return None
        return sentinel1.open_coordinate_conversion_dataset(str(self.annotation), attrs={})

    # -- metadata parsed here ----------------------------------------------------------------

    @functools.cached_property
    def noise_range(self) -> NoiseRange | None:
        root = _parse_xml(self.noise_file)
        vectors = root.findall("noiseRangeVectorList/noiseRangeVector")
        lut_tag = "noiseRangeLut"
        if not vectors:  # IPF < 2.9 layout
            vectors = root.findall("noiseVectorList/noiseVector")
            lut_tag = "noiseLut"
        if not vectors:
            return None
        lines, pixels, luts = [], [], []
        for v in vectors:
            lines.append(int(_text(v, "line")))
            pixels.append(np.array(_text(v, "pixel").split(), dtype=np.float64))
            luts.append(np.array(_text(v, lut_tag).split(), dtype=np.float64))
            if pixels[-1].size != luts[-1].size or pixels[-1].size == 0:
                raise ServiceError(f"corrupt noise annotation {self.noise_file.name}: pixel and LUT counts differ")
        return NoiseRange(np.array(lines, np.float64), pixels, luts)

    @functools.cached_property
    def noise_azimuth(self) -> list[NoiseAzimuthBlock]:
        root = _parse_xml(self.noise_file)
        blocks = []
        for v in root.findall("noiseAzimuthVectorList/noiseAzimuthVector"):
            lines = np.array(_text(v, "line").split(), dtype=np.float64)
            lut = np.array(_text(v, "noiseAzimuthLut").split(), dtype=np.float64)
            if lines.size != lut.size or lines.size == 0:
                raise ServiceError(f"corrupt noise annotation {self.noise_file.name}: azimuth line and LUT "
                                   f"counts differ")
            swath = v.findtext("swath") or self.swath
            # SLC vectors may omit the rectangle: then it is the whole image
            first_line = int(v.findtext("firstAzimuthLine") or 0)
            last_line = int(v.findtext("lastAzimuthLine") or self.lines - 1)
            first_sample = int(v.findtext("firstRangeSample") or 0)
            last_sample = int(v.findtext("lastRangeSample") or self.samples - 1)
            blocks.append(NoiseAzimuthBlock(swath, first_line, last_line, first_sample, last_sample, lines, lut))
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
        from xarray_sentinel import esa_safe

        self.path = Path(safe)
        self.source = source
        self.name = self.path.name[:-5] if self.path.name.upper().endswith(".SAFE") else self.path.name
        manifest = self.path / "manifest.safe"
        if not manifest.is_file():
            raise ServiceError(f"not a Sentinel-1 SAFE product: {source} has no manifest.safe")
        try:
            attrs, files = esa_safe.parse_manifest_sentinel1.__wrapped__(str(manifest))
        except ValueError as e:
            raise ServiceError(f"not a Sentinel-1 product: {source} ({_one_line(e)})") from None
        except Exception as e:
            raise ServiceError(f"corrupt manifest.safe in {source}: {_one_line(e)}") from None
        self.attrs = attrs
        self.mission = f"S1{attrs['number']}"
        self.mode = attrs["mode"]
        self.product_type = attrs["product_type"]
        self.relative_orbit = int(attrs["relative_orbit_number"])
        self.absolute_orbit = int(attrs["orbit_number"])
        self.orbit_pass = attrs["pass"]
        self.start_time = np.datetime64(attrs["start_time"], "ns")
        self.stop_time = np.datetime64(attrs["stop_time"], "ns")
        self.ipf_version = _ipf_version(manifest)
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
        files = self._files.get((swath, pol), {})
        return all(k in files and files[k].is_file() for k in ("annotation", "calibration", "noise", "measurement"))

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
                missing = [k for k in ("measurement", "annotation", "calibration", "noise")
                           if not self._files.get(key, {}).get(k, Path("/nonexistent")).is_file()]
                raise ServiceError(f"{self.name}: {swath}/{pol} is incomplete, missing {', '.join(missing)}")
            self._images[key] = Image(self, key[0], key[1], self._files[key])
        return self._images[key]

    def require_polarisation(self, pol: str) -> str:
        pol = str(pol).strip().upper()
        available = self.polarisations
        if pol not in available:
            listed = "" if pol not in self.listed_polarisations else \
                " (listed in the manifest but its files are absent)"
            raise ServiceError(f"polarization {pol} is not in {self.name}{listed}: available "
                               f"{', '.join(available) or 'none'}")
        return pol

    @property
    def footprint_lonlat(self):
        """The manifest footprint as a shapely Polygon in lon/lat."""
        import shapely

        text = ElementTree.parse(self.path / "manifest.safe").getroot().findtext(
            ".//{http://www.opengis.net/gml}coordinates")
        if not text:
            raise ServiceError(f"corrupt manifest.safe in {self.name}: no footprint")
        pts = [tuple(float(v) for v in p.split(",")) for p in text.split()]
        return shapely.Polygon([(lon, lat) for lat, lon in pts])

    @property
    def sensing_time(self) -> dt.datetime:
        return _to_datetime(self.start_time)

    def __repr__(self):
        return f"<S1Product {self.name} {self.product_type} {self.mode} IPF {self.ipf_version}>"


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
            inner = [p for p in safe.glob("*.SAFE") if (p / "manifest.safe").is_file()]
            if len(inner) != 1:
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
    """Extract the SAFE folder of a zip, refusing members that would land outside ``workdir``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            manifests = [n for n in names if n.endswith(".SAFE/manifest.safe") or n == "manifest.safe"]
            if not manifests:
                raise ServiceError(f"not a Sentinel-1 product: {archive.name} holds no .SAFE/manifest.safe")
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
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 8 << 20)
    except ServiceError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, zlib_error()) as e:
        raise ServiceError(f"corrupt zip archive {archive.name}: {_one_line(e)}") from None
    manifest = manifests[0]
    return root / (manifest[: -len("/manifest.safe")] if "/" in manifest else "")


def zlib_error():
    import zlib

    return zlib.error


# -- helpers ---------------------------------------------------------------------------------

def _parse_xml(path: Path) -> ElementTree.Element:
    try:
        return ElementTree.parse(path).getroot()
    except ElementTree.ParseError as e:
        raise ServiceError(f"corrupt annotation {Path(path).name}: {_one_line(e)}") from None
    except OSError as e:
        raise ServiceError(f"cannot read {Path(path).name}: {e.strerror or e}") from None


def _text(node: ElementTree.Element, tag: str) -> str:
    value = node.findtext(tag)
    if value is None:
        raise ServiceError(f"corrupt annotation: element {tag} missing")
    return value.strip()


def _bursts(root: ElementTree.Element) -> tuple[list[Burst], int, int]:
    timing = root.find("swathTiming")
    if timing is None:
        return [], 0, 0
    lines = int(timing.findtext("linesPerBurst") or 0)
    samples = int(timing.findtext("samplesPerBurst") or 0)
    bursts = []
    for b in timing.findall("burstList/burst"):
        bursts.append(Burst(np.datetime64(_text(b, "azimuthTime"), "ns"),
                            np.array(_text(b, "firstValidSample").split(), dtype=np.int64),
                            np.array(_text(b, "lastValidSample").split(), dtype=np.int64)))
    return bursts, lines, samples


def _ipf_version(manifest: Path) -> float:
    text = manifest.read_text(errors="replace")
    m = re.search(r'<safe:software[^>]*name="Sentinel-1 IPF"[^>]*version="([0-9.]+)"', text)
    if not m:
        m = re.search(r'<safe:software[^>]*version="([0-9.]+)"[^>]*name="Sentinel-1 IPF"', text)
    return float(m.group(1)) if m else 0.0


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
