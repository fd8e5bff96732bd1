"""A TimeSen2Crop .zip with a damaged member (a sample CSV or a tile's dates.csv whose compressed
bytes were overwritten): exit status 2, one line naming the archive and the member, no traceback,
nothing in the output folder."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from components.timesen2crop.cli import main
from tests.fixtures.timesen2crop_archive import write_archive

PROG = "timesen2crop"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("ts2c_corrupt")
    return write_archive(root / "a", tiles=("33UVP", "33UWP"), classes=(2, 9), per_class=3, seed=3, as_zip=True)


def damage(member_suffix: str):
    def corrupt(path: Path) -> str:
        with zipfile.ZipFile(path) as z:
            info = next(i for i in z.infolist() if i.filename.endswith(member_suffix))
        with open(path, "r+b") as fh:
            fh.seek(info.header_offset + 26)
            name_len, extra_len = int.from_bytes(fh.read(2), "little"), int.from_bytes(fh.read(2), "little")
            start = info.header_offset + 30 + name_len + extra_len
            fh.seek(start)
            data = bytearray(fh.read(info.compress_size))
            for i in range(len(data) // 4, len(data) // 4 + min(16, len(data) // 2)):
                data[i] ^= 0xA5
            fh.seek(start)
            fh.write(data)
        return info.filename
    return corrupt


CASES = [
    ("damaged sample CSV", damage("33UWP/9/109001.csv")),
    ("damaged dates.csv", damage("33UVP/dates.csv")),
]


@pytest.mark.parametrize("case_id, corrupt", CASES, ids=[c[0] for c in CASES])
def test_corrupt_member(case_id, corrupt, archive, tmp_path, capsys):
    given = tmp_path / archive.name
    shutil.copy(archive, given)
    member = corrupt(given)
    out = tmp_path / "out"
    code = main(["--input_dir", str(given), "--output_dir", str(out)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith(f"{PROG}: error:")]
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    assert f"corrupt zip archive {given.name}: member {member} is damaged" in errors[0], errors[0]
    assert not out.exists() or not any(out.iterdir())
