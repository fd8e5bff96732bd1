"""Damaged rasters given to tile_classifier: a monthly composite or the crop mask cut short (with
its directory first, so that it opens and fails only when a block is read in a reader thread) or
emptied. Each case: exit status 2, one line naming the file, no traceback, nothing written."""

from __future__ import annotations

import shutil

import pytest
import rasterio.shutil

from components.crop_lstm.classify_cli import main

PROG = "tile_classifier"


def _cut_cog(path, keep: float) -> None:
    tmp = path.with_suffix(".cog")
    rasterio.shutil.copy(path, tmp, driver="COG", COMPRESS="NONE", BLOCKSIZE=16, OVERVIEWS="NONE")
    data = tmp.read_bytes()
    tmp.unlink()
    path.write_bytes(data[: int(len(data) * keep)])


def composite_cut(mc, inputs):
    _cut_cog(mc / "33UVP_MC_2018-05.tif", 0.6)
    return "33UVP_MC_2018-05.tif in mc_dir"


def composite_empty(mc, inputs):
    (mc / "33UVP_MC_2017-11.tif").write_bytes(b"")
    return "33UVP_MC_2017-11.tif in mc_dir"


def mask_cut(mc, inputs):
    mask = next(inputs.glob("*.tif"))
    _cut_cog(mask, 0.5)
    return f"mask {mask.name}"


CASES = [
    ("composite cut short", composite_cut, "truncated or corrupt GeoTIFF"),
    ("composite empty", composite_empty, "truncated or corrupt GeoTIFF file (empty: 0 bytes)"),
    ("mask cut short", mask_cut, "truncated or corrupt GeoTIFF"),
]


@pytest.mark.parametrize("case_id, corrupt, problem", CASES, ids=[c[0] for c in CASES])
def test_corrupt_input(case_id, corrupt, problem, chain, tmp_path, capsys):
    mc = tmp_path / "mc"
    shutil.copytree(chain.composites, mc)
    inputs = chain.input_dir(tmp_path / "inputs")
    named = corrupt(mc, inputs)
    out = tmp_path / "out"
    code = main(["--input_dir", str(inputs), "--output_dir", str(out), "--mc_dir", str(mc)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith(f"{PROG}: error:")]
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    assert f"{named}: {problem}" in errors[0], errors[0]
    assert not out.exists() or not any(out.iterdir())
