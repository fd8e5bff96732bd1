"""WorldCrops parcel tables to the arrays ``train_lstm`` reads.

WorldCrops (ESA-PhiLab/WorldCrops) publishes labelled crop time series as spreadsheets in a long
layout: one row per field parcel and date, the parcel id (``id``), the date (``Date``), an integer
crop code (``NC``) and the per-parcel mean of each Sentinel-2 band (``B1_mean`` ... ``B12_mean``,
reflectance x 10000), plus indices and the area. This adapter turns such a table into what
``timesen2crop`` writes, so that the rest of the crop chain takes it unchanged:

- bands: the nine bands of the service (``legend.BANDS``: B2 B3 B4 B5 B6 B7 B8A B11 B12), found by
  name, in that order; the others (B1, B8, B9, B10, indices, area) are left out. The unit is the
  same (reflectance x 10000), but WorldCrops Bavaria holds L1C top-of-atmosphere values, not the
  L2A surface reflectance of TimeSen2Crop and of the composites: a model trained on it is not
  meant for composites of L2A products;
- dates: the season months of ``timesen2crop`` (September of ``season_start`` to August) and,
  per month, the composite of ``monthlycomposite`` (``s2_harmonization.kernels.composite_block``:
  median of the observations, rounded, 0 where a month has none). The table has no cloud flag:
  every observation counts as clear; an empty band cell (or one reading NaN, NA, N/A, #N/A, null,
  none or -) makes that observation missing; any other cell that is not a number stops the run,
  naming the sheet, row, column and text: ``1,922`` may be a decimal comma (1.922) or a thousands
  separator (1922), so decimal commas are refused rather than guessed;
- unit: by the rule of ``components.common.reflectance`` for floating-point values without a scale
  tag, on the 1st and 99th percentiles of the band cells (zeros and missing cells left out):
  within about -0.5..2, reflectance, multiplied by 10000 (a log line says so); 99th percentile
  100..65535, reflectance x 10000, taken as it is; anything else (percent, 0..100, is ambiguous)
  stops the run;
- classes: crop codes (``NC`` values, up to 999) become class ids 0..K-1 (``train_lstm`` takes
  0..254), ordered by code; codes with fewer than ``min_parcels`` parcels are merged into one
  class "other" (``rare merge``) or left out (``rare drop``), and ``dataset.json`` lists which.

Outputs: ``train.npy`` float32 [parcels, 12, 9] (the product), ``y_train.npy`` int64,
``parcels.npy`` (the parcel id of each row, for splits by parcel), ``dataset.json`` (bands, months,
classes with their codes and parcel counts, what was merged or dropped) and ``run.json``.

    python -m components.crop_lstm.worldcrops --input Test_bavaria.xlsx --output_dir arrays/
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from components import __version__
from components.common import outputs, storage
from components.common.errors import ServiceError
from components.common.logs import Steps
from components.common.params import ServiceParams, param
from components.common.reflectance import DN_MIN_HIGH, DN_RANGE, PERCENTILES, QUANTIFICATION, REFLECTANCE_RANGE
from components.s2_harmonization.kernels import composite_block
from components.timesen2crop.dataset import months_of_dates
from components.timesen2crop.legend import BANDS, SEASON_START_YEAR, normalise_band, season_months

log = logging.getLogger(__name__)

SERVICE = "worldcrops"
ID_COLUMN, DATE_COLUMN, CODE_COLUMN = "id", "date", "nc"
BAND_SUFFIX = "_mean"
LAYOUT = ("the WorldCrops long layout: one row per parcel and date, columns id, Date, NC and "
          "B2_mean ... B12_mean")
OTHER = "other"


@dataclass(frozen=True)
class WorldCropsParams(ServiceParams):
    season_start: int = param(SEASON_START_YEAR, "Year in which the agronomic year starts (September), as in "
                              "timesen2crop and monthlycomposite", minimum=2015, maximum=2100)
    min_parcels: int = param(5, "Crop codes with fewer parcels than this are rare (see rare)", minimum=1)
    rare: Literal["merge", "drop"] = param("merge", "Rare crop codes: merge them into one class 'other' "
                                           "(left out too when it has fewer than min_parcels parcels), or drop "
                                           "their parcels")


@dataclass
class ParcelTable:
    """A WorldCrops table, one entry per parcel."""

    parcels: np.ndarray  # int64 [N] parcel ids
    codes: np.ndarray  # int64 [N] crop codes (NC)
    dates: np.ndarray  # datetime64[D] [T], sorted
    values: np.ndarray  # float32 [N, T, len(BANDS)] in BANDS order; NaN where no observation


@dataclass
class Classes:
    """Crop codes to class ids."""

    y: np.ndarray  # int64 [N], -1 for a parcel left out
    names: dict[int, str]  # class id -> name
    codes: dict[int, list[int]]  # class id -> crop codes in it
    merged: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)


@dataclass
class WorldCropsResult:
    train: str
    y_train: str
    parcels: str
    dataset: str
    run_record: str
    metrics: dict = field(default_factory=dict)


# -- reading ---------------------------------------------------------------------------------


def _integer(value, what: str, where: str) -> int:
    if isinstance(value, bool) or value is None:
        raise ServiceError(f"{where}: {what} {value!r} is not an integer")
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ServiceError(f"{where}: {what} {value!r} is not an integer") from None
    if not number.is_integer():
        raise ServiceError(f"{where}: {what} {value!r} is not an integer")
    return int(number)


def _date(value, where: str) -> np.datetime64:
    if isinstance(value, dt.datetime):
        return np.datetime64(value.date(), "D")
    if isinstance(value, dt.date):
        return np.datetime64(value, "D")
    try:
        return np.datetime64(dt.date.fromisoformat(str(value).strip()[:10]), "D")
    except ValueError:
        raise ServiceError(f"{where}: Date {value!r} is not a date") from None


# band cells that mean "no observation"; any other text must be a number with a decimal point
MISSING_TEXT = frozenset({"", "nan", "na", "n/a", "#n/a", "null", "none", "-"})
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class _BadCell(ValueError):
    """A band cell that is neither a number nor empty."""


def _number(value) -> float:
    """A band cell: a number, or NaN (no observation) for an empty cell or one of
    :data:`MISSING_TEXT`; :class:`_BadCell` for anything else (text that is not a plain number with
    a decimal point, a TRUE/FALSE cell, a date)."""
    if value is None:
        return float("nan")
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in MISSING_TEXT:
            return float("nan")
        if _DECIMAL.fullmatch(text):
            return float(text)
    raise _BadCell(value)


def _bad_cell(value, where: str, header: str, column: int, count: int) -> str:
    from openpyxl.utils import get_column_letter

    text = value.strip() if isinstance(value, str) else value
    why = f"{where}, column {header} ({get_column_letter(column + 1)}): band cell {text!r} is not a number"
    if isinstance(text, str) and "," in text:
        why += (" (a decimal comma? '1,922' may be 1.922 or, with a thousands separator, 1922: the unit cannot "
                "be told, so the adapter does not guess): write the band values with a decimal point and no "
                "thousands separator, or store them as numbers")
    else:
        markers = ", ".join(sorted(MISSING_TEXT - {""}))
        why += f": a band value is a number; an empty cell (or {markers}) is a missing observation"
    if count > 1:
        why += f"; {count} such band cells in all"
    return why


def _rows(path: Path) -> tuple[str, list[tuple]]:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise ServiceError(f"{path.name} is not a readable .xlsx workbook: {' '.join(str(e).split())[:160]}") from None
    try:
        sheet = book.worksheets[0]
        return sheet.title, [r for r in sheet.iter_rows(values_only=True) if any(v is not None for v in r)]
    finally:
        book.close()


def _header(header: tuple, name: str) -> tuple[int, int, int, list[int]]:
    """Column indexes of id, Date, NC and the nine bands, found by name."""
    names = [str(h).strip() if h is not None else "" for h in header]
    lower = [n.lower() for n in names]
    found = {}
    for key, label in ((ID_COLUMN, "id"), (DATE_COLUMN, "Date"), (CODE_COLUMN, "NC")):
        if key not in lower:
            raise ServiceError(f"{name}: no column '{label}'; columns: {', '.join(n for n in names if n) or 'none'}: "
                               f"expected {LAYOUT}")
        found[key] = lower.index(key)
    bands = {}
    for i, n in enumerate(names):
        if n.lower().endswith(BAND_SUFFIX):
            band = normalise_band(n[:-len(BAND_SUFFIX)])
            if band in bands:
                raise ServiceError(f"{name}: two columns for band {band}: {names[bands[band]]}, {n}")
            bands[band] = i
    missing = [b for b in BANDS if b not in bands]
    if missing:
        raise ServiceError(f"{name}: no column for band {', '.join(missing)} ({missing[0]}{BAND_SUFFIX}); "
                           f"bands found: {', '.join(bands) or 'none'}: the service needs {', '.join(BANDS)}")
    return found[ID_COLUMN], found[DATE_COLUMN], found[CODE_COLUMN], [bands[b] for b in BANDS]


def read_table(path: Path) -> ParcelTable:
    """Read a WorldCrops table (.xlsx, first sheet, header in the first row) into one entry per
    parcel; every problem is a :class:`ServiceError` naming the row or column."""
    path = Path(path)
    if not path.is_file():
        raise ServiceError(f"input not found: {path}")
    sheet, rows = _rows(path)
    if not rows:
        raise ServiceError(f"{path.name} is empty: expected {LAYOUT}")
    id_col, date_col, code_col, band_cols = _header(rows[0], path.name)
    if len(rows) < 2:
        raise ServiceError(f"{path.name} has a header but no data row")
    width = max(id_col, date_col, code_col, *band_cols) + 1
    code_of: dict[int, int] = {}
    observations: dict[tuple[int, np.datetime64], list[float]] = {}
    bad: list = []  # the first unreadable band cell: value, row, column
    n_bad = 0
    for r, row in enumerate(rows[1:], start=2):
        where = f"{path.name} row {r}"
        row = tuple(row) + (None,) * (width - len(row))
        parcel = _integer(row[id_col], "parcel id", where)
        code = _integer(row[code_col], "crop code NC", where)
        date = _date(row[date_col], where)
        if code_of.setdefault(parcel, code) != code:
            raise ServiceError(f"{where}: parcel {parcel} has crop code {code} here and {code_of[parcel]} in an "
                               "earlier row: one code per parcel")
        if (parcel, date) in observations:
            raise ServiceError(f"{where}: parcel {parcel} has a second row for {date}: one row per parcel and date")
        cells = []
        for c in band_cols:
            try:
                cells.append(_number(row[c]))
            except _BadCell:
                cells.append(float("nan"))
                n_bad += 1
                if not bad:
                    bad = [row[c], r, c]
        observations[(parcel, date)] = cells
    if bad:
        value, r, c = bad
        header = str(rows[0][c]).strip()
        raise ServiceError(_bad_cell(value, f"{path.name}, sheet '{sheet}', row {r}", header, c, n_bad))
    parcels = np.array(sorted(code_of), np.int64)
    dates = np.array(sorted({d for _, d in observations}), "datetime64[D]")
    p_index = {p: i for i, p in enumerate(parcels.tolist())}
    d_index = {d: i for i, d in enumerate(dates.tolist())}
    values = np.full((len(parcels), len(dates), len(BANDS)), np.nan, np.float32)
    for (parcel, date), v in observations.items():
        values[p_index[parcel], d_index[date.item()]] = v
    codes = np.array([code_of[p] for p in parcels.tolist()], np.int64)
    return ParcelTable(parcels, codes, dates, values)


# -- unit, harmonisation, classes and splits -------------------------------------------------


def table_unit(values: np.ndarray, name: str) -> tuple[float, str]:
    """The factor that brings the band values to reflectance x 10000, and what was decided: the
    rule of ``components.common.reflectance`` for floating-point values without a scale tag, on
    the 1st and 99th percentiles of the band cells (missing cells and zeros left out). Reflectance
    (within about -0.5..2): 10000; reflectance x 10000 (99th percentile 100..65535): 1; anything
    else (percent, 0..100, is ambiguous): a ServiceError."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v) & (v != 0)]
    if not v.size:
        return 1.0, "no band value"
    lo, hi = (float(q) for q in np.percentile(v, PERCENTILES))
    seen = f"{lo:.6g}..{hi:.6g} (1st..99th percentile of the band cells)"
    if REFLECTANCE_RANGE[0] <= lo and hi <= REFLECTANCE_RANGE[1]:
        return QUANTIFICATION, (f"{name}: band values {seen} are reflectance 0..1: multiplied by "
                                f"{QUANTIFICATION:g}, the unit of the crop chain (reflectance x 10000)")
    if DN_RANGE[0] <= lo and hi <= DN_RANGE[1] and hi >= DN_MIN_HIGH:
        return 1.0, f"{name}: band values {seen}: reflectance x 10000"
    raise ServiceError(f"{name}: band values {seen} are neither reflectance 0..1 (about {REFLECTANCE_RANGE[0]:g}.."
                       f"{REFLECTANCE_RANGE[1]:g}) nor reflectance x 10000 (99th percentile {DN_MIN_HIGH:g}.."
                       f"{DN_RANGE[1]:g}): percent? the unit is ambiguous: give the band columns as reflectance "
                       "x 10000 (percent x 100) or as reflectance 0..1")


