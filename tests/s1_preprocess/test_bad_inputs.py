"""Every bad input of S1-GRD-preprocess / S1-SLC-preprocess: one line naming the problem,
exit status 2, nothing left in the output folder."""

from __future__ import annotations

import shutil
import zipfile

import pytest

from components.s1_preprocess.cli import main_grd, main_slc
from tests.fixtures import s1_products

OUTSIDE = "POLYGON((10 45,10.1 45,10.1 45.1,10 45.1,10 45))"


@pytest.fixture(scope="module")
def inputs(grd_product, slc_product, real_grd, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    vh_missing = s1_products.write_grd(root / "novh", source=real_grd, drop_measurement="VH")
    garbage = root / "garbage.zip"
    garbage.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    good_zip = s1_products.write_grd(root / "z", source=real_grd, pols=("VV",), as_zip=True)
    truncated = root / "truncated.zip"
    truncated.write_bytes(good_zip.read_bytes()[: good_zip.stat().st_size // 2])
    not_s1 = root / "photos.zip"
    with zipfile.ZipFile(not_s1, "w") as z:
        z.writestr("holiday/readme.txt", "not a product")
    not_safe = root / "folder"
    not_safe.mkdir()
    (not_safe / "notes.txt").write_text("hello")
    corrupt = root / "corrupt"
    shutil.copytree(grd_product, corrupt / grd_product.name)
    ann = next((corrupt / grd_product.name / "annotation").glob("*-vv-*.xml"))
    ann.write_text(ann.read_text()[:400])
    text_dem = root / "dem.tif"
    text_dem.write_text("not a raster")
    bad_eof = root / "orbit.EOF"
    bad_eof.write_text("<Earth_Explorer_File></Earth_Explorer_File>")
    return dict(grd=grd_product, slc=slc_product, vh_missing=vh_missing, garbage=garbage, truncated=truncated,
                not_s1=not_s1, not_safe=not_safe, corrupt=corrupt / grd_product.name, text_dem=text_dem,
                bad_eof=bad_eof, root=root)


CASES = [
    ("missing input", main_grd, "{root}/nowhere.SAFE", [], "input not found"),
    ("SLC given to the GRD command", main_grd, "{slc}", [], "is a SLC product, not GRD: use S1-SLC-preprocess"),
    ("GRD given to the SLC command", main_slc, "{grd}", [], "is a GRD product, not SLC: use S1-GRD-preprocess"),
    ("polarisation not in product", main_grd, "{grd}", ["--polarization", "HH"], "polarization HH is not in"),
    ("polarisation files absent", main_grd, "{vh_missing}", ["--polarization", "VH"],
     "listed in the manifest but its files are absent"),
    ("garbage zip", main_grd, "{garbage}", [], "garbage.zip"),
    ("truncated zip", main_grd, "{truncated}", [], "truncated.zip"),
    ("zip without product", main_grd, "{not_s1}", [], "photos.zip holds no .SAFE/manifest.safe"),
    ("folder not a SAFE", main_grd, "{not_safe}", [], "has no manifest.safe"),
    ("corrupt annotation", main_grd, "{corrupt}", [], "corrupt annotation"),
    ("bad calibration", main_grd, "{grd}", ["--calibration", "Sigma0"], "parameter 'calibration'"),
    ("bad speckle filter", main_grd, "{grd}", ["--speckle", "IDAN"], "parameter 'speckle'"),
    ("bad window", main_grd, "{grd}", ["--window_size", "8x8"], "parameter 'window_size'"),
    ("negative resolution", main_grd, "{grd}", ["--resolution", "-5"], "parameter 'resolution'"),
    ("bad projection", main_grd, "{grd}", ["--projection", "EPSG:999999"], "parameter 'projection'"),
    ("vertical projection", main_grd, "{grd}", ["--projection", "EPSG:5773"], "(EGM96 height is a vertical CRS"),
    ("geocentric projection", main_slc, "{slc}", ["--projection", "EPSG:4978"], "is a geocentric CRS"),
    ("unknown format", main_grd, "{grd}", ["--output_format", "FOO"], "parameter 'output_format'"),
    ("AoI outside", main_grd, "{grd}", ["--AoI", OUTSIDE], "AoI does not intersect the footprint"),
    ("bad WKT", main_grd, "{grd}", ["--AoI", "POLYGON((1 2, 3 4"], "AoI is neither"),
    ("DEM absent", main_grd, "{grd}", ["--dem", "{root}/none.tif"], "DEM file does not exist"),
    ("DEM not a raster", main_grd, "{grd}", ["--dem", "{text_dem}"], "DEM file cannot be read"),
    ("orbit file absent", main_grd, "{grd}", ["--orbit", "{root}/none.EOF"], "orbit file not found"),
    ("orbit file empty", main_grd, "{grd}", ["--orbit", "{bad_eof}"], "holds no state vectors"),
    ("graph only without snap", main_grd, "{grd}", ["--graph_only", "true"], "--graph_only true needs --engine snap"),
    ("unknown sub-swath", main_slc, "{slc}", ["--subswaths", "IW4"], "parameter 'subswaths'"),
    ("absent sub-swath", main_slc, "{slc}", ["--subswaths", "IW3"], "none of the sub-swaths IW3"),
    ("output folder is a file", main_grd, "{grd}", ["--outdir", "{garbage}/out"], "garbage.zip"),
]


@pytest.mark.parametrize("case_id, main, source, extra, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, main, source, extra, fragment, inputs, tmp_path, capsys):
    fmt = {k: str(v) for k, v in inputs.items()}
    out = tmp_path / "out"
    args = ["--input", source.format(**fmt)] + [a.format(**fmt) for a in extra]
    if "--outdir" not in extra:
        args += ["--outdir", str(out)]
    code = main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    prog = "S1-SLC-preprocess" if main is main_slc else "S1-GRD-preprocess"
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert fragment in lines[0], lines[0]
    assert not out.exists()
    assert not any(p.name.startswith(".s1p-") for p in inputs["root"].rglob("*"))


def test_unknown_flag_exits_2(inputs, capsys):
    with pytest.raises(SystemExit) as e:
        main_grd(["--input", str(inputs["grd"]), "--outdir", "x", "--colour", "red"])
    assert e.value.code == 2
