"""Reading the TimeSen2Crop archive layout, from a folder or a ``.zip`` read in place.

Layout (seed section 3.2.2, the Zenodo archive as published)::

    <root>/                    (possibly one extra top folder, e.g. TimeSen2Crop/)
      <tile>/                  one folder per Sentinel-2 tile, e.g. 33UVP
        dates.csv              acquisition dates of the tile, one row per date (YYYYMMDD)
        <class>/               one folder per crop type: the class id 0..15 (or its name)
          <n>.csv              one labelled pixel: a row per acquisition date (in the order of
                               dates.csv), a column per band B2 B3 B4 B5 B6 B7 B8A B11 B12
                               (reflectance x 10000) and, last, the pixel condition
                               (0 clear, 1 cloud, 2 shadow, 3 snow)

Sample CSVs are parsed in bulk: the bodies of many files are joined and read by one NumPy call;
a file that does not parse that way is read on its own, and a file that cannot be read is
reported by name. Column names are matched case-insensitively (``B02`` and ``B2`` alike); files
without a header, or with a leading index column, are read by position (the last ten columns).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from components.common.errors import ServiceError
from components.common.readers import ZIP_ERRORS, zip_failure

from .legend import BANDS, CLASSES, CONDITIONS, normalise_band

log = logging.getLogger(__name__)

DATES_FILE = "dates.csv"
CONDITION_COLUMNS = ("LABEL", "FLAG", "CONDITION", "CONDITIONS", "PIXEL_CONDITION", "CLOUD", "CLOUDS",
                     "MASK", "QA", "STATUS")
DATE_COLUMNS = ("ACQUISITION_DATE", "DATE", "DATES", "ACQUISITION", "TIME", "TIMESTAMP")
MAX_DEPTH = 2  # tile folders are found at most this deep below the root
# Band values are reflectance x 10000 as integers (about 0-16000 over snow and cloud). The valid range
# is generous: down to reflectance -1 (the offset of processing baseline 04.00 leaves small negatives)
# and up to 65535, the largest value of the uint16 that Sentinel-2 products store. A value beyond is a
# fill value or a damaged file, not a reflectance, and would pass into the medians unnoticed.
VALID_VALUES = (-10000.0, 65535.0)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


CLASS_BY_NAME = {_key(name): cid for cid, name in CLASSES.items()}


@dataclass
class Tile:
    """One tile of the archive: its acquisition dates and its sample files per class id."""

    name: str
    prefix: str  # relative path of the tile folder ("" when the root is the tile)
    dates: np.ndarray = field(default=None)  # datetime64[D], in time order
    order: np.ndarray | None = None  # rows of the sample files in time order; None when dates.csv is sorted
    files: dict[int, list[str]] = field(default_factory=dict)  # class id -> member paths

    @property
    def n_samples(self) -> int:
        return sum(len(v) for v in self.files.values())


class Archive:
    """The archive at ``path``: a folder, or a ``.zip`` read in place (nothing is extracted)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            raise ServiceError(f"TimeSen2Crop archive not found: {self.path}")
        self.is_zip = self.path.is_file()
        if self.is_zip and not zipfile.is_zipfile(self.path):
            if _starts_like_zip(self.path):
                raise ServiceError(f"corrupt zip archive {self.path.name}: its central directory (the end of the "
                                   "file) is missing: the file is cut short or damaged; download it again")
            raise ServiceError(f"{self.path.name} is neither a folder nor a .zip archive")
        self._zip: zipfile.ZipFile | None = None
        try:
            self.tiles = self._index()
        except zipfile.BadZipFile as e:
            raise ServiceError(f"corrupt zip archive {self.path.name}: {e}") from None
        if not self.tiles:
            raise ServiceError(f"no TimeSen2Crop tile in {self.path}: expected folders <tile>/ holding "
                               f"{DATES_FILE} and one sub-folder per crop type")

    # -- listing --------------------------------------------------------------------------

    def _members(self) -> list[str]:
        """Relative POSIX paths of every file (at most MAX_DEPTH + 2 levels deep), and of every folder
        named ``*.csv`` with a trailing ``/``: in a class folder, it is a bad sample, not to be lost."""
        if self.is_zip:
            self._zip = zipfile.ZipFile(self.path)
            return [n for n in self._zip.namelist() if not n.endswith("/") or n.lower().endswith(".csv/")]
        out = []
        base = len(self.path.parts)
        for dirpath, dirnames, filenames in os.walk(self.path):
            depth = len(Path(dirpath).parts) - base
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            if depth > MAX_DEPTH + 1:
                dirnames[:] = []
                continue
            rel = Path(dirpath).relative_to(self.path).as_posix()
            out.extend(f if rel == "." else f"{rel}/{f}" for f in filenames)
            out.extend(f"{d}/" if rel == "." else f"{rel}/{d}/" for d in dirnames if d.lower().endswith(".csv"))
        return out

    def _index(self) -> dict[str, Tile]:
        members = self._members()
        tiles: dict[str, Tile] = {}
        by_prefix: dict[str, Tile] = {}
        for m in members:
            p = PurePosixPath(m)
            if (p.name.lower() == DATES_FILE and len(p.parts) <= MAX_DEPTH + 1 and not p.name.startswith(".")
                    and not m.endswith("/")):
                prefix = str(p.parent) if str(p.parent) != "." else ""
                name = PurePosixPath(prefix).name if prefix else self.path.stem
                if name in tiles:
                    raise ServiceError(f"tile {name} appears twice in {self.path.name}: "
                                       f"{tiles[name].prefix or '.'} and {prefix or '.'}")
                tiles[name] = by_prefix[prefix] = Tile(name, prefix)
        unknown: set[tuple[str, str]] = set()
        undated: set[str] = set()
        for m in members:
            p = PurePosixPath(m)
            if p.suffix.lower() != ".csv" or p.name.startswith(".") or len(p.parts) < 2:
                continue
            prefix = str(p.parent.parent) if str(p.parent.parent) != "." else ""
            tile = by_prefix.get(prefix)
            if tile is None:
                if p.parent.name.strip().isdigit() or class_id(p.parent.name) is not None:
                    # a tile's samples without its dates: not to be lost
                    undated.add(prefix or ".")
                continue
            folder = p.parent.name
            cid = class_id(folder)
            if cid is None:
                unknown.add((tile.name, folder))
                continue
            tile.files.setdefault(cid, []).append(m)
        if undated:
            raise ServiceError(f"tile folder {sorted(undated)[0]} in {self.path.name} holds crop-type folders of "
                               f"samples but no {DATES_FILE}: add it (one acquisition date per row) or remove "
                               "the folder")
        if unknown:
            tile, folder = sorted(unknown)[0]
            raise ServiceError(f"unknown crop-type folder {folder!r} in tile {tile}: expected a class id "
                               f"0-{max(CLASSES)} or a class name of Table 8 ({', '.join(CLASSES.values())})")
        for tile in tiles.values():
            for files in tile.files.values():
                files.sort(key=_natural)
            dates = parse_dates(self.read(_join(tile.prefix, DATES_FILE)), f"{tile.name}/{DATES_FILE}")
            # time steps in time order; the sample rows follow dates.csv, so they are reordered alike
            if np.any(dates[1:] < dates[:-1]):
                tile.order = np.argsort(dates, kind="stable")
                dates = dates[tile.order]
            tile.dates = dates
        return dict(sorted(tiles.items()))

    # -- reading --------------------------------------------------------------------------

    def reader(self) -> "Reader":
        """A picklable reader of members, for worker processes."""
        return Reader(str(self.path), self.is_zip)

    def read(self, member: str) -> bytes:
        if self.is_zip:
            if self._zip is None:
                self._zip = zipfile.ZipFile(self.path)
            return read_member(self._zip, member, self.path.name)
        return (self.path / member).read_bytes()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        cached = _OPEN_ZIPS.pop((os.getpid(), str(self.path)), None)
        if cached is not None:
            cached.close()