def monthly(table: ParcelTable, season_start: int) -> tuple[np.ndarray, list[str]]:
    """float32 [N, 12, bands]: each season month composited as monthlycomposite does it (one
    parcel = one pixel), 0 where the month has no observation; and the month labels."""
    months = season_months(season_start)
    month_of_date = months_of_dates(table.dates, season_start)
    if not (month_of_date >= 0).any():
        raise ServiceError(f"no date of the table ({table.dates[0]} to {table.dates[-1]}) is in the agronomic "
                           f"year {months[0]} to {months[-1]}: check --season_start")
    n = len(table.parcels)
    out = np.zeros((n, len(months), len(BANDS)), np.float32)
    observed = np.isfinite(table.values).all(axis=-1)  # [N, T]
    for m in range(len(months)):
        idx = np.flatnonzero(month_of_date == m)
        if idx.size == 0:
            continue
        # composite_block wants [bands, rows, cols, n]: the parcels are the rows of a one-column image
        boa = np.nan_to_num(table.values[:, idx, :]).transpose(2, 0, 1)[:, :, None, :]
        clear = observed[:, idx].astype(np.float32)[:, None, :]  # LAI stand-in: non-zero = clear
        composite, _ = composite_block(boa, clear)
        out[:, m] = composite[:, :, 0].T
    outside = int((month_of_date < 0).sum())
    if outside:
        log.warning("%d of the %d dates are outside the agronomic year %s to %s: left out", outside,
                    len(table.dates), months[0], months[-1])
    return out, months


