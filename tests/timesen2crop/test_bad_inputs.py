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
    # a class folder numbered outside Table 8 (0-15), holding a well-formed sample
    odd_number = write_archive(root / "odd_number", tiles=("33UVP",), classes=(2,), per_class=2)
    (odd_number / "33UVP" / "16").mkdir()
    sample = sorted((odd_number / "33UVP" / "2").glob("*.csv"))[0]
    (odd_number / "33UVP" / "16" / "1.csv").write_text(sample.read_text())
    bad_dates = write_archive(root / "bad_dates", tiles=("33UVP",), classes=(2,), per_class=2)
    (bad_dates / "33UVP" / "dates.csv").write_text("acquisition_date\n20171301\n")
    bad_cond = write_archive(root / "bad_cond", tiles=("33UVP",), classes=(2,), per_class=2)
    f = sorted((bad_cond / "33UVP" / "2").glob("*.csv"))[0]
    f.write_text(f.read_text().replace(",0\n", ",7\n", 1))
    bad_cols = write_archive(root / "bad_cols", tiles=("33UVP",), classes=(2,), per_class=2)
    f = sorted((bad_cols / "33UVP" / "2").glob("*.csv"))[0]
    f.write_text("\n".join(",".join(line.split(",")[:5]) for line in f.read_text().splitlines()) + "\n")
    dup_dates = write_archive(root / "dup_dates", tiles=("33UVP",), classes=(2,), per_class=2)
    lines = (dup_dates / "33UVP" / "dates.csv").read_text().splitlines()
    lines[3] = lines[2]  # rows 3 and 4 (after the header) the same date: as many rows as the samples
    (dup_dates / "33UVP" / "dates.csv").write_text("\n".join(lines) + "\n")
    dup_date = f"{lines[2][:4]}-{lines[2][4:6]}-{lines[2][6:]}"
    values = {}
    for name, value in (("huge", "-5e20"), ("huge2", "1e30"), ("infinite", "inf")):
        values[name] = write_archive(root / name, tiles=("33UVP",), classes=(2,), per_class=2)
        f = values[name] / "33UVP" / "2" / "2000.csv"
        lines = f.read_text().splitlines()
        row = lines[2].split(",")
        row[3] = value  # B5 of the second observation
        lines[2] = ",".join(row)
        f.write_text("\n".join(lines) + "\n")
    shifted = write_archive(root / "shifted", tiles=("33UVP",), classes=(2,), per_class=2)
    f = shifted / "33UVP" / "2" / "2000.csv"  # a cell moved from row 3 to row 2: the count of numbers holds
    lines = f.read_text().splitlines()
    row3 = lines[3].split(",")
    lines[2] += f",{row3.pop(0)}"
    lines[3] = ",".join(row3)
    f.write_text("\n".join(lines) + "\n")
    folder_csv = write_archive(root / "folder_csv", tiles=("33UVP",), classes=(2,), per_class=2)
    (folder_csv / "33UVP" / "2" / "77.csv").mkdir()
    no_b5 = write_archive(root / "no_b5", tiles=("33UVP",), classes=(2,), per_class=2, index_column=True)
    f = no_b5 / "33UVP" / "2" / "2000.csv"  # 10 columns, as many as bands + condition: not to be read by position
    f.write_text("\n".join(",".join(c for k, c in enumerate(line.split(",")) if k != 4)
                           for line in f.read_text().splitlines()) + "\n")
    no_samples = write_archive(root / "no_samples", tiles=("33UVP", "33UWP"), classes=(2,), per_class=2)
    for f in (no_samples / "33UWP" / "2").glob("*.csv"):
        f.unlink()
    empty = root / "empty"
    empty.mkdir()
    fake_zip = root / "archive.zip"
    fake_zip.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    a_file = root / "a_file"
    a_file.write_text("x")
    return dict(good=good, other_dates=other_dates, odd_class=odd_class, bad_dates=bad_dates, bad_cond=bad_cond,
                odd_number=odd_number, bad_cols=bad_cols, empty=empty, fake_zip=fake_zip, a_file=a_file, root=root,
                dup_dates=dup_dates, dup_date=dup_date, folder_csv=folder_csv, no_b5=no_b5, no_samples=no_samples,
                shifted=shifted, **values)


