"""Every bad input of osm-features: one line naming the problem, exit status 2, and nothing
left in the output folder. Runs the real command line (in process for speed; one case through
``python -m`` to check the process exit status)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.osm_features.cli import main

OUTSIDE_WKT = "POLYGON((10 45,10.1 45,10.1 45.1,10 45.1,10 45))"
INSIDE_WKT = "POLYGON((9.50 47.12,9.56 47.12,9.56 47.20,9.50 47.20,9.50 47.12))"


@pytest.fixture(scope="module")
def inputs(liechtenstein, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_osm")
    text = root / "notes.osm.pbf"
    text.write_text("these are not OpenStreetMap data\n")
    truncated = root / "truncated.osm.pbf"
    truncated.write_bytes(liechtenstein.read_bytes()[:200_000])
    unknown_suffix = root / "extract.dat"
    shutil.copy(liechtenstein, unknown_suffix)
    folder = root / "folder.osm.pbf"
    folder.mkdir()
    a_file = root / "a_file"
    a_file.write_text("x")
    bad_dictionary = root / "dictionary.yaml"
    bad_dictionary.write_text("classes:\n  depot:\n    title: Depot\n    category: logistics\n"
                              "    geometry: [area]\n    match:\n      - tags: {landuse: depot}\n")
    line_aoi = root / "line.geojson"
    line_aoi.write_text('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},'
                        '"geometry":{"type":"LineString","coordinates":[[9.5,47.1],[9.6,47.2]]}}]}')
    return dict(pbf=liechtenstein, text=text, truncated=truncated, unknown_suffix=unknown_suffix,
                folder=folder, a_file=a_file, bad_dictionary=bad_dictionary, line_aoi=line_aoi, root=root)


CASES = [
    # (id, input, extra args, fragment of the message)
    ("missing input", "{root}/nowhere.osm.pbf", [], "input not found"),
    ("not a PBF", "{text}", [], "notes.osm.pbf cannot be read as OpenStreetMap data"),
    ("truncated PBF", "{truncated}", [], "truncated.osm.pbf cannot be read to the end"),
    ("unknown file type", "{unknown_suffix}", [], "Could not detect file format"),
    ("input is a folder", "{folder}", [], "input is a folder"),
    ("AoI outside the extract", "{pbf}", ["--AoI", OUTSIDE_WKT],
     "AoI does not intersect the footprint of the extract liechtenstein-2013-08-03.osm.pbf"),
    ("AoI not a polygon", "{pbf}", ["--AoI", "{line_aoi}"], "only polygons and multipolygons are accepted"),
    ("bad WKT", "{pbf}", ["--AoI", "POLYGON((9.5 47.1, 9.6"], "AoI is neither a readable vector file nor valid WKT"),
    ("unknown feature", "{pbf}", ["--features", "airport,spaceport"],
     "invalid value 'spaceport' for parameter 'features': allowed feature classes airport, heliport"),
    ("empty features", "{pbf}", ["--features", ","], "parameter 'features'"),
    ("bad format", "{pbf}", ["--format", "shapefile"],
     "invalid value 'shapefile' for parameter 'format': allowed one of geojson, gpkg"),
    ("bad clip", "{pbf}", ["--clip", "perhaps"], "parameter 'clip': allowed true or false"),
    ("invalid dictionary", "{pbf}", ["--dictionary", "{bad_dictionary}"],
     "classes.depot.geometry: unknown geometry 'area'"),
    ("missing dictionary", "{pbf}", ["--dictionary", "{root}/none.yaml"], "none.yaml does not exist"),
    ("output under a file", "{pbf}", ["--output", "{a_file}/out"], "a_file"),
    ("output named like a file", "{pbf}", ["--output", "{root}/features.geojson"],
     "--output is a folder (or s3:// prefix), not a file name"),
    ("s3 without endpoint", "s3://bucket/extract.osm.pbf", [], "S3_ENDPOINT_URL"),
    ("unknown flag", "{pbf}", ["--colour", "red"], "unrecognized arguments: --colour red"),
]


@pytest.mark.parametrize("case_id, source, extra, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, source, extra, fragment, inputs, tmp_path, capsys, monkeypatch):
    for var in ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    fmt = {k: str(v) for k, v in inputs.items()}
    outdir = tmp_path / "out"
    args = ["--input", source.format(**fmt)] + [a.format(**fmt) for a in extra]
    if "--output" not in extra:
        args += ["--output", str(outdir)]
    if case_id == "unknown flag":
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        code = exit_info.value.code
    else:
        code = main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("osm-features: error: "), err
    assert fragment in lines[0], lines[0]
    assert not outdir.exists() or not any(outdir.rglob("*"))
    assert not any(p.name.startswith(".osm-") for p in inputs["root"].rglob("*"))
    assert not (inputs["root"] / "features.geojson").exists()


def test_aoi_inside_with_no_features_is_an_empty_collection(inputs, tmp_path):
    """An AoI inside the extract without features of the class is not an error."""
    assert main(["--input", str(inputs["pbf"]), "--features", "prison", "--AoI", INSIDE_WKT,
                 "--output", str(tmp_path / "o")]) == 0
    product = next((tmp_path / "o").glob("*.geojson"))
    assert product.read_text().replace("\n", "") == '{"type":"FeatureCollection","features":[]}'


def test_exit_status_of_the_command(inputs, tmp_path):
    exe = shutil.which("osm-features", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "components.osm_features.cli"]
    proc = subprocess.run(cmd + ["--input", str(inputs["text"]), "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert errors == [proc.stderr.strip().splitlines()[-1]]
    assert errors[0].startswith("osm-features: error: notes.osm.pbf cannot be read as OpenStreetMap data")
    assert not (tmp_path / "o").exists()
