"""Every bad input: one line naming the problem, exit status 2, and nothing left in the output
folder. Runs the real command line (in process for speed; one case through the installed
entry point to check the process exit status)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from components.s2_preprocess.cli import main
from tests.fixtures.s2_products import write_s2_product

OUTSIDE_WKT = "POLYGON((10 45,10.1 45,10.1 45.1,10 45.1,10 45))"
COLLINEAR_WKT = "POLYGON((-8.999 53.245,-8.995 53.247,-8.991 53.249,-8.999 53.245))"  # three points on a line
FAR_SIDE_ORTHO = "+proj=ortho +lat_0=-60 +lon_0=170"  # a view of the globe from the other hemisphere


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    l2a = write_s2_product(root / "l2a", size_10m=60)
    l1c = write_s2_product(root / "l1c", size_10m=60, level="L1C")
    missing = write_s2_product(root / "missing", size_10m=60, missing=("B03_10m",))
    corrupt_mtd = write_s2_product(root / "corrupt_mtd", size_10m=60)
    mtd = corrupt_mtd / "MTD_MSIL2A.xml"
    mtd.write_text(mtd.read_text()[:500])
    garbage_zip = root / "garbage.zip"
    garbage_zip.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    truncated_zip = root / "truncated.zip"
    good_zip = write_s2_product(root / "zipped", size_10m=60, as_zip=True)
    truncated_zip.write_bytes(good_zip.read_bytes()[: good_zip.stat().st_size // 2])
    not_s2_zip = root / "photos.zip"
    with zipfile.ZipFile(not_s2_zip, "w") as z:
        z.writestr("holiday/readme.txt", "not a product")
    not_safe = root / "not_a_safe"
    not_safe.mkdir()
    (not_safe / "notes.txt").write_text("hello")
    a_file = root / "a_file"
    a_file.write_text("x")
    text_dem = root / "dem.tif"
    text_dem.write_text("not a raster")
    return dict(l2a=l2a, l1c=l1c, missing=missing, corrupt_mtd=corrupt_mtd, garbage_zip=garbage_zip,
                truncated_zip=truncated_zip, not_s2_zip=not_s2_zip, not_safe=not_safe, a_file=a_file,
                text_dem=text_dem, root=root)


CASES = [
    # (id, input key or path, extra args, fragment of the message)
    ("missing input", "{root}/nowhere.SAFE", [], "input not found"),
    ("garbage zip", "{garbage_zip}", [], "garbage.zip"),
    ("truncated zip", "{truncated_zip}", [], "truncated.zip"),
    ("zip without product", "{not_s2_zip}", [], "not a Sentinel-2 product: photos.zip holds no MTD_MSIL1C.xml"),
    ("folder not a SAFE", "{not_safe}", [], "not a Sentinel-2 SAFE product"),
    ("corrupt metadata", "{corrupt_mtd}", [], "corrupt metadata MTD_MSIL2A.xml"),
    ("L1C where L2A is needed", "{l1c}", ["--toa", "true", "--cloudmask", "L2A"],
     "cloudmask L2A needs the scene classification of a Level-2A product"),
    ("L1C without Sen2Cor", "{l1c}", [], "is Level-1C and Sen2Cor (L2A_Process) is not installed"),
    ("unknown band", "{l2a}", ["--bands", "B2,B13"], "invalid value 'B13' for parameter 'bands'"),
    ("B10 in an L2A", "{l2a}", ["--bands", "B10"], "band B10 is not listed in the metadata"),
    ("missing band file", "{missing}", [], "band file missing from"),
    ("bad WKT", "{l2a}", ["--AoI", "POLYGON((1 2, 3 4"], "AoI is neither a readable vector file nor valid WKT"),
    ("AoI outside", "{l2a}", ["--AoI", OUTSIDE_WKT], "AoI does not intersect the footprint"),
    ("AoI file absent", "{l2a}", ["--AoI", "{root}/aoi.geojson"], "AoI file does not exist"),
    ("bad enum value", "{l2a}", ["--upsampling", "Cubic"],
     "invalid value 'Cubic' for parameter 'upsampling': allowed one of Nearest, Bilinear, Bicubic"),
    ("bad cloud mask", "{l2a}", ["--cloudmask", "Fmask"], "parameter 'cloudmask'"),
    ("negative resolution", "{l2a}", ["--resolution", "-10"], "parameter 'resolution': allowed a number > 0"),
    ("bad projection", "{l2a}", ["--projection", "EPSG:999999"], "parameter 'projection'"),
    # the fixture's tile is 600 m wide: 300 m is the coarsest resolution that leaves 2 x 2 pixels
    ("resolution coarser than half the tile", "{l2a}", ["--resolution", "400"],
     "invalid value 400.0 for parameter 'resolution': allowed at most 300 m: the tile of S2A_MSIL2A_"),
    ("resolution beyond memory", "{l2a}", ["--resolution", "1e9"], "parameter 'resolution': allowed at most 300 m"),
    ("vertical CRS", "{l2a}", ["--projection", "EPSG:5773"],
     "invalid value 'EPSG:5773' for parameter 'projection'"),
    ("vertical CRS named", "{l2a}", ["--projection", "EPSG:5773"], "(EGM96 height is a vertical CRS"),
    ("geocentric CRS", "{l2a}", ["--projection", "EPSG:4978"], "(WGS 84 is a geocentric CRS"),
    ("tile beyond the projection's horizon", "{l2a}", ["--projection", FAR_SIDE_ORTHO],
     f"--projection {FAR_SIDE_ORTHO} cannot represent the area of S2A_MSIL2A_"),
    ("AoI without area", "{l2a}", ["--AoI", COLLINEAR_WKT], "AoI WKT has no area"),
    ("unknown format", "{l2a}", ["--output_format", "FOO"], "parameter 'output_format'"),
    ("format in memory", "{l2a}", ["--output_format", "MEM"], "allowed a GDAL driver that writes a file of its own"),
    ("format pointing at work files", "{l2a}", ["--output_format", "vrt"], "parameter 'output_format'"),
    ("format for one band", "{l2a}", ["--output_format", "XYZ"], "GDAL driver XYZ cannot write this product"),
    ("format for bytes", "{l2a}", ["--output_format", "GIF"], "GDAL driver GIF cannot write this product"),
    ("format writing a folder", "{l2a}", ["--output_format", "Zarr"], "GDAL driver Zarr cannot write this product"),
    ("bad cloud class", "{l2a}", ["--cloudmask", "L2A", "--cloud_classes", "3,12"], "parameter 'cloud_classes'"),
    ("unreadable DEM", "{l2a}", ["--landseamask", "Sea", "--dem", "{text_dem}"], "DEM"),
    ("unreadable output folder", "{l2a}", ["--outdir", "{a_file}/out"], "a_file"),
    ("s3 without endpoint", "s3://bucket/product.zip", [], "S3_ENDPOINT_URL"),
    ("unknown flag", "{l2a}", ["--colour", "red"], "unrecognized arguments: --colour red"),
]


@pytest.mark.parametrize("case_id, source, extra, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, source, extra, fragment, products, tmp_path, capsys, monkeypatch):
    for var in ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    fmt = {k: str(v) for k, v in products.items()}
    outdir = tmp_path / "out"
    args = ["--input", source.format(**fmt)] + [a.format(**fmt) for a in extra]
    if "--outdir" not in extra:
        args += ["--outdir", str(outdir)]
    with pytest.raises(SystemExit) if case_id == "unknown flag" else _no_raise() as exit_info:
        code = main(args)
    if case_id == "unknown flag":
        code = exit_info.value.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("S2-preprocess: error: "), err
    assert fragment in lines[0]
    assert not outdir.exists() or not any(outdir.rglob("*"))
    assert not any(p.name.startswith(".s2p-") for p in products["root"].rglob("*"))


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_exit_status_of_the_installed_command(products, tmp_path):
    exe = shutil.which("S2-preprocess", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "components.s2_preprocess.cli"]
    proc = subprocess.run(cmd + ["--input", str(products["l2a"]), "--bands", "B13", "--outdir", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("S2-preprocess: error: invalid value 'B13'")
    assert not (tmp_path / "o").exists()


def test_dem_not_covering_area_is_an_error(products, tmp_path, capsys):
    dem = tmp_path / "far_dem.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=10, height=10, count=1, dtype="int16", crs="EPSG:4326",
                       transform=from_origin(10, 46, 0.01, 0.01), nodata=-32768) as ds:
        ds.write(np.full((1, 10, 10), 100, np.int16))
    code = main(["--input", str(products["l2a"]), "--landseamask", "Sea", "--dem", str(dem),
                 "--outdir", str(tmp_path / "out")])
    assert code == 2
    assert "DEM" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
