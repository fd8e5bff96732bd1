"""A TimeSen2Crop .zip that Python's zipfile cannot read (a password-protected one, one compressed
with Deflate64 as Windows Explorer writes large archives) or one cut short: exit status 2, one line
naming the archive and the reason, no traceback, nothing in the output folder."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from components.timesen2crop.cli import main
from tests.fixtures.timesen2crop_archive import write_archive

PROG = "timesen2crop"
CENTRAL_HEADER = b"PK\x01\x02"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("ts2c_unreadable")
    return write_archive(root / "a", tiles=("33UVP",), classes=(2, 9), per_class=2, seed=2, as_zip=True)


def _edit_headers(data: bytearray, edit_local, edit_central) -> None:
    """Apply the edits to every local file header and every central directory entry."""
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        for info in z.infolist():
            edit_local(data, info.header_offset)
    start = struct.unpack("<I", data[data.rfind(b"PK\x05\x06") + 16:][:4])[0]
    while data[start:start + 4] == CENTRAL_HEADER:
        edit_central(data, start)
        name, extra, comment = struct.unpack("<HHH", data[start + 28:start + 34])
        start += 46 + name + extra + comment


def encrypted(data: bytearray) -> None:
    """Set the 'encrypted' flag (bit 0 of the general purpose flags), as zip -P does."""
    def flag(offset):
        def set_bit(d, at):
            bits = struct.unpack("<H", d[at + offset:at + offset + 2])[0]
            d[at + offset:at + offset + 2] = struct.pack("<H", bits | 1)
        return set_bit
    _edit_headers(data, flag(6), flag(8))


def deflate64(data: bytearray) -> None:
    """Mark every member as compressed with method 9 (Deflate64)."""
    def method(offset):
        def set_method(d, at):
            d[at + offset:at + offset + 2] = struct.pack("<H", 9)
        return set_method
    _edit_headers(data, method(8), method(10))


def cut_short(data: bytearray) -> None:
    del data[len(data) // 2:]


CASES = [
    ("password-protected", encrypted, "cannot read zip archive a.zip: member 33UVP/dates.csv is password-protected"),
    ("Deflate64", deflate64, "cannot read zip archive a.zip: member 33UVP/dates.csv uses compression method 9 "
                             "(Deflate64"),
    ("cut short", cut_short, "corrupt zip archive a.zip: its central directory (the end of the file) is missing"),
]


@pytest.mark.parametrize("case_id, damage, message", CASES, ids=[c[0] for c in CASES])
def test_unreadable_zip(case_id, damage, message, archive, tmp_path, capsys):
    data = bytearray(archive.read_bytes())
    damage(data)
    given = tmp_path / archive.name
    given.write_bytes(bytes(data))
    out = tmp_path / "out"
    code = main(["--input_dir", str(given), "--output_dir", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith(f"{PROG}: error:")]
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    assert message in errors[0], errors[0]
    assert not out.exists() or not any(out.iterdir())
