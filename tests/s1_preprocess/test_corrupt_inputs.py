"""Damaged products given to S1-GRD-preprocess / S1-SLC-preprocess: measurement TIFFs cut short,
emptied or overwritten (also inside a zip), a DEM cut short, and metadata values that are not what
the format says (text or NaN where the annotation, calibration, noise or manifest holds a number or
a time). Each case: exit status 2, one line ``<prog>: error: ...`` naming the file and the element
or what is wrong, no traceback, nothing in the output folder and no work folder left behind.

Every case corrupts a copy of a small product written by ``tests/fixtures`` (on the geometry of
the shared sample products: skipped without them)."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import pytest
import rasterio
import rasterio.shutil

from components.s1_preprocess.cli import main_grd, main_slc
from tests.fixtures import s1_products
from tests.fixtures.corruption import cut, one_file, scramble

GRD_PROG, SLC_PROG = "S1-GRD-preprocess", "S1-SLC-preprocess"


@pytest.fixture(scope="module")
def originals(real_grd, real_slc, dem_rome, tmp_path_factory):
    root = tmp_path_factory.mktemp("originals")
    grd = s1_products.write_grd(root / "grd", source=real_grd, pols=("VV",), window=(7900, 21900, 100, 120))
    slc = s1_products.write_slc(root / "slc", source=real_slc, bursts=(3, 1), samples=(9000, 120))
    # a DEM whose directory comes first (as in a COG): cut short, it still opens
    dem = root / "dem_cog.tif"
    rasterio.shutil.copy(dem_rome, dem, driver="COG", COMPRESS="NONE", BLOCKSIZE=128)
    return {"grd": grd, "slc": slc, "dem": dem}


# -- corruptions (each takes the copied .SAFE folder and returns the input to give) ----------------


MEASUREMENT = "measurement/*.tiff"
ANNOTATION = "annotation/s1*.xml"
CALIBRATION = "annotation/calibration/calibration-*.xml"
NOISE = "annotation/calibration/noise-*.xml"


def set_element(file_pattern: str, tag: str, value: str, after: str | None = None):
    """Replace the text of the first element ``tag`` (after the first ``after`` when given)."""
    def corrupt(safe: Path) -> Path:
        f = one_file(safe, file_pattern)
        text = f.read_text()
        start = text.index(after) if after else 0
        m = re.compile(rf"<{tag}(\s[^>]*)?>[^<]*</{tag}>").search(text, start)
        assert m, tag
        f.write_text(text[:m.start()] + f"<{tag}{m.group(1) or ''}>{value}</{tag}>" + text[m.end():])
        return safe
    return corrupt


def first_value(file_pattern: str, tag: str, value: str, after: str | None = None):
    """Replace the first value of the list held by the first element ``tag``."""
    def corrupt(safe: Path) -> Path:
        f = one_file(safe, file_pattern)
        text = f.read_text()
        start = text.index(after) if after else 0
        m = re.compile(rf"(<{tag}(?:\s[^>]*)?>)(\S+)").search(text, start)
        assert m, tag
        f.write_text(text[:m.start(2)] + value + text[m.end(2):])
        return safe
    return corrupt


def replace(file_pattern: str, old: str, new: str):
    def corrupt(safe: Path) -> Path:
        f = one_file(safe, file_pattern)
        text = f.read_text()
        assert re.search(old, text), old
        f.write_text(re.sub(old, new, text, count=1))
        return safe
    return corrupt


def _zip(safe: Path) -> Path:
    archive = safe.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(safe.rglob("*")):
            z.write(f, f.relative_to(safe.parent).as_posix())
    shutil.rmtree(safe)
    return archive


def zipped(inner):
    def corrupt(safe: Path) -> Path:
        inner(safe)
        return _zip(safe)
    return corrupt


def damaged_member(pattern: str):
    """Zip the product, then overwrite bytes in the middle of the stored member ``pattern``."""
    def corrupt(safe: Path) -> Path:
        archive = _zip(safe)
        with zipfile.ZipFile(archive) as z:
            info = next(i for i in z.infolist() if Path(i.filename).match(pattern))
        with open(archive, "r+b") as fh:
            fh.seek(info.header_offset + 26)
            name_len, extra_len = int.from_bytes(fh.read(2), "little"), int.from_bytes(fh.read(2), "little")
            fh.seek(info.header_offset + 30 + name_len + extra_len + info.compress_size // 2)
            fh.write(bytes(b ^ 0x5A for b in range(64)))
        return archive
    return corrupt


def unchanged(safe: Path) -> Path:
    return safe


def dem_cut(keep: float):
    """The product unchanged; the DEM given with ``--dem`` cut to ``keep`` of its size."""
    def extra(originals, tmp_path: Path) -> list[str]:
        dem = tmp_path / "dem.tif"
        data = originals["dem"].read_bytes()
        dem.write_bytes(data[: int(len(data) * keep)])
        return ["--dem", str(dem), "--dem_geoid_height", "47"]  # the Rome DEM declares EGM96 heights
    return extra


CASES = [
    # (id, command, original, corruption, extra arguments, fragments of the error line)
    # -- A: raster data -------------------------------------------------------------------------
    ("measurement cut to half", main_grd, "grd", cut(MEASUREMENT, 0.5), [],
     ["s1b-iw-grd-vv-", ".tiff", "truncated or corrupt GeoTIFF"]),
    ("measurement empty", main_grd, "grd", cut(MEASUREMENT, 0.0), [],
     [".tiff", "truncated or corrupt GeoTIFF file (empty: 0 bytes)"]),
    ("measurement random bytes", main_grd, "grd", scramble(MEASUREMENT), [],
     [".tiff", "truncated or corrupt GeoTIFF"]),
    ("measurement cut inside a zip", main_grd, "grd", zipped(cut(MEASUREMENT, 0.6)), [],
     [".tiff", "truncated or corrupt GeoTIFF"]),
    ("damaged measurement member of a zip", main_grd, "grd", damaged_member("*.tiff"), [],
     ["corrupt zip archive", ".zip", "CRC"]),
    ("SLC measurement cut", main_slc, "slc", cut(MEASUREMENT, 0.5), [],
     ["s1b-iw1-slc-vv-", "truncated or corrupt GeoTIFF"]),
    ("DEM cut to half", main_grd, "grd", unchanged, dem_cut(0.5),
     ["DEM file dem.tif", "truncated or corrupt GeoTIFF"]),
    # -- B: annotation -------------------------------------------------------------------------
    ("first line time is text", main_grd, "grd", set_element(ANNOTATION, "productFirstLineUtcTime", "yesterday"),
     [], ["s1b-iw-grd-vv-", ".xml", "productFirstLineUtcTime", "'yesterday'"]),
    ("number of lines is text", main_grd, "grd", set_element(ANNOTATION, "numberOfLines", "many"), [],
     ["numberOfLines", "'many'"]),
    ("number of samples negative", main_grd, "grd", set_element(ANNOTATION, "numberOfSamples", "-120"), [],
     ["numberOfSamples", "'-120'"]),
    ("azimuth time interval nan", main_grd, "grd", set_element(ANNOTATION, "azimuthTimeInterval", "nan"), [],
     ["azimuthTimeInterval", "'nan'"]),
    ("range pixel spacing zero", main_grd, "grd", set_element(ANNOTATION, "rangePixelSpacing", "0"), [],
     ["rangePixelSpacing", "'0'", "> 0"]),
    ("radar frequency is text", main_grd, "grd", set_element(ANNOTATION, "radarFrequency", "C-band"), [],
     ["radarFrequency", "'C-band'"]),
    ("geolocation latitude is text", main_grd, "grd", set_element(ANNOTATION, "latitude", "north"), [],
     ["latitude", "'north'"]),
    ("orbit position is text", main_grd, "grd", set_element(ANNOTATION, "x", "far", after="<orbitList"), [],
     ["position/x", "'far'"]),
    ("slant/ground range polynomial is text", main_grd, "grd",
     first_value(ANNOTATION, "srgrCoefficients", "abc"), ["--dem", "{dem}", "--dem_geoid_height", "47"],
     ["srgrCoefficients", "'abc'"]),
    ("burst time is text", main_slc, "slc", set_element(ANNOTATION, "azimuthTime", "later", after="<burstList"),
     [], ["s1b-iw1-slc-vv-", "azimuthTime", "'later'"]),
    ("burst valid samples are text", main_slc, "slc",
     first_value(ANNOTATION, "firstValidSample", "x", after="<burstList"), [], ["firstValidSample", "'x'"]),
    # -- B: calibration and noise --------------------------------------------------------------
    ("calibration LUT is text", main_grd, "grd", first_value(CALIBRATION, "sigmaNought", "abc"), [],
     ["calibration-s1b-iw-grd-vv-", "sigmaNought", "'abc'"]),
    ("calibration LUT is zero", main_grd, "grd", first_value(CALIBRATION, "sigmaNought", "0.0"), [],
     ["calibration-s1b-iw-grd-vv-", "sigmaNought", "'0.0'", "> 0"]),
    ("calibration LUT is nan", main_grd, "grd", first_value(CALIBRATION, "sigmaNought", "nan"), [],
     ["sigmaNought", "'nan'"]),
    ("calibration line is text", main_grd, "grd", set_element(CALIBRATION, "line", "first"), [],
     ["calibration-s1b-iw-grd-vv-", "line", "'first'"]),
    ("calibration time is text", main_grd, "grd", set_element(CALIBRATION, "azimuthTime", "2021-13-45T99:00:00"),
     [], ["calibration-s1b-iw-grd-vv-", "azimuthTime", "'2021-13-45T99:00:00'"]),
    ("noise LUT is nan", main_grd, "grd", first_value(NOISE, "noiseRangeLut", "nan"), [],
     ["noise-s1b-iw-grd-vv-", "noiseRangeLut", "'nan'"]),
    ("noise LUT negative", main_grd, "grd", first_value(NOISE, "noiseRangeLut", "-3.1e+02"), [],
     ["noiseRangeLut", "'-3.1e+02'"]),
    ("noise azimuth lines are text", main_grd, "grd",
     first_value(NOISE, "line", "ten", after="<noiseAzimuthVector>"), [], ["noise-s1b-iw-grd-vv-", "line", "'ten'"]),
    # -- B: manifest ---------------------------------------------------------------------------
    ("start time is text", main_grd, "grd", replace("manifest.safe", r"<safe:startTime>[^<]*<", "<safe:startTime>soon<"),
     [], ["manifest.safe", "startTime", "'soon'"]),
    ("relative orbit is text", main_grd, "grd",
     replace("manifest.safe", r'(<safe:relativeOrbitNumber type="start">)[^<]*<', r"\1twenty-two<"), [],
     ["manifest.safe", "relativeOrbitNumber", "'twenty-two'"]),
    ("footprint is text", main_grd, "grd", replace("manifest.safe", r"<gml:coordinates>[^<]*<",
                                                  "<gml:coordinates>41.0,north 41.2,11.8 42.7,12.1<"), [],
     ["manifest.safe", "coordinates", "'north'"]),
    ("IPF version is text", main_grd, "grd",
     replace("manifest.safe", r'(name="Sentinel-1 IPF" version=")[^"]*"', r'\1three"'), [],
     ["manifest.safe", "version", "'three'"]),
]


@pytest.mark.parametrize("case_id, main, original, corrupt, extra, fragments", CASES, ids=[c[0] for c in CASES])
def test_corrupt_input(case_id, main, original, corrupt, extra, fragments, originals, tmp_path, capsys):
    src = originals[original]
    copy = tmp_path / "in" / src.name
    shutil.copytree(src, copy)
    given = corrupt(copy)
    args = extra(originals, tmp_path) if callable(extra) else [a.format(dem=originals["dem"]) for a in extra]
    out = tmp_path / "out"
    code = main(["--input", str(given), "--outdir", str(out), *args])
    err = capsys.readouterr().err
    prog = SLC_PROG if main is main_slc else GRD_PROG
    errors = [line for line in err.splitlines() if line.startswith(f"{prog}: error:")]
    assert code == 2, err
    assert len(errors) == 1, err
    assert "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert not out.exists() or not any(out.iterdir())
    leftovers = list(tmp_path.rglob(".s1p-*"))
    assert not leftovers, leftovers
