"""Archives a user may hand over that hold no single readable product: two products in one zip or
folder (which one was meant?), an encrypted zip, a zip compressed with Deflate64 (Windows
Explorer's method for large archives, which Python's zipfile cannot read). One line each."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest

from components.common.errors import ServiceError
from components.common.readers import check_zip_member
from components.common.sentinel2 import open_product as open_s2
from components.s1_preprocess.product import open_product as open_s1

S2_NAMES = ["S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE",
            "S2B_MSIL2A_20221015T115409_N0400_R023_T29UNU_20221015T140012.SAFE"]
S1_NAMES = ["S1A_IW_GRDH_1SDV_20211223T051108_20211223T051133_041099_04E2B1_0F3C.SAFE",
            "S1A_IW_GRDH_1SDV_20220104T051108_20220104T051133_041274_04E892_7A11.SAFE"]


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in members.items():
            z.writestr(name, text)
    return path


def _mark(path: Path, *, encrypted: bool = False, method: int | None = None) -> Path:
    """Set the encryption flag or the compression method of every member in the central
    directory, which is what zipfile consults when it opens a member."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        flags, compression = struct.unpack_from("<HH", data, at + 8)
        struct.pack_into("<HH", data, at + 8, flags | (1 if encrypted else 0),
                         compression if method is None else method)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    return path


def test_a_zip_of_two_s2_products_is_refused(tmp_path):
    archive = _zip(tmp_path / "two.zip", {f"{n}/MTD_MSIL2A.xml": "<x/>" for n in S2_NAMES})
    with pytest.raises(ServiceError, match=r"^two.zip holds 2 Sentinel-2 products \(S2A_MSIL2A_.*\): give one "
                                           r"product per input$"):
        open_s2(archive)


def test_a_folder_of_two_s2_products_is_refused(tmp_path):
    for name in S2_NAMES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "MTD_MSIL2A.xml").write_text("<x/>")
    with pytest.raises(ServiceError, match="holds 2 SAFE products .*: give one product per input"):
        open_s2(tmp_path)


UNREADABLE = [({"encrypted": True}, "is password-protected: re-create the .zip without a password"),
              ({"method": 9}, r"uses compression method 9 \(Deflate64, as Windows Explorer writes large archives\)")]


@pytest.mark.parametrize("marks, reason", UNREADABLE)
def test_an_s2_zip_that_zipfile_cannot_read_is_one_line(tmp_path, marks, reason):
    archive = _mark(_zip(tmp_path / "product.zip", {f"{S2_NAMES[0]}/MTD_MSIL2A.xml": "<x/>"}), **marks)
    with pytest.raises(ServiceError, match=f"^cannot read zip archive product.zip: member MTD_MSIL2A.xml {reason}"):
        open_s2(archive)


def test_a_zip_or_folder_of_two_s1_products_is_refused(tmp_path):
    archive = _zip(tmp_path / "two.zip", {f"{n}/manifest.safe": "<x/>" for n in S1_NAMES})
    with pytest.raises(ServiceError, match="^two.zip holds 2 Sentinel-1 products: give one product per input$"):
        open_s1(archive, tmp_path / "work")
    folder = tmp_path / "both"
    for name in S1_NAMES:
        (folder / name).mkdir(parents=True)
        (folder / name / "manifest.safe").write_text("<x/>")
    with pytest.raises(ServiceError, match="^both holds 2 SAFE products .*: give one product per input$"):
        open_s1(folder, tmp_path / "work")


@pytest.mark.parametrize("marks, reason", UNREADABLE)
def test_an_s1_zip_that_zipfile_cannot_read_is_one_line(tmp_path, marks, reason):
    archive = _mark(_zip(tmp_path / "product.zip", {f"{S1_NAMES[0]}/manifest.safe": "<x/>"}), **marks)
    with pytest.raises(ServiceError, match=f"^cannot read zip archive product.zip: member manifest.safe {reason}"):
        open_s1(archive, tmp_path / "work")


@pytest.mark.parametrize("marks, reason", UNREADABLE)
def test_a_band_that_zipfile_cannot_read_is_one_line(tmp_path, marks, reason):
    # the CRC check of a band read through /vsizip/ (GDAL reads what zipfile cannot)
    archive = _mark(_zip(tmp_path / "product.zip", {"GRANULE/IMG_DATA/B02_10m.jp2": "jp2"}), **marks)
    with pytest.raises(ServiceError, match=f"^cannot read zip archive product.zip: member B02_10m.jp2 {reason}"):
        check_zip_member(archive, "GRANULE/IMG_DATA/B02_10m.jp2")