_OPEN_ZIPS: dict[tuple[int, str], zipfile.ZipFile] = {}


@dataclass
class Reader:
    """Reads members of an archive (folder or zip). A zip is opened once per process: its central
    directory (1.2 million entries for the full archive) is not parsed again for every batch."""

    path: str
    is_zip: bool

    def read_many(self, members: list[str]) -> list[bytes | None]:
        """The bytes of each member; None for a folder (listed with a trailing ``/``)."""
        if not self.is_zip:
            root = Path(self.path)
            return [None if m.endswith("/") else (root / m).read_bytes() for m in members]
        key = (os.getpid(), self.path)
        z = _OPEN_ZIPS.get(key)
        if z is None:
            z = _OPEN_ZIPS[key] = zipfile.ZipFile(self.path)
        return [None if m.endswith("/") else read_member(z, m, Path(self.path).name) for m in members]


def read_member(z: zipfile.ZipFile, member: str, archive: str) -> bytes:
    """A member of the archive; its CRC is checked as it is read (by ``zipfile``): a damaged one
    is a ServiceError naming it (picklable: also raised in worker processes), and so is one that
    ``zipfile`` cannot read at all (password-protected, or an unsupported compression method)."""
    try:
        return z.read(member)
    except ZIP_ERRORS as e:
        raise zip_failure(e, archive, member, z.getinfo(member)) from None


