"""The WorldCrops adapter on a slice of the real Bavarian table (a few parcels written back to a
real .xlsx): shapes, band order, months, classes, folds by parcel; every bad table is one line,
exit status 2 and no output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from components.crop_lstm.worldcrops import main, parcel_folds, read_table
from components.timesen2crop.legend import BANDS
from tests.conftest import sample

openpyxl = pytest.importorskip("openpyxl")

TABLE = "crop-parcels-worldcrops-bavaria/Test_bavaria.xlsx"
# parcels picked from the real table: three of code 451, two of 115, three rare codes
CODES = {451: 3, 115: 2, 400: 1, 131: 1, 311: 1}
MONTHS = [f"2017-{m:02d}" for m in range(9, 13)] + [f"2018-{m:02d}" for m in range(1, 9)]


def _real_rows():
    book = openpyxl.load_workbook(sample(TABLE), read_only=True, data_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    book.close()
    return list(rows[0]), [list(r) for r in rows[1:]]


def _write(path, header, rows):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for r in rows:
        sheet.append(r)
    book.save(path)
    return path


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The slice's header and rows, and the slice written as .xlsx."""
    header, rows = _real_rows()
    id_col, code_col = header.index("id"), header.index("NC")
    wanted, picked = dict(CODES), []
    for r in rows:  # whole parcels, the first ones of each wanted code
        if r[id_col] not in picked and wanted.get(r[code_col], 0) > 0:
            picked.append(r[id_col])
            wanted[r[code_col]] -= 1
    keep = [r for r in rows if r[id_col] in picked]
    path = _write(tmp_path_factory.mktemp("worldcrops") / "slice.xlsx", header, keep)
    return {"header": header, "rows": keep, "path": path, "parcels": sorted(picked)}


def _run(tmp_path, table, *extra):
    out = tmp_path / "out"
    code = main(["--input", str(table), "--output_dir", str(out), *extra])
    return code, out


def test_slice_shapes_band_order_and_months(real, tmp_path):
    code, out = _run(tmp_path, real["path"], "--min_parcels", "1")
    assert code == 0
    x, y, parcels = (np.load(out / f) for f in ("train.npy", "y_train.npy", "parcels.npy"))
    meta = json.loads((out / "dataset.json").read_text())
    assert x.shape == (8, 12, 9) and x.dtype == np.float32
    assert meta["bands"] == list(BANDS) == ["B2", "B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12"]
    assert meta["timesteps"] == MONTHS
    assert len(meta["dates"]) == 14 and meta["dates"][0] == "2018-02-15" and meta["dates"][-1] == "2018-08-30"
    assert parcels.tolist() == real["parcels"]
    # each month from the raw cells: the median of its two half-monthly dates, rounded half up
    h = real["header"]
    cols = [h.index(f"{b}_mean") for b in BANDS]
    for i, p in enumerate(parcels):
        prow = [r for r in real["rows"] if r[h.index("id")] == p]
        code_of = prow[0][h.index("NC")]
        assert meta["class_codes"][str(y[i])] == [code_of]
        for m, label in enumerate(MONTHS):
            month = [r for r in prow if r[h.index("Date")].strftime("%Y-%m") == label]
            if not month:
                assert not x[i, m].any(), (p, label)
                continue
            assert len(month) == 2
            expected = np.floor(np.median([[r[c] for c in cols] for r in month], axis=0) + 0.5)
            np.testing.assert_allclose(x[i, m], expected, atol=1, err_msg=f"parcel {p} {label}")
    # B8 and B8A differ on real parcels: picking the wrong column would show
    assert not np.allclose(x[:, 6:, 6], x[:, 6:, 5])


def test_rare_codes_merged_or_dropped(real, tmp_path):
    code, out = _run(tmp_path / "m", real["path"], "--min_parcels", "2")
    assert code == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["classes"] == {"0": "NC 115", "1": "NC 451", "2": "other"}
    assert meta["class_codes"]["2"] == [131, 311, 400]
    assert meta["parcels_per_class"] == {"0": 2, "1": 3, "2": 3}
    assert np.bincount(np.load(out / "y_train.npy")).tolist() == [2, 3, 3]

    code, out = _run(tmp_path / "d", real["path"], "--min_parcels", "2", "--rare", "drop")
    assert code == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["classes"] == {"0": "NC 115", "1": "NC 451"}
    assert meta["rare"]["dropped_codes"] == [131, 311, 400] and meta["rare"]["dropped_parcels"] == 3
    assert np.load(out / "train.npy").shape == (5, 12, 9)
    assert len(np.load(out / "parcels.npy")) == 5