def group_classes(codes: np.ndarray, min_parcels: int, rare: str) -> Classes:
    """Class ids 0..K-1 for the crop codes with at least ``min_parcels`` parcels (by code), then
    "other" for the rare ones when merged and numerous enough; -1 for parcels left out."""
    ids, counts = np.unique(codes, return_counts=True)
    common = [int(c) for c, k in zip(ids, counts) if k >= min_parcels]
    rare_codes = [int(c) for c, k in zip(ids, counts) if k < min_parcels]
    lookup = {c: i for i, c in enumerate(common)}
    names = {i: f"NC {c}" for c, i in lookup.items()}
    members = {i: [c] for c, i in lookup.items()}
    merged, dropped = [], list(rare_codes)
    n_rare = int(np.isin(codes, rare_codes).sum())
    if rare == "merge" and rare_codes and n_rare >= min_parcels:
        other = len(common)
        lookup.update({c: other for c in rare_codes})
        names[other] = OTHER
        members[other] = rare_codes
        merged, dropped = rare_codes, []
    y = np.array([lookup.get(int(c), -1) for c in codes], np.int64)
    if len(names) < 2:
        raise ServiceError(f"only {len(names)} crop class with at least {min_parcels} parcels: at least two are "
                           "needed (lower --min_parcels)")
    return Classes(y, names, members, merged, dropped)