CASES = [
    ("missing archive", "{root}/nowhere", [], "input not found"),
    ("no tile folder", "{empty}", [], "no TimeSen2Crop tile"),
    ("corrupt zip", "{fake_zip}", [], "archive.zip"),
    ("plain file", "{a_file}", [], "neither a folder nor a .zip"),
    ("unknown class folder", "{odd_class}", [], "unknown crop-type folder 'Cabbage' in tile 33UVP"),
    ("class folder outside Table 8", "{odd_number}", [], "unknown crop-type folder '16' in tile 33UVP: expected a "
                                                         "class id 0-15"),
    ("invalid date", "{bad_dates}", [], "dates.csv row 2: '20171301' is not a valid date"),
    ("bad condition value", "{bad_cond}", [], "pixel condition 7 is not one of 0 clear"),
    ("too few columns", "{bad_cols}", [], "unrecognised columns"),
    ("duplicated date", "{dup_dates}", [], "33UVP/dates.csv: date {dup_date} appears 2 times (rows 3, 4)"),
    ("reflectance -5e20", "{huge}", [], "sample 33UVP/2/2000.csv: row 2: B5 value -5e+20 is outside -10000 to 65535"),
    ("reflectance 1e30", "{huge2}", [], "sample 33UVP/2/2000.csv: row 2: B5 value 1e+30 is outside -10000 to 65535"),
    ("reflectance inf", "{infinite}", [], "sample 33UVP/2/2000.csv: row 2: B5 value inf is outside -10000 to 65535"),
    ("a cell shifted to the row above", "{shifted}", [], "sample 33UVP/2/2000.csv: row 2 has 11 columns instead of 10"),
    ("folder named .csv", "{folder_csv}", [], "sample 33UVP/2/77.csv: a folder, not a CSV file"),
    ("header without B5", "{no_b5}", [], "sample 33UVP/2/2000.csv: unrecognised columns ',B2,B3,B4,B6,B7,B8A,B11,"
                                         "B12,Label' (no column B5)"),
    ("tile without samples", "{no_samples}", [], "tile 33UWP in no_samples has dates.csv but no sample CSV"),
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
    assert fragment.format(**fmt) in lines[0], lines[0]
    assert not outdir.exists()
    assert not any(p.name.startswith(".ts2c-") for p in inputs["root"].rglob("*"))


@pytest.mark.parametrize("as_zip", [False, True])
def test_bad_values_and_folders_are_skipped_and_counted(tmp_path, as_zip):
    """--bad_files skip: a file with a value out of range and a folder named like a sample are left out and
    counted; a blank cell stays a missing observation (not a bad file)."""
    import json
    import shutil
    from pathlib import Path

    import numpy as np

    root = write_archive(tmp_path / "a", tiles=("33UVP",), classes=(2,), per_class=4, seed=1)
    files = sorted((root / "33UVP" / "2").glob("*.csv"))
    for f, value in ((files[1], "1e30"), (files[2], "")):
        lines = f.read_text().splitlines()
        lines[1] = value + "," + lines[1].split(",", 1)[1]
        f.write_text("\n".join(lines) + "\n")
    (root / "33UVP" / "2" / "9.csv").mkdir()
    (root / "33UVP" / "2" / "9.csv" / "x.txt").write_text("x")  # a zip holds no empty folder
    if as_zip:
        root = Path(shutil.make_archive(str(tmp_path / "zipped"), "zip", root))
    assert main(["--input_dir", str(root), "--output_dir", str(tmp_path / "e")]) == 2
    assert not (tmp_path / "e").exists()
    assert main(["--input_dir", str(root), "--output_dir", str(tmp_path / "s"), "--bad_files", "skip"]) == 0
    assert len(np.load(tmp_path / "s" / "y_train.npy")) == 3
    meta = json.loads((tmp_path / "s" / "dataset.json").read_text())
    assert meta["splits"]["train"]["tiles"]["33UVP"]["skipped_files"] == [
        "33UVP/2/9.csv: a folder, not a CSV file",
        f"33UVP/2/{files[1].name}: row 1: B2 value 1e+30 is outside -10000 to 65535 (reflectance x 10000)"]
    assert json.loads((tmp_path / "s" / "run.json").read_text())["outputs"]["metrics"]["skipped_files"] == 2


def test_class_folder_names():
    """A crop-type folder is a class id of Table 8 (0-15, leading zeros allowed) or a class name;
    any other number is no class (refused as an unknown folder, not read as class 16)."""
    from components.timesen2crop.archive import class_id

    assert [class_id(n) for n in ("0", "07", "15", " 2 ", "Maize", "winter_wheat")] == [0, 7, 15, 2, 2, 12]
    assert [class_id(n) for n in ("16", "255", "99", "Hemp", "-1")] == [None] * 5