def test_folds_by_parcel(real):
    table = read_table(real["path"])
    y = np.searchsorted(np.unique(table.codes), table.codes)
    for k in (2, 3):
        fold = parcel_folds(table.parcels, y, k, seed=1)
        assert sorted(set(fold.tolist())) == list(range(k))
        for f in range(k):
            test, train = set(table.parcels[fold == f].tolist()), set(table.parcels[fold != f].tolist())
            assert test and not test & train
    # stratified where every class allows it: with 2 folds, each class with 2+ parcels in both
    fold = parcel_folds(table.parcels[np.isin(table.codes, [115, 451])], y[np.isin(table.codes, [115, 451])], 2)
    codes = table.codes[np.isin(table.codes, [115, 451])]
    for c in (115, 451):
        assert set(fold[codes == c].tolist()) == {0, 1}
    with pytest.raises(ValueError, match="one row per parcel"):
        parcel_folds(np.array([1, 2, 2, 3]), np.array([0, 1, 1, 0]), 2)


@pytest.fixture(scope="module")
def bad_tables(real, tmp_path_factory):
    root = tmp_path_factory.mktemp("worldcrops_bad")
    header, rows = real["header"], real["rows"]
    out = {}
    no_b8a = header.index("B8A_mean")
    out["band"] = _write(root / "no_b8a.xlsx", [h for i, h in enumerate(header) if i != no_b8a],
                         [[v for i, v in enumerate(r) if i != no_b8a] for r in rows])
    # one row per parcel, one column per band and date: a wide layout
    out["wide"] = _write(root / "wide.xlsx", ["id", "NC", "B2_2018-02-15", "B3_2018-02-15"], [[1, 451, 1200, 1300]])
    out["text"] = root / "table.xlsx"
    out["text"].write_text("id,Date,NC\n1,2018-02-15,451\n")
    out["twice"] = _write(root / "twice.xlsx", header, rows + [rows[0]])
    two_codes = [list(r) for r in rows]
    two_codes[1][header.index("NC")] = 999
    out["codes"] = _write(root / "codes.xlsx", header, two_codes)
    bad_date = [list(r) for r in rows]
    bad_date[3][header.index("Date")] = "mid-March"
    out["date"] = _write(root / "date.xlsx", header, bad_date)
    out["header_only"] = _write(root / "header.xlsx", header, [])
    return out


CASES = [
    ("missing band column", "band", [], "no column for band B8A (B8A_mean)"),
    ("unknown layout", "wide", [], "no column 'Date'"),
    ("not a workbook", "text", [], "table.xlsx is not a readable .xlsx workbook"),
    ("parcel and date twice", "twice", [], "has a second row for 2018-02-15"),
    ("two codes for a parcel", "codes", [], "one code per parcel"),
    ("bad date", "date", [], "row 5: Date 'mid-March' is not a date"),
    ("no data row", "header_only", [], "has a header but no data row"),
    ("missing file", None, [], "input not found"),
    ("one class left", "path", ["--min_parcels", "4"], "at least two are needed"),
    ("season without dates", "path", ["--season_start", "2019"], "no date of the table"),
    ("bad rare rule", "path", ["--rare", "keep"], "parameter 'rare'"),
]


@pytest.mark.parametrize("case_id, key, extra, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_table(case_id, key, extra, fragment, real, bad_tables, tmp_path, capsys):
    table = real["path"] if key == "path" else bad_tables.get(key, tmp_path / "nowhere.xlsx")
    code, out = _run(tmp_path, table, *extra)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("worldcrops: error: "), err
    assert fragment in lines[0]
    assert not out.exists()


def test_empty_cells_are_missing_observations(real, tmp_path):
    """A blank band cell leaves that date out of its month; a parcel with no value at all is left out."""
    h, rows = real["header"], [list(r) for r in real["rows"]]
    cols = [h.index(f"{b}_mean") for b in BANDS]
    first, last = real["parcels"][0], real["parcels"][-1]
    march = [r for r in rows if r[h.index("id")] == first and r[h.index("Date")].strftime("%Y-%m") == "2018-03"]
    march[0][cols[3]] = None
    for r in rows:
        if r[h.index("id")] == last:
            for c in cols:
                r[c] = None
    code, out = _run(tmp_path, _write(tmp_path / "gaps.xlsx", h, rows), "--min_parcels", "1")
    assert code == 0
    x, parcels = np.load(out / "train.npy"), np.load(out / "parcels.npy")
    assert last not in parcels.tolist() and len(parcels) == 7
    assert json.loads((out / "dataset.json").read_text())["parcels_without_observation"] == 1
    expected = np.floor(np.asarray([march[1][c] for c in cols], np.float64) + 0.5)
    np.testing.assert_allclose(x[0, MONTHS.index("2018-03")], expected, atol=1)
