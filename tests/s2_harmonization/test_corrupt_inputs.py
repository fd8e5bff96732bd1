"""Damaged REFBOA / LAI images given to monthlycomposite: cut short (with their directory first, as
cloud-optimised GeoTIFFs have it, so that they open and fail only when a block is read), emptied,
with a band scale that is not a number, or with band descriptions that name other bands. Each case:
exit status 2, one line naming the file and what is wrong, no traceback, nothing in the output
folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import rasterio
import rasterio.shutil

from components.s2_harmonization.cli import main
from tests.fixtures.timesen2crop_archive import write_time_series

PROG = "monthlycomposite"


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    root = tmp_path_factory.mktemp("mc_corrupt") / "series"
    write_time_series(root, size=16, seed=5)
    return root


def _image(folder, kind: str, index: int = 4):
    return sorted((folder / kind).glob("*.tif"))[index]


def cut_cog(kind: str, keep: float):
    """Rewrite one image as an uncompressed cloud-optimised GeoTIFF and cut it short."""
    def corrupt(folder):
        f = _image(folder, kind)
        tmp = f.with_suffix(".cog")
        rasterio.shutil.copy(f, tmp, driver="COG", COMPRESS="NONE", BLOCKSIZE=16, OVERVIEWS="NONE")
        data = tmp.read_bytes()
        tmp.unlink()
        f.write_bytes(data[: int(len(data) * keep)])
        return f.name
    return corrupt


def empty(kind: str):
    def corrupt(folder):
        f = _image(folder, kind)
        f.write_bytes(b"")
        return f.name
    return corrupt


def scale(value: float):
    def corrupt(folder):
        f = _image(folder, "REFBOA")
        with rasterio.open(f, "r+") as ds:
            ds.scales = [value] + list(ds.scales[1:])
        return f.name
    return corrupt


def describe(names: tuple[str, ...]):
    """Band descriptions that name other bands than the nine expected (a B1..B9 export)."""
    def corrupt(folder):
        f = _image(folder, "REFBOA")
        with rasterio.open(f, "r+") as ds:
            ds.descriptions = names
        return f.name
    return corrupt


CASES = [
    ("REFBOA bands named otherwise", describe(tuple(f"B{i}" for i in range(1, 10))),
     ["REFBOA/{name}", "band descriptions (B1, B2, B3, B4, B5, B6, B7, B8, B9) lack B8A, B11, B12"]),
    ("REFBOA cut short", cut_cog("REFBOA", 0.7), ["REFBOA/{name}", "truncated or corrupt GeoTIFF"]),
    ("LAI cut short", cut_cog("LAI", 0.6), ["LAI/{name}", "truncated or corrupt GeoTIFF"]),
    ("REFBOA empty", empty("REFBOA"), ["REFBOA/{name}", "(empty: 0 bytes)"]),
    ("REFBOA scale is nan", scale(float("nan")), ["REFBOA/{name}", "scale nan"]),
]


@pytest.mark.parametrize("case_id, corrupt, fragments", CASES, ids=[c[0] for c in CASES])
def test_corrupt_input(case_id, corrupt, fragments, series, tmp_path, capsys):
    folder = tmp_path / "in"
    shutil.copytree(series, folder)
    name = corrupt(folder)
    out = tmp_path / "out"
    code = main(["--input_dir", str(folder), "--output_dir", str(out), "--tile", "T33UVP"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith(f"{PROG}: error:")]
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment.format(name=name) in errors[0], errors[0]
    assert not out.exists() or not any(out.iterdir())
    assert np.all([not p.name.startswith(".") for p in tmp_path.rglob("*")])
