"""The DEM and the orbit file may be URIs, as the main input: an s3:// DEM or orbit file (or
folder) is fetched into the work folder, a GDAL /vsi path DEM is opened by GDAL; run.json keeps
them as given. They used to be refused as "does not exist" (a local-path check)."""

from __future__ import annotations

import json
import zipfile

import pytest

from components.s1_preprocess.cli import main_grd
from tests.fixtures.storage_env import bucket, clean_env, s3_env  # noqa: F401  (fixtures)
from tests.s1_preprocess.test_orbit_files import _name, write_eof

AOI = "POLYGON((12.47 41.98, 12.525 41.98, 12.525 42.015, 12.47 42.015, 12.47 41.98))"


def _run(grd, out, *args):
    return main_grd(["--input", str(grd), "--outdir", str(out), "--AoI", AOI, "--resolution", "40",
                     "--speckle", "None", *map(str, args)])


def _metrics(out):
    record = json.loads((out / "run.json").read_text())
    return record, record["outputs"]["metrics"]


def test_a_dem_in_a_zip_through_gdal(grd_product, dem_rome, tmp_path):
    archive = tmp_path / "dem.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(dem_rome, "Rome.tif")
    out = tmp_path / "out"
    assert _run(grd_product, out, "--dem", f"/vsizip/{archive}/Rome.tif", "--dem_geoid_height", 47) == 0
    record, metrics = _metrics(out)
    assert record["params"]["dem"] == f"/vsizip/{archive}/Rome.tif"
    assert metrics["geocoding"] == "range-Doppler terrain correction" and metrics["valid_percent"] > 90


def test_a_gdal_path_that_is_no_raster_is_one_line(grd_product, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(grd_product, out, "--dem", f"/vsizip/{tmp_path}/none.zip/Rome.tif", "--dem_geoid_height", 47) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "DEM file cannot be read as a raster: /vsizip/" in lines[0], lines
    assert not out.exists()


@pytest.mark.s3
def test_s3_dem_and_orbit_files_are_fetched(s3_env, bucket, grd_product, grd_image, dem_rome, tmp_path):  # noqa: F811
    client = s3_env.client()
    client.make_bucket(bucket)
    client.fput_object(bucket, "dems/Rome.tif", str(dem_rome))
    eof = write_eof(tmp_path / "eof" / _name(), grd_image)
    client.fput_object(bucket, f"orbits/{eof.name}", str(eof))
    for orbit in (f"s3://{bucket}/orbits/{eof.name}", f"s3://{bucket}/orbits/"):  # a file, a folder
        out = tmp_path / "out"
        assert _run(grd_product, out, "--dem", f"s3://{bucket}/dems/Rome.tif", "--dem_geoid_height", 47,
                    "--orbit", orbit) == 0
        record, metrics = _metrics(out)
        assert record["params"]["dem"] == f"s3://{bucket}/dems/Rome.tif" and record["params"]["orbit"] == orbit
        assert metrics["orbit"] == f"EOF file {eof.name}" and metrics["valid_percent"] > 90
        assert not list(tmp_path.rglob(".s1p-*"))
        for path in out.iterdir():
            path.unlink()
        out.rmdir()


@pytest.mark.s3
def test_an_s3_dem_that_is_absent_is_one_line(s3_env, bucket, grd_product, tmp_path, capsys):  # noqa: F811
    s3_env.client().make_bucket(bucket)
    out = tmp_path / "out"
    assert _run(grd_product, out, "--dem", f"s3://{bucket}/dems/none.tif", "--dem_geoid_height", 47) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1 and f"s3://{bucket}/dems/none.tif" in lines[0], lines
    assert not out.exists()
