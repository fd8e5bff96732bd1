"""Damaged products given to S2-preprocess: band files cut short, emptied or overwritten, a
damaged member of a zip (also of a zip over 50 MB), and metadata values that are not what the
format says (text where a date or a number belongs, a quantification value of 0, an unknown
EPSG code, ...). Each case: exit status 2, one line ``S2-preprocess: error: ...`` naming the file
and what is wrong, no traceback, nothing in the output folder and no work folder left behind.

Every case corrupts a copy of one small product written by ``tests/fixtures``."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine

from components.s2_preprocess.cli import main
from tests.fixtures.corruption import cut, one_file, scramble
from tests.fixtures.s2_products import write_s2_product

PROG = "S2-preprocess"
PADDING_BYTES = 51_000_000  # puts the archive above the size where the whole-zip CRC test used to stop


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    root = tmp_path_factory.mktemp("originals")
    # a DEM over the tile, directory first (a COG): cut short, it opens and fails when read
    flat = root / "dem_flat.tif"
    with rasterio.open(flat, "w", driver="GTiff", width=64, height=64, count=1, dtype="int16", crs="EPSG:32629",
                       transform=Affine(10, 0, 499900, 0, -10, 5900100), nodata=-32768) as ds:
        ds.write(np.full((1, 64, 64), 120, np.int16))
    rasterio.shutil.copy(flat, root / "dem.tif", driver="COG", COMPRESS="NONE", BLOCKSIZE=16, OVERVIEWS="NONE")
    return {"dem": root / "dem.tif",
            "l2a": write_s2_product(root / "l2a", size_10m=60),
            "l1c": write_s2_product(root / "l1c", size_10m=60, level="L1C", bands_l1c=("B02", "B03", "B04", "B08")),
            "l1c_gml": write_s2_product(root / "l1c_gml", size_10m=60, level="L1C", baseline="03.01",
                                        bands_l1c=("B02", "B03", "B04", "B08"))}


# -- corruptions (each takes the copied .SAFE folder and returns the input to give) ----------------

def set_element(file_pattern: str, tag: str, value: str | None, count: int = 1):
    """Replace the text of the first ``count`` elements ``tag`` (None: remove the elements)."""
    def corrupt(safe: Path) -> Path:
        f = one_file(safe, file_pattern)
        text = f.read_text()
        pattern = re.compile(rf"<{tag}(\s[^>]*)?>[^<]*</{tag}>" if value is not None else
                             rf"\s*<{tag}(\s[^>]*)?>[^<]*</{tag}>")
        assert pattern.search(text), tag
        replace = (lambda m: f"<{tag}{m.group(1) or ''}>{value}</{tag}>") if value is not None else ""
        f.write_text(pattern.sub(replace, text, count=count))
        return safe
    return corrupt


def set_text(file_pattern: str, old: str, new: str):
    def corrupt(safe: Path) -> Path:
        f = one_file(safe, file_pattern)
        text = f.read_text()
        assert old in text, old
        f.write_text(text.replace(old, new, 1))
        return safe
    return corrupt


def _zip(safe: Path, padding: int = 0) -> Path:
    archive = safe.parent / (safe.name[:-5] + ".zip")
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(safe.rglob("*")):
            if path.is_file():
                method = zipfile.ZIP_STORED if path.suffix == ".jp2" else zipfile.ZIP_DEFLATED
                z.write(path, path.relative_to(safe.parent).as_posix(), compress_type=method)
        if padding:
            with z.open(f"{safe.name}/AUX_DATA/padding.bin", "w", force_zip64=True) as fh:
                block = bytes(1 << 20)
                for _ in range(padding // len(block) + 1):
                    fh.write(block)
    shutil.rmtree(safe)
    return archive


def zipped(inner=None, padding: int = 0):
    """Zip the product (after ``inner`` corrupted the folder)."""
    def corrupt(safe: Path) -> Path:
        if inner is not None:
            inner(safe)
        return _zip(safe, padding)
    return corrupt


def damaged_member(pattern: str, padding: int = 0):
    """Zip the product, then overwrite bytes in the middle of the stored member ``pattern``: the
    member's CRC no longer matches (JPEG 2000 decoders do not notice such damage)."""
    def corrupt(safe: Path) -> Path:
        archive = _zip(safe, padding)
        with zipfile.ZipFile(archive) as z:
            info = next(i for i in z.infolist() if Path(i.filename).match(pattern))
        with open(archive, "r+b") as fh:
            fh.seek(info.header_offset + 26)
            name_len, extra_len = int.from_bytes(fh.read(2), "little"), int.from_bytes(fh.read(2), "little")
            start = info.header_offset + 30 + name_len + extra_len
            fh.seek(start + info.compress_size // 2)
            fh.write(bytes(b ^ 0x5A for b in range(64)))
        return archive
    return corrupt


B04 = "*_B04_10m.jp2"
MTD2A, MTD1C, TL = "MTD_MSIL2A.xml", "MTD_MSIL1C.xml", "MTD_TL.xml"
L1C_ARGS = ["--toa", "true", "--cloudmask", "L1C"]

CASES = [
    # (id, original, corruption, extra arguments, fragments of the error line)
    # -- A: raster data -------------------------------------------------------------------------
    ("band JP2 cut to half", "l2a", cut(B04, 0.5), [],
     ["T29UNU_20221005T115411_B04_10m.jp2", "truncated or corrupt JPEG 2000"]),
    ("band JP2 empty", "l2a", cut(B04, 0.0), [], ["B04_10m.jp2", "truncated or corrupt JPEG 2000 file (empty: 0 bytes)"]),
    ("band JP2 random bytes", "l2a", scramble(B04), [], ["B04_10m.jp2", "truncated or corrupt JPEG 2000"]),
    ("band JP2 missing its last bytes", "l2a", cut(B04, 0.97), [], ["B04_10m.jp2", "truncated or corrupt JPEG 2000"]),
    ("20 m band JP2 cut", "l2a", cut("*_B8A_20m.jp2", 0.5), ["--bands", "B2,B8A"],
     ["B8A_20m.jp2", "truncated or corrupt JPEG 2000"]),
    ("SCL JP2 cut", "l2a", cut("*_SCL_20m.jp2", 0.5), ["--cloudmask", "L2A"],
     ["SCL_20m.jp2", "truncated or corrupt JPEG 2000"]),
    ("MSK_CLASSI JP2 cut", "l1c", cut("MSK_CLASSI_B00.jp2", 0.5), L1C_ARGS,
     ["MSK_CLASSI_B00.jp2", "truncated or corrupt JPEG 2000"]),
    ("L1C band JP2 empty", "l1c", cut("*_B03.jp2", 0.0), ["--toa", "true"], ["B03.jp2", "truncated or corrupt JPEG 2000 file (empty: 0 bytes)"]),
    ("band JP2 cut inside a zip", "l2a", zipped(cut(B04, 0.5)), [],
     ["B04_10m.jp2", "truncated or corrupt JPEG 2000"]),
    ("damaged band member of a zip", "l2a", damaged_member(B04), [], ["B04_10m.jp2", "CRC"]),
    ("damaged band member of a zip over 50 MB", "l2a", damaged_member(B04, PADDING_BYTES), [],
     ["corrupt zip archive", "B04_10m.jp2", "CRC"]),
    ("DEM cut short", "l2a", None, ["--landseamask", "Sea", "--dem", "{dem_cut}"],
     ["DEM file", "dem_cut.tif", "truncated or corrupt GeoTIFF"]),
    ("damaged cloud-mask GML", "l1c_gml", set_text("MSK_CLOUDS_B00.gml", "<gml:posList srsDimension=\"2\">",
                                                 "<gml:posList srsDimension=\"2\">north "), L1C_ARGS,
     ["MSK_CLOUDS_B00.gml", "posList", "'north"]),
    # -- B: metadata values --------------------------------------------------------------------
    ("start time is text", "l2a", set_element(MTD2A, "PRODUCT_START_TIME", "yesterday"), [],
     [MTD2A, "PRODUCT_START_TIME", "'yesterday'"]),
    ("start time missing", "l2a", set_element(MTD2A, "PRODUCT_START_TIME", None), [],
     [MTD2A, "PRODUCT_START_TIME", "missing"]),
    ("quantification is text", "l2a", set_element(MTD2A, "BOA_QUANTIFICATION_VALUE", "abc"), [],
     [MTD2A, "BOA_QUANTIFICATION_VALUE", "'abc'"]),
    ("quantification is zero", "l2a", set_element(MTD2A, "BOA_QUANTIFICATION_VALUE", "0"), [],
     [MTD2A, "BOA_QUANTIFICATION_VALUE", "'0'", "> 0"]),
    ("quantification is negative", "l2a", set_element(MTD2A, "BOA_QUANTIFICATION_VALUE", "-1"), [],
     [MTD2A, "BOA_QUANTIFICATION_VALUE", "'-1'"]),
    ("quantification is nan", "l2a", set_element(MTD2A, "BOA_QUANTIFICATION_VALUE", "nan"), [],
     [MTD2A, "BOA_QUANTIFICATION_VALUE", "'nan'"]),
    ("quantification missing", "l2a", set_element(MTD2A, "BOA_QUANTIFICATION_VALUE", None), [],
     [MTD2A, "BOA_QUANTIFICATION_VALUE", "missing"]),
    ("L1C quantification is text", "l1c", set_element(MTD1C, "QUANTIFICATION_VALUE", "ten thousand"),
     ["--toa", "true"], [MTD1C, "QUANTIFICATION_VALUE", "'ten thousand'"]),
    ("offset is text", "l2a", set_element(MTD2A, "BOA_ADD_OFFSET", "minus"), [],
     [MTD2A, "BOA_ADD_OFFSET", "'minus'"]),
    ("offset is infinite", "l2a", set_element(MTD2A, "BOA_ADD_OFFSET", "inf", count=13), [],
     [MTD2A, "BOA_ADD_OFFSET", "'inf'"]),
    ("baseline is text", "l2a", set_element(MTD2A, "PROCESSING_BASELINE", "latest"), [],
     [MTD2A, "PROCESSING_BASELINE", "'latest'"]),
    ("orbit number is text", "l2a", set_element(MTD2A, "SENSING_ORBIT_NUMBER", "twenty-three"), [],
     [MTD2A, "SENSING_ORBIT_NUMBER", "'twenty-three'"]),
    ("image file element empty", "l2a", set_element(MTD2A, "IMAGE_FILE", ""), [], [MTD2A, "IMAGE_FILE"]),
    ("footprint is text", "l2a", set_element(MTD2A, "EXT_POS_LIST", "somewhere in Ireland"), [],
     [MTD2A, "EXT_POS_LIST", "'somewhere"]),
    ("footprint has an odd number of values", "l2a", set_element(MTD2A, "EXT_POS_LIST", "53.2 -8.9 53.3"), [],
     [MTD2A, "EXT_POS_LIST"]),
    ("EPSG code is text", "l2a", set_element(TL, "HORIZONTAL_CS_CODE", "EPSG:utm29"), [],
     [TL, "HORIZONTAL_CS_CODE", "'EPSG:utm29'"]),
    ("EPSG code unknown", "l2a", set_element(TL, "HORIZONTAL_CS_CODE", "EPSG:999999"), [],
     [TL, "HORIZONTAL_CS_CODE", "'EPSG:999999'"]),
    ("tile rows are text", "l2a", set_element(TL, "NROWS", "sixty"), [], [TL, "NROWS", "'sixty'"]),
    ("tile rows negative", "l2a", set_element(TL, "NCOLS", "-60"), [], [TL, "NCOLS", "'-60'"]),
    ("tile origin is text", "l2a", set_element(TL, "ULX", "west"), [], [TL, "ULX", "'west'"]),
]


@pytest.mark.parametrize("case_id, original, corrupt, extra, fragments", CASES, ids=[c[0] for c in CASES])
def test_corrupt_input(case_id, original, corrupt, extra, fragments, originals, tmp_path, capsys):
    src = originals[original]
    copy = tmp_path / "in" / src.name
    shutil.copytree(src, copy)
    given = corrupt(copy) if corrupt else copy
    dem_cut = tmp_path / "dem_cut.tif"
    dem_cut.write_bytes(originals["dem"].read_bytes()[: int(originals["dem"].stat().st_size * 0.6)])
    out = tmp_path / "out"
    code = main(["--input", str(given), "--outdir", str(out), *(a.format(dem_cut=dem_cut) for a in extra)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith(f"{PROG}: error:")]
    assert code == 2, err
    assert len(errors) == 1, err
    assert "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert not out.exists() or not any(out.iterdir())
    leftovers = [p for p in tmp_path.rglob(".s2p-*")]
    assert not leftovers, leftovers
