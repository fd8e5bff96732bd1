"""Every bad input: one line naming the problem, exit status 2, nothing left in the output
folder, and (for the pair checks) no pre-processing started. Runs the real command line (in
process; one case through a subprocess to check the process exit status)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from components.s2_change_detection.cli import main
from tests.fixtures.s2_products import write_s2_product

OUTSIDE_WKT = "POLYGON((10 45,10.1 45,10.1 45.1,10 45.1,10 45))"


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    root = tmp_path_factory.mktemp("cdbad")
    a = write_s2_product(root / "a", size_10m=60, sensing="20220601T112121")
    b = write_s2_product(root / "b", size_10m=60, sensing="20220820T112119", seed=2)
    other_tile = write_s2_product(root / "c", size_10m=60, sensing="20220820T112119", tile="T30UUU", epsg=32630)
    l1c = write_s2_product(root / "d", size_10m=60, level="L1C", sensing="20220820T112119")
    missing = write_s2_product(root / "e", size_10m=60, sensing="20220820T112119", missing=("B08_10m",))
    text = root / "notes.tif"
    text.write_text("not a raster")
    other_service = root / "other_service"
    other_service.mkdir()
    (other_service / "run.json").write_text(json.dumps({"service": "S1-GRD-preprocess", "outputs": {}}))
    a_file = root / "a_file"
    a_file.write_text("x")
    again = write_s2_product(root / "f", size_10m=60, sensing="20220601T112121", seed=3)  # a's acquisition
    records = {}
    for key, record in (("list_record", []), ("null_record", None), ("outputs_text", {"outputs": "x"})):
        records[key] = root / key
        records[key].mkdir()
        (records[key] / "run.json").write_text(json.dumps(record))
    return dict(a=a, b=b, other_tile=other_tile, l1c=l1c, missing=missing, text=text,
                other_service=other_service, a_file=a_file, root=root, again=again, **records)


CASES = [
    # (id, input1, input2, extra args, fragment of the message)
    ("different tiles", "{a}", "{other_tile}", [],
     "input1 and input2 cover different tiles: T29UNU (S2A_MSIL2A_20220601T112121_N0400_R023_T29UNU_"),
    ("missing input1", "{root}/nowhere.SAFE", "{b}", [], "input1: input not found"),
    ("missing input2", "{a}", "{root}/nowhere.zip", [], "input2: input not found"),
    ("unreadable raster", "{a}", "{text}", [], "input2: neither a Sentinel-2 product nor a readable raster"),
    ("folder of another service", "{other_service}", "{b}", [], "input1: {other_service} holds the output of "
                                                                "'S1-GRD-preprocess'"),
    ("levels differ", "{a}", "{l1c}", [], "input1 is L2A and input2 L1C"),
    ("one product twice", "{a}", "{a}", [], "input1 and input2 are the same acquisition: T29UNU sensed "
                                            "2022-06-01 11:21:21"),
    ("one acquisition twice", "{again}", "{a}", [], "input1 and input2 are the same acquisition"),
    ("run record a list", "{list_record}", "{b}", [], "input1: run.json in {list_record} is not the run record"),
    ("run record null", "{b}", "{null_record}", [], "input2: run.json in {null_record} is not the run record"),
    ("run record outputs text", "{outputs_text}", "{b}", [], "is not the run record of S2-preprocess"),
    ("band file missing", "{a}", "{missing}", [], "band file missing from"),
    ("AoI outside", "{a}", "{b}", ["--AoI", OUTSIDE_WKT], "input1: AoI does not intersect the footprint"),
    ("bad WKT", "{a}", "{b}", ["--AoI", "POLYGON((1 2, 3 4"], "AoI is neither a readable vector file nor valid WKT"),
    ("reference vector length", "{a}", "{b}", ["--referenceVector", "1,0,0"],
     "parameter 'referenceVector': allowed 4 values, one per band"),
    ("confidence 100", "{a}", "{b}", ["--levelConfidence", "100"], "parameter 'levelConfidence'"),
    ("bad projection", "{a}", "{b}", ["--projection", "EPSG:999999"], "parameter 'projection'"),
    ("vertical CRS", "{a}", "{b}", ["--projection", "EPSG:5773"],
     "parameter 'projection': allowed WGS84, UTM(Auto), an EPSG code such as EPSG:3035, or WKT, naming a projected "
     "or geographic CRS (EGM96 height is a vertical CRS"),
    ("geocentric CRS", "{a}", "{b}", ["--projection", "EPSG:4978"], "(WGS 84 is a geocentric CRS"),
    ("tile beyond the projection's horizon", "{a}", "{b}", ["--projection", "+proj=ortho +lat_0=-60 +lon_0=170"],
     "--projection +proj=ortho +lat_0=-60 +lon_0=170 cannot represent the area of S2A_MSIL2A_20220601T112121"),
    # the fixture's tiles are 600 m wide: at most 300 m leaves 2 x 2 pixels
    ("resolution coarser than half the tile", "{a}", "{b}", ["--resolution", "1e5"],
     "invalid value 100000.0 for parameter 'resolution': allowed at most 300 m: input1 S2A_MSIL2A_20220601T112121"),
    ("unknown format", "{a}", "{b}", ["--output_format", "FOO"], "parameter 'output_format'"),
    ("zero classes", "{a}", "{b}", ["--numberClasses", "0"], "parameter 'numberClasses'"),
    ("unwritable output", "{a}", "{b}", ["--output_path", "{a_file}/out"], "a_file"),
    ("s3 without endpoint", "s3://bucket/product.zip", "{b}", [], "S3_ENDPOINT_URL"),
]


@pytest.mark.parametrize("case_id, first, second, extra, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, first, second, extra, fragment, products, tmp_path, capsys, monkeypatch, caplog):
    for var in ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    fmt = {k: str(v) for k, v in products.items()}
    outdir = tmp_path / "out"
    args = ["--input1", first.format(**fmt), "--input2", second.format(**fmt)] + [a.format(**fmt) for a in extra]
    if "--output_path" not in extra:
        args += ["--output_path", str(outdir)]
    with caplog.at_level(logging.INFO):
        code = main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("S2-CD: error: "), err
    assert fragment.format(**fmt) in lines[0]
    assert not outdir.exists() or not any(outdir.rglob("*"))
    assert not any("S2-preprocess" in r.getMessage() for r in caplog.records), "pre-processing started"


def test_different_tiles_name_both_tiles(products, tmp_path, capsys):
    assert main(["--input1", str(products["a"]), "--input2", str(products["other_tile"]),
                 "--output_path", str(tmp_path / "out")]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "T29UNU" in line and "T30UUU" in line
    assert not (tmp_path / "out").exists()


def test_exit_status_of_the_command(products, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "components.s2_change_detection.cli", "--input1",
                           str(products["a"]), "--input2", str(products["other_tile"]), "--output_path",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("S2-CD: error: input1 and input2 cover different tiles")
    assert not (tmp_path / "o").exists()


def test_no_valid_pixel_in_common(products, tmp_path, capsys):
    """Both inputs readable and overlapping, but an AoI over a cloud of both dates only."""
    import rasterio
    from rasterio.warp import transform_bounds

    with rasterio.open(next(Path(products["a"]).rglob("*_B02_10m.jp2"))) as ds:
        # the fixture's high-probability cloud covers rows and columns 6..18 of a 60 px tile
        left, top = ds.transform @ (8, 8)
        right, bottom = ds.transform @ (16, 16)
        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", left, bottom, right, top)
    aoi = f"POLYGON(({w} {s},{e} {s},{e} {n},{w} {n},{w} {s}))"
    code = main(["--input1", str(products["a"]), "--input2", str(products["b"]), "--AoI", aoi,
                 "--output_path", str(tmp_path / "out")])
    assert code == 2
    assert "no pixel has data in both dates" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_scene_classification_is_found_before_preprocessing(products, tmp_path, capsys):
    no_scl = write_s2_product(tmp_path / "noscl", size_10m=60, sensing="20220820T112119", missing=("SCL_20m", "SCL_60m"))
    code = main(["--input1", str(products["a"]), "--input2", str(no_scl), "--output_path", str(tmp_path / "out")])
    assert code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "SCL" in line and "pre-process" not in line
    assert not (tmp_path / "out").exists()


def test_the_pipelines_name_check_refuses_one_acquisition_twice():
    from components.common.errors import ServiceError
    from components.s2_change_detection.inputs import check_tile_names

    first = "s3://eo/S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.zip"
    reprocessed = "s3://eo/S2A_MSIL2A_20221005T115411_N0500_R023_T29UNU_20230101T000000.SAFE/"
    later = "s3://eo/S2B_MSIL2A_20221015T115409_N0400_R023_T29UNU_20221015T140012.zip"
    assert check_tile_names(first, later) == "T29UNU"
    with pytest.raises(ServiceError, match="^input1 and input2 are the same acquisition: T29UNU sensed "
                                           "20221005T115411 "):
        check_tile_names(first, reprocessed)


def test_resolution_coarser_than_half_the_stacks(products, tmp_path, capsys):
    """Pre-processed stacks are checked as products are: no 1 x 1 px change map."""
    from components.s2_preprocess.params import S2PreprocessParams
    from components.s2_preprocess.service import run as preprocess

    stacks = [preprocess(str(products[k]), S2PreprocessParams(), str(tmp_path / k)).product for k in ("a", "b")]
    capsys.readouterr()
    assert main(["--input1", stacks[0], "--input2", stacks[1], "--resolution", "1000",
                 "--output_path", str(tmp_path / "out")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1
    assert "parameter 'resolution': allowed at most 300 m: input1 S2A_MSIL2A_20220601" in lines[0]
    assert not (tmp_path / "out").exists()