def parcel_folds(parcels: np.ndarray, y: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """The cross-validation fold (0..k-1) of each parcel: every parcel is in exactly one test
    fold, whatever its dates, since the arrays hold one row per parcel. Stratified by class when
    every class has at least ``k`` parcels, otherwise plain shuffled folds."""
    from sklearn.model_selection import KFold, StratifiedKFold

    parcels = np.asarray(parcels)
    if len(np.unique(parcels)) != len(parcels):
        raise ValueError("one row per parcel is needed: a parcel id repeats")
    if not 2 <= k <= len(parcels):
        raise ValueError(f"{k} folds for {len(parcels)} parcels")
    _, counts = np.unique(y, return_counts=True)
    splitter = (StratifiedKFold(k, shuffle=True, random_state=seed) if counts.min() >= k
                else KFold(k, shuffle=True, random_state=seed))
    fold = np.full(len(parcels), -1, np.int64)
    for i, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
        fold[test] = i
    return fold


# -- the run ---------------------------------------------------------------------------------


def run(input_path: str, params: WorldCropsParams, output_dir: str) -> WorldCropsResult:
    with storage.output_folder(output_dir) as local_out:
        return _run(input_path, params, output_dir, local_out)


def _run(input_path: str, params: WorldCropsParams, output_dir: str, local_out: Path | None) -> WorldCropsResult:
    started = dt.datetime.now(dt.timezone.utc)
    steps = Steps(log)
    with outputs.work_folder(local_out, ".wcr-") as work:
        with steps.step("read table"):
            table = read_table(storage.fetch_input(input_path, work / "input"))
        log.info("%s: %d parcels, %d dates (%s to %s), %d crop codes", input_path, len(table.parcels),
                 len(table.dates), table.dates[0], table.dates[-1], len(np.unique(table.codes)))
        factor, unit_note = table_unit(table.values, Path(input_path).name)
        if factor != 1.0:
            log.info("%s", unit_note)
            table.values = (table.values.astype(np.float64) * factor).astype(np.float32)
        with steps.step("monthly composites"):
            x, months = monthly(table, params.season_start)
        empty = ~x.any(axis=(1, 2))
        if empty.any():
            log.warning("%d parcels without any observation in the season left out: %s", int(empty.sum()),
                        ", ".join(map(str, table.parcels[empty][:10])) + (" ..." if empty.sum() > 10 else ""))
            x, table = x[~empty], ParcelTable(table.parcels[~empty], table.codes[~empty], table.dates,
                                              table.values[~empty])
        if not len(x):
            raise ServiceError("no parcel has an observation in the season")
        classes = group_classes(table.codes, params.min_parcels, params.rare)
        keep = classes.y >= 0
        if classes.merged:
            log.info("%d rare crop codes (< %d parcels, %d parcels) merged into class '%s': %s", len(classes.merged),
                     params.min_parcels, int(np.isin(table.codes, classes.merged).sum()), OTHER,
                     ", ".join(map(str, classes.merged)))
        if classes.dropped:
            log.warning("%d rare crop codes (< %d parcels) left out with their %d parcels: %s", len(classes.dropped),
                        params.min_parcels, int((~keep).sum()), ", ".join(map(str, classes.dropped)))
        x, y, parcels = x[keep], classes.y[keep], table.parcels[keep]
        stage = work / "stage"
        stage.mkdir()
        np.save(stage / "train.npy", np.ascontiguousarray(x, np.float32))
        np.save(stage / "y_train.npy", y)
        np.save(stage / "parcels.npy", parcels)
        support = np.bincount(y, minlength=len(classes.names))
        dataset = {
            "format": "timesen2crop-arrays", "source": "worldcrops", "bands": list(BANDS), "temporal": "monthly",
            "timesteps": months, "season_start": params.season_start,
            "dates": [str(d) for d in table.dates],
            "values": "per-parcel mean reflectance x 10000 as in the table (WorldCrops Bavaria: L1C top of "
                      "atmosphere); monthly median of the dates of each month; 0 = no observation",
            "table_unit": "reflectance 0..1, multiplied by 10000" if factor != 1.0 else "reflectance x 10000",
            "classes": {str(i): n for i, n in classes.names.items()},
            "class_codes": {str(i): c for i, c in classes.codes.items()},
            "parcels_per_class": {str(i): int(support[i]) for i in classes.names},
            "rare": {"min_parcels": params.min_parcels, "rule": params.rare, "merged_codes": classes.merged,
                     "dropped_codes": classes.dropped, "dropped_parcels": int((~keep).sum())},
            "parcels_without_observation": int(empty.sum()),
            "splits": {"train": {"file": "train.npy", "labels": "y_train.npy", "parcels": "parcels.npy",
                                 "shape": list(x.shape), "samples": int(len(y))}},
        }
        outputs.write_json(stage / "dataset.json", dataset)
        metrics = {"parcels": int(len(y)), "classes": len(classes.names), "dropped_parcels": int((~keep).sum())}
        record = outputs.run_record(SERVICE, __version__, params.as_dict(),
                                    [{"uri": input_path, "parcels": int(len(table.parcels)),
                                      "dates": int(len(table.dates))}],
                                    {"dataset": "dataset.json", "train": "train.npy", "metrics": metrics},
                                    steps.timings, started)
        outputs.write_json(stage / "run.json", record)
        with steps.step("publish"):
            published = storage.publish(stage, output_dir, move=True)
    by_name = {Path(p).name: p for p in published}
    log.info("product %s: %d parcels x %d months x %d bands, %d classes", by_name["train.npy"], *x.shape,
             len(classes.names))
    return WorldCropsResult(by_name["train.npy"], by_name["y_train.npy"], by_name["parcels.npy"],
                            by_name["dataset.json"], by_name["run.json"], metrics)


INPUTS = [
    (("--input", "-i"), "WorldCrops table (.xlsx, long layout), local path or s3://bucket/key"),
    (("--output_dir", "-o"), "Output folder or s3://bucket/prefix"),
]


def main(argv: list[str] | None = None) -> int:
    from components.common.cli import run_cli

    return run_cli("worldcrops", "WorldCrops parcel table (one row per parcel and date) to monthly train.npy / "
                   "y_train.npy for train_lstm, with the bands and months of the crop chain.",
                   WorldCropsParams, INPUTS, lambda i, o, p: run(i, p, o), argv)


if __name__ == "__main__":
    sys.exit(main())
