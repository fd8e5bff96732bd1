"""Every bad input of timesen2crop: one line naming the problem, exit status 2, nothing left in
the output folder."""

from __future__ import annotations

import pytest

from components.timesen2crop.cli import main
from tests.fixtures.timesen2crop_archive import write_archive


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ts2c_bad")
    good = write_archive(root / "good", tiles=("33UVP", "33UWP"), classes=(2, 9), per_class=3, seed=2)
    other_dates = write_archive(root / "dates", tiles=("33UVP", "33UWP"), classes=(2,), per_class=2, seed=4)
    odd_class = write_archive(root / "odd", tiles=("33UVP",), classes=(2,), per_class=2)
    (odd_class / "33UVP" / "Cabbage").mkdir()
    (odd_class / "33UVP" / "Cabbage" / "1.csv").write_text("x")
    bad_dates = write_archive(root / "bad_dates", tiles=("33UVP",), classes=(2,), per_class=2)
    (bad_dates / "33UVP" / "dates.csv").write_text("acquisition_date\n20171301\n")
    bad_cond = write_archive(root / "bad_cond", tiles=("33UVP",), classes=(2,), per_class=2)
    f = sorted((bad_cond / "33UVP" / "2").glob("*.csv"))[0]
    f.write_text(f.read_text().replace(",0\n", ",7\n", 1))
    bad_cols = write_archive(root / "bad_cols", tiles=("33UVP",), classes=(2,), per_class=2)
    f = sorted((bad_cols / "33UVP" / "2").glob("*.csv"))[0]
    f.write_text("\n".join(",".join(line.split(",")[:5]) for line in f.read_text().splitlines()) + "\n")
    empty = root / "empty"
    empty.mkdir()
    fake_zip = root / "archive.zip"
    fake_zip.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    a_file = root / "a_file"
    a_file.write_text("x")
    return dict(good=good, other_dates=other_dates, odd_class=odd_class, bad_dates=bad_dates, bad_cond=bad_cond,
                bad_cols=bad_cols, empty=empty, fake_zip=fake_zip, a_file=a_file, root=root)


CASES = [
    ("missing archive", "{root}/nowhere", [], "input not found"),
    ("no tile folder", "{empty}", [], "no TimeSen2Crop tile"),
    ("corrupt zip", "{fake_zip}", [], "archive.zip"),
    ("plain file", "{a_file}", [], "neither a folder nor a .zip"),
    ("unknown class folder", "{odd_class}", [], "unknown crop-type folder 'Cabbage' in tile 33UVP"),
    ("invalid date", "{bad_dates}", [], "dates.csv row 2: '20171301' is not a valid date"),
    ("bad condition value", "{bad_cond}", [], "pixel condition 7 is not one of 0 clear"),
    ("too few columns", "{bad_cols}", [], "unrecognised columns"),
    ("unknown tile", "{good}", ["--tiles", "32TNT"], "invalid value '32TNT' for parameter 'tiles': allowed tiles of the "
                                                    "archive (33UVP, 33UWP)"),
    ("tile in two splits", "{good}", ["--val_tiles", "33UVP", "--test_tiles", "33UVP"], "parameter 'test_tiles'"),
    ("no training tile left", "{good}", ["--val_tiles", "33UVP", "--test_tiles", "33UWP"],
     "at least one tile left for training"),
    ("dates differ", "{other_dates}", ["--temporal", "acquisitions"], "have different acquisition dates"),
    ("season without data", "{good}", ["--season_start", "2019"], "no acquisition date in the agronomic year"),
    ("bad temporal", "{good}", ["--temporal", "weekly"], "parameter 'temporal': allowed one of monthly, acquisitions"),
    ("bad condition code", "{good}", ["--usable_conditions", "0,4"], "parameter 'usable_conditions'"),
    ("bad class id", "{good}", ["--classes", "2,16"], "parameter 'classes'"),
    ("class absent", "{good}", ["--classes", "5"], "hold no sample with a usable observation"),
    ("season out of range", "{good}", ["--season_start", "1999"], "parameter 'season_start': allowed a number >= 2015"),
    ("output is a file", "{good}", ["--output_dir", "{a_file}/out"], "a_file"),
]


@pytest.mark.parametrize("case_id, source, extra, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, source, extra, fragment, inputs, tmp_path, capsys):
    fmt = {k: str(v) for k, v in inputs.items()}
    outdir = tmp_path / "out"
    args = ["--input_dir", source.format(**fmt)] + [a.format(**fmt) for a in extra]
    if "--output_dir" not in extra:
        args += ["--output_dir", str(outdir)]
    code = main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("timesen2crop: error: "), err
    assert fragment in lines[0]
    assert not outdir.exists()
    assert not any(p.name.startswith(".ts2c-") for p in inputs["root"].rglob("*"))
