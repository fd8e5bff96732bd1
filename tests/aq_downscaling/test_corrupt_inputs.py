"""Damaged input files given to aqgan-preproc: a classic netCDF file (ERA5, CAMS EAC4) cut short,
which the netCDF library reads as fill values without any error, and a static GeoTIFF cut short
(its directory first, so that it opens and fails when its blocks are read). Each case: exit
status 2, one line naming the file, no traceback, no tiles written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import rasterio.shutil

from components.aq_downscaling.cli import preproc_main
from tests.fixtures.cams_products import make_scene, scene_config, write_scene

PROG = "aqgan-preproc"
AOI = (42.0, 43.6, 3.0, 4.6)
DATES = ("2021010100", "2021010121")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("aq_corrupt") / "scene"
    root.mkdir()
    paths = write_scene(make_scene(hours=24, eac4_rows=4, eac4_cols=4, seed=1), root)
    return root, paths


def _cut(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _cog_cut(path: Path, keep: float) -> None:
    tmp = path.with_suffix(".cog")
    rasterio.shutil.copy(path, tmp, driver="COG", COMPRESS="NONE", BLOCKSIZE=16, OVERVIEWS="NONE")
    path.write_bytes(tmp.read_bytes()[: int(tmp.stat().st_size * keep)])
    tmp.unlink()


CASES = [
    ("ERA5 netCDF cut short", "era5", lambda p: _cut(p, 0.6), "truncated netCDF file"),
    ("EAC4 netCDF cut short", "cams_global", lambda p: _cut(p, 0.7), "truncated netCDF file"),
    ("static GeoTIFF cut short", "orography", lambda p: _cog_cut(p, 0.6), "truncated or corrupt GeoTIFF"),
]


@pytest.mark.parametrize("case_id, key, corrupt, problem", CASES, ids=[c[0] for c in CASES])
def test_corrupt_input(case_id, key, corrupt, problem, scene, tmp_path, capsys):
    root, paths = scene
    work = tmp_path / "scene"
    shutil.copytree(root, work)
    target = paths[key][0] if isinstance(paths[key], list) else paths[key]
    damaged = work / Path(target).relative_to(root)
    corrupt(damaged)
    config = work / "config.yaml"
    config.write_text(scene_config(work, AOI, input_frame=(2, 2), output_frame=(8, 8), ensemble_size=4))
    code = preproc_main(["--start-date", DATES[0], "--end-date", DATES[1], "--dataset", "synthetic",
                         "--config", str(config)])
    assert_refused(code, capsys.readouterr().err, damaged.name, problem, work / "tiles")


def assert_refused(code: int, err: str, name: str, problem: str, tiles: Path) -> None:
    """aqgan-preproc's answer to a damaged input: exit status 2, one error line naming the file
    and the problem, no tile written."""
    errors = [line for line in err.splitlines() if line.startswith(f"{PROG}: error:")]
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    assert name in errors[0] and problem in errors[0], errors[0]
    assert not tiles.exists() or not any(tiles.rglob("*.nc"))