def _starts_like_zip(path: Path) -> bool:
    """Whether the file begins as a .zip does (a local file header), whatever its end holds."""
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _natural(path: str):
    stem = PurePosixPath(path).stem
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)


def class_id(folder: str) -> int | None:
    """Class id of a crop-type folder: its number, a class id of Table 8 (0-15), or a class name
    of Table 8; None for any other folder (a number outside the legend too: its samples would be a
    class without name or colour)."""
    text = folder.strip()
    if text.isdigit():
        return int(text) if int(text) in CLASSES else None
    return CLASS_BY_NAME.get(_key(text))


# -- dates ---------------------------------------------------------------------------------

_DATE_RE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")


def parse_dates(raw: bytes, where: str) -> np.ndarray:
    """Acquisition dates of ``dates.csv``: one date per row (``YYYYMMDD`` or ``YYYY-MM-DD``),
    with or without a header and an index column. Returns ``datetime64[D]``."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ServiceError(f"{where} is not a text file") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows:
        raise ServiceError(f"{where} lists no acquisition date")
    header = rows[0]
    col = None
    start = 1  # row number of the first date
    if not any(_DATE_RE.fullmatch(c.strip()) for c in header):
        names = [c.strip().upper() for c in header]
        col = next((names.index(n) for n in DATE_COLUMNS if n in names), None)
        rows, start = rows[1:], 2
    dates = []
    for i, row in enumerate(rows, start=start):
        cells = [row[col]] if col is not None and col < len(row) else row
        match = next((m for m in (_DATE_RE.fullmatch(c.strip()) for c in reversed(cells)) if m), None)
        if match is None:
            raise ServiceError(f"{where} row {i}: no date in {','.join(row)!r} (expected YYYYMMDD)")
        try:
            dates.append(np.datetime64(f"{match[1]}-{match[2]}-{match[3]}", "D"))
        except ValueError:
            raise ServiceError(f"{where} row {i}: {match[0]!r} is not a valid date") from None
    if not dates:
        raise ServiceError(f"{where} lists no acquisition date")
    out = np.array(dates, dtype="datetime64[D]")
    uniq, counts = np.unique(out, return_counts=True)
    if (counts > 1).any():  # two rows of every sample file would claim one date
        date = uniq[counts > 1][0]
        at = [str(i) for i, d in enumerate(dates, start=start) if d == date]
        raise ServiceError(f"{where}: date {date} appears {len(at)} times (rows {', '.join(at)}): each "
                           "acquisition date must be listed once")
    return out


# -- sample CSVs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where the bands and the condition are in a sample CSV."""

    n_cols: int
    bands: tuple[int, ...]
    condition: int
    header: bool


