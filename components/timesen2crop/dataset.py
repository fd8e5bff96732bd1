"""From parsed samples to training arrays: usable observations, monthly medians, dropped samples.
Pure NumPy, plus the (parallel) loop over the archive's sample files."""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from components.common.cpus import usable_cpus
from components.common.errors import ServiceError
from components.common.logs import Progress
from components.common.medians import masked_median

from .archive import Archive, Reader, Tile, parse_samples
from .legend import MONTHS_PER_SEASON, month_index

log = logging.getLogger(__name__)

CHUNK_FILES = 2000  # sample files per task
PARALLEL_FROM = 4000  # fewer files than this are read in-process


def months_of_dates(dates: np.ndarray, season_start: int) -> np.ndarray:
    """Season month index (0..11) of each date; -1 outside the agronomic year."""
    years = dates.astype("datetime64[Y]").astype(int) + 1970
    months = dates.astype("datetime64[M]").astype(int) % 12 + 1
    idx = month_index(years, months, season_start)
    return np.where((idx >= 0) & (idx < MONTHS_PER_SEASON), idx, -1).astype(np.int64)


def aggregate(values: np.ndarray, condition: np.ndarray, usable_conditions: tuple[int, ...], non_clear: str,
              month_of_date: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Time steps of the training arrays and whether each has a usable observation.

    ``values`` float32 [n, dates, bands], ``condition`` [n, dates]. With ``month_of_date`` (the
    season month of each date, -1 outside), the steps are the 12 monthly medians of the usable
    observations (0 where a month has none); without, the dates themselves, unusable observations
    set to 0 unless ``non_clear`` is ``keep``.
    """
    usable = np.isfinite(values).all(axis=-1)
    if non_clear != "keep":
        usable &= np.isin(condition, usable_conditions)
    if month_of_date is None:
        return np.where(usable[..., None], values, np.float32(0)).astype(np.float32), usable
    n, _, bands = values.shape
    out = np.zeros((n, MONTHS_PER_SEASON, bands), np.float32)
    has = np.zeros((n, MONTHS_PER_SEASON), bool)
    for m in range(MONTHS_PER_SEASON):
        idx = np.flatnonzero(month_of_date == m)
        if idx.size == 0:
            continue
        median, count = masked_median(values[:, idx], usable[:, idx, None], axis=1)
        out[:, m] = np.nan_to_num(median, nan=0.0)
        has[:, m] = count[:, 0] > 0
    return out, has


@dataclass
class Chunk:
    """Arrays of one batch of sample files, after aggregation and dropping."""

    values: np.ndarray
    n_read: int
    dropped_incomplete: int
    dropped_empty: int
    bad: list[tuple[str, str]] = field(default_factory=list)


def load_chunk(reader: Reader, members: list[str], n_dates: int, month_of_date: np.ndarray | None,
               usable_conditions: tuple[int, ...], non_clear: str, order: np.ndarray | None = None) -> Chunk:
    """``order``: the rows of the files in time order (Tile.order), when dates.csv is not sorted."""
    parsed = parse_samples(reader.read_many(members), members, n_dates)
    if order is not None:
        parsed.values, parsed.condition = parsed.values[:, order], parsed.condition[:, order]
    values, has = aggregate(parsed.values, parsed.condition, usable_conditions, non_clear, month_of_date)
    empty = ~has.any(axis=1)
    incomplete = ~has.all(axis=1) & ~empty if non_clear == "drop" else np.zeros_like(empty)
    keep = ~(empty | incomplete)
    return Chunk(values[keep], len(values), int(incomplete.sum()), int(empty.sum()), parsed.bad)


@dataclass
class TileArrays:
    tile: str
    x: np.ndarray  # float32 [n, steps, bands]
    y: np.ndarray  # int64 [n]
    stats: dict


def load_tiles(archive: Archive, tiles: list[Tile], classes: set[int] | None, temporal: str, season_start: int,
               usable_conditions: tuple[int, ...], non_clear: str, bad_files: str, workers: int) -> list[TileArrays]:
    """Read every sample of ``tiles`` (restricted to ``classes``) into training arrays."""
    tasks = []
    for tile in tiles:
        month_of_date = months_of_dates(tile.dates, season_start) if temporal == "monthly" else None
        for cid, files in sorted(tile.files.items()):
            if classes is not None and cid not in classes:
                continue
            for start in range(0, len(files), CHUNK_FILES):
                tasks.append((tile.name, cid, files[start:start + CHUNK_FILES], len(tile.dates), month_of_date,
                              tile.order))
    total = sum(len(t[2]) for t in tasks)
    workers = workers or usable_cpus()
    reader = archive.reader()
    progress = Progress(total, "samples", log)
    results: list[tuple[str, int, Chunk]] = []

    def done(tile: str, cid: int, chunk: Chunk) -> None:
        if chunk.bad and bad_files == "error":
            member, reason = chunk.bad[0]
            more = f" (and {len(chunk.bad) - 1} more)" if len(chunk.bad) > 1 else ""
            raise ServiceError(f"unreadable sample {member}: {reason}{more}; pass --bad_files skip to leave "
                               "such files out")
        results.append((tile, cid, chunk))
        progress.advance(chunk.n_read + len(chunk.bad))

    args = lambda t: (reader, t[2], t[3], t[4], usable_conditions, non_clear, t[5])  # noqa: E731
    if workers <= 1 or total < PARALLEL_FROM:
        for t in tasks:
            done(t[0], t[1], load_chunk(*args(t)))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [(t, pool.submit(load_chunk, *args(t))) for t in tasks]
            try:
                for t, fut in futures:
                    done(t[0], t[1], fut.result())
            except BaseException:
                for _, fut in futures:
                    fut.cancel()
                raise

    out = []
    for tile in tiles:
        parts = [(cid, c) for name, cid, c in results if name == tile.name]
        xs = [c.values for _, c in parts if len(c.values)]
        ys = [np.full(len(c.values), cid, np.int64) for cid, c in parts if len(c.values)]
        steps = MONTHS_PER_SEASON if temporal == "monthly" else len(tile.dates)
        x = np.concatenate(xs) if xs else np.zeros((0, steps, 9), np.float32)
        y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
        stats = {"files": sum(c.n_read + len(c.bad) for _, c in parts),
                 "samples": int(len(y)),
                 "dropped_incomplete": sum(c.dropped_incomplete for _, c in parts),
                 "dropped_without_usable_observation": sum(c.dropped_empty for _, c in parts),
                 "skipped_files": [f"{m}: {r}" for _, c in parts for m, r in c.bad]}
        out.append(TileArrays(tile.name, x, y, stats))
    return out
