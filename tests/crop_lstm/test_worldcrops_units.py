"""The WorldCrops adapter and the unit of the band cells, on a slice of the real Bavarian table
(reflectance x 10000): the same table in reflectance 0..1 gives the same arrays (multiplied by
10000, a log line says so), in percent it is refused (ambiguous); a band cell that is not a number
(a decimal comma) stops the run in one line naming the sheet, row, column and text, while empty
cells and the usual no-data markers stay missing observations."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from components.crop_lstm.worldcrops import main
from components.timesen2crop.legend import BANDS
from tests.conftest import sample

openpyxl = pytest.importorskip("openpyxl")

TABLE = "crop-parcels-worldcrops-bavaria/Test_bavaria.xlsx"
CODES = {451: 3, 115: 2}


@pytest.fixture(scope="module")
def real():
    book = openpyxl.load_workbook(sample(TABLE), read_only=True, data_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    book.close()
    header, rows = list(rows[0]), [list(r) for r in rows[1:]]
    id_col, code_col = header.index("id"), header.index("NC")
    wanted, picked = dict(CODES), []
    for r in rows:
        if r[id_col] not in picked and wanted.get(r[code_col], 0) > 0:
            picked.append(r[id_col])
            wanted[r[code_col]] -= 1
    keep = [r for r in rows if r[id_col] in picked]
    cols = [i for i, h in enumerate(header) if h and str(h).startswith("B") and str(h).endswith("_mean")]
    return {"header": header, "rows": keep, "bands": cols, "first_band": header.index(f"{BANDS[0]}_mean")}


def _write(path, header, rows):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "parcels"
    sheet.append(header)
    for r in rows:
        sheet.append(r)
    book.save(path)
    return path


def _scaled(real, factor):
    return [[v * factor if j in real["bands"] and isinstance(v, (int, float)) else v for j, v in enumerate(r)]
            for r in real["rows"]]


def _run(path, out):
    return main(["--input", str(path), "--output_dir", str(out), "--min_parcels", "1"])


def _error_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("worldcrops: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_reflectance_0_1_is_multiplied_by_10000(real, tmp_path, caplog):
    assert _run(_write(tmp_path / "dn.xlsx", real["header"], real["rows"]), tmp_path / "dn") == 0
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="components.crop_lstm.worldcrops"):
        assert _run(_write(tmp_path / "refl.xlsx", real["header"], _scaled(real, 1e-4)), tmp_path / "refl") == 0
    assert any("are reflectance 0..1: multiplied by 10000" in r.getMessage() for r in caplog.records), caplog.text
    a, b = np.load(tmp_path / "dn" / "train.npy"), np.load(tmp_path / "refl" / "train.npy")
    assert a.max() > 500  # reflectance x 10000, not values rounded to 0 or 1
    np.testing.assert_allclose(b, a, atol=1)
    assert json.loads((tmp_path / "refl" / "dataset.json").read_text())["table_unit"] == \
        "reflectance 0..1, multiplied by 10000"
    assert json.loads((tmp_path / "dn" / "dataset.json").read_text())["table_unit"] == "reflectance x 10000"


def test_percent_is_refused(real, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(_write(tmp_path / "percent.xlsx", real["header"], _scaled(real, 1e-2)), out) == 2
    line = _error_line(capsys)
    assert "percent.xlsx: band values" in line
    assert "neither reflectance 0..1" in line and "percent? the unit is ambiguous" in line
    assert not out.exists()


def test_decimal_comma_is_refused_naming_the_cell(real, tmp_path, capsys):
    rows = [list(r) for r in real["rows"]]
    c = real["first_band"]
    for r in rows[3:]:
        r[c] = f"{r[c]:.3f}".replace(".", ",")
    text = rows[3][c]
    out = tmp_path / "out"
    assert _run(_write(tmp_path / "comma.xlsx", real["header"], rows), out) == 2
    line = _error_line(capsys)
    letter = openpyxl.utils.get_column_letter(c + 1)
    assert f"comma.xlsx, sheet 'parcels', row 5, column B2_mean ({letter}): band cell '{text}' is not a number " \
           "(a decimal comma?" in line, line
    assert f"{len(rows) - 3} such band cells in all" in line
    assert "without any observation" not in line
    assert not out.exists()


def test_other_text_is_refused(real, tmp_path, capsys):
    rows = [list(r) for r in real["rows"]]
    rows[0][real["header"].index("B11_mean")] = "n.v."
    assert _run(_write(tmp_path / "text.xlsx", real["header"], rows), tmp_path / "out") == 2
    line = _error_line(capsys)
    assert "row 2, column B11_mean" in line and "band cell 'n.v.' is not a number" in line
    assert "decimal comma" not in line


def test_missing_markers_and_numbers_as_text(real, tmp_path):
    """Empty cells and NA-like markers are missing observations; a number stored as text with a
    decimal point is read."""
    rows = [list(r) for r in real["rows"]]
    c = real["first_band"]
    assert _run(_write(tmp_path / "plain.xlsx", real["header"], rows), tmp_path / "plain") == 0
    as_text = [list(r) for r in rows]
    for r in as_text:
        r[c] = f"{r[c]!r}"
    assert _run(_write(tmp_path / "text.xlsx", real["header"], as_text), tmp_path / "text") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "text" / "train.npy"), np.load(tmp_path / "plain" / "train.npy"))
    id_col = real["header"].index("id")
    last = rows[-1][id_col]
    for marker, r in zip(["", " NA ", "n/a", "#N/A", "-", "NaN", "null"] * 99, [r for r in rows if r[id_col] == last]):
        for j in real["bands"]:
            r[j] = marker
    assert _run(_write(tmp_path / "gaps.xlsx", real["header"], rows), tmp_path / "gaps") == 0
    assert last not in np.load(tmp_path / "gaps" / "parcels.npy").tolist()
    assert json.loads((tmp_path / "gaps" / "dataset.json").read_text())["parcels_without_observation"] == 1


def test_table_unit_rule():
    from components.common.errors import ServiceError
    from components.crop_lstm.worldcrops import table_unit

    rng = np.random.default_rng(0)
    dn = rng.uniform(500, 4000, (20, 14, 9)).astype(np.float32)
    dn[0, 0] = np.nan
    assert table_unit(dn, "t")[0] == 1.0
    assert table_unit(dn / 10000, "t")[0] == 10000.0
    for bad in (dn / 100, dn * 100):  # percent; beyond a uint16 DN
        with pytest.raises(ServiceError, match="neither reflectance 0..1"):
            table_unit(bad, "t")