def layout_of(first_line: str, where: str) -> Layout:
    """The column layout from the first line of a sample CSV."""
    tokens = [t.strip().strip('"').strip("'") for t in first_line.split(",")]
    header = not all(_is_number(t) for t in tokens if t != "")
    n = len(tokens)
    lacks = ""
    if header:
        names = [normalise_band(t) for t in tokens]
        missing = [b for b in BANDS if b not in names]
        if missing and len(missing) < len(BANDS):  # band names, not all: reading by position would mislabel
            lacks = f" (no column {', '.join(missing)})"
        if not missing:
            bands = tuple(names.index(b) for b in BANDS)
            cond = next((names.index(c) for c in CONDITION_COLUMNS if c in names), None)
            if cond is None and names[-1] not in BANDS:
                cond = n - 1
            if cond is not None:
                return Layout(n, bands, cond, True)
    if n in (len(BANDS) + 1, len(BANDS) + 2) and not lacks:
        return Layout(n, tuple(range(n - len(BANDS) - 1, n - 1)), n - 1, header)
    raise ServiceError(f"{where}: unrecognised columns {first_line.strip()!r}{lacks}: expected the bands "
                       f"{','.join(BANDS)} and the pixel condition (0 clear, 1 cloud, 2 shadow, 3 snow)")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _fromstring(body: bytes) -> np.ndarray | None:
    """Comma/newline separated numbers -> float32 array; None when the text does not parse fully."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return np.fromstring(body.replace(b"\n", b","), dtype=np.float32, sep=",")
        except (DeprecationWarning, ValueError):
            return None


def _even_rows(body: bytes, n_cols: int) -> bool:
    """Whether every line of ``body`` holds ``n_cols`` cells: the bulk parse counts only the
    numbers, so a row with a cell too many beside one with a cell too few would pass it shifted."""
    text = np.frombuffer(body, np.uint8)
    commas = np.flatnonzero(text == ord(","))
    before = np.searchsorted(commas, np.flatnonzero(text == ord("\n")))  # commas before each line end
    per_row = np.diff(before, prepend=0, append=commas.size)
    return bool((per_row == n_cols - 1).all())


@dataclass
class Parsed:
    """Samples parsed from a batch of CSVs."""

    values: np.ndarray  # float32 [n, T, bands]
    condition: np.ndarray  # int16 [n, T]
    bad: list[tuple[str, str]]  # (member, reason) of the files that could not be used


def parse_samples(raws: list[bytes | None], names: list[str], n_dates: int) -> Parsed:
    """Parse sample CSVs that must each hold ``n_dates`` rows (None: a folder named like one)."""
    bad: list[tuple[str, str]] = []
    groups: dict[Layout, list[tuple[int, bytes, int]]] = {}
    for i, (raw, name) in enumerate(zip(raws, names)):
        if raw is None:
            bad.append((name.rstrip("/"), "a folder, not a CSV file"))
            continue
        text = raw.replace(b"\r", b"").strip()
        if text.startswith(b"\xef\xbb\xbf"):
            text = text[3:]
        if not text:
            bad.append((name, "empty file"))
            continue
        first, _, rest = text.partition(b"\n")
        try:
            layout = layout_of(first.decode("utf-8", "replace"), name)
        except ServiceError as e:
            bad.append((name, str(e).split(": ", 1)[-1]))
            continue
        body = rest.strip() if layout.header else text
        rows = body.count(b"\n") + 1 if body else 0
        if rows != n_dates:
            bad.append((name, f"{rows} rows of observations where dates.csv lists {n_dates} dates"))
            continue
        groups.setdefault(layout, []).append((i, body, rows))
    ok: dict[int, np.ndarray] = {}
    for layout, items in groups.items():
        joined = b"\n".join(body for _, body, _ in items)
        table = _fromstring(joined)
        if table is not None and table.size == len(items) * n_dates * layout.n_cols and \
                _even_rows(joined, layout.n_cols):
            table = table.reshape(len(items), n_dates, layout.n_cols)
            for k, (i, _, _) in enumerate(items):
                ok[i] = table[k]
            continue
        for i, body, _ in items:  # find the files that do not parse in bulk
            one = _fromstring(body)
            if one is not None and one.size == n_dates * layout.n_cols and _even_rows(body, layout.n_cols):
                ok[i] = one.reshape(n_dates, layout.n_cols)
                continue
            parsed = _parse_slow(body, layout, n_dates)
            if isinstance(parsed, str):
                bad.append((names[i], parsed))
            else:
                ok[i] = parsed
    order = sorted(ok)
    layouts = {i: lay for lay, items in groups.items() for i, _, _ in items}
    values = np.empty((len(order), n_dates, len(BANDS)), np.float32)
    cond = np.empty((len(order), n_dates), np.int16)
    keep = []
    for k, i in enumerate(order):
        table, lay = ok[i], layouts[i]
        c = table[:, lay.condition]
        if not np.all(np.isin(c, list(CONDITIONS))):
            odd = c[~np.isin(c, list(CONDITIONS))][0]
            bad.append((names[i], f"pixel condition {odd:g} is not one of 0 clear, 1 cloud, 2 shadow, 3 snow"))
            continue
        v = table[:, list(lay.bands)]
        out = ~(np.isnan(v) | ((v >= VALID_VALUES[0]) & (v <= VALID_VALUES[1])))  # NaN (a blank cell) is missing
        if out.any():
            r, b = np.argwhere(out)[0]
            bad.append((names[i], f"row {r + 1}: {BANDS[b]} value {v[r, b]:g} is outside {VALID_VALUES[0]:g} to "
                                  f"{VALID_VALUES[1]:g} (reflectance x 10000)"))
            continue
        values[len(keep)] = v
        cond[len(keep)] = c.astype(np.int16)
        keep.append(i)
    return Parsed(values[:len(keep)], cond[:len(keep)], sorted(bad, key=lambda b: _natural(b[0])))


def _parse_slow(body: bytes, layout: Layout, n_dates: int):
    """Row-by-row parse of the needed columns; a reason string when the file is unusable."""
    rows = list(csv.reader(io.StringIO(body.decode("utf-8", "replace"))))
    if len(rows) != n_dates:
        return f"{len(rows)} rows of observations where dates.csv lists {n_dates} dates"
    out = np.zeros((n_dates, layout.n_cols), np.float32)
    for r, row in enumerate(rows):
        if len(row) != layout.n_cols:
            return f"row {r + 1} has {len(row)} columns instead of {layout.n_cols}"
        for c in (*layout.bands, layout.condition):
            cell = row[c].strip()
            try:
                out[r, c] = float(cell) if cell else np.nan
            except ValueError:
                return f"row {r + 1}: {cell!r} is not a number"
    return out
