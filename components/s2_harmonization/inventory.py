"""The input time series: REFBOA and LAI GeoTIFFs found by name, paired by acquisition.

File-name convention: the first ``YYYYMMDD`` group of a name (optionally followed by
``THHMMSS``) is the acquisition date and time; a tile code such as ``T33UVP`` or ``33UVP``
between separators names the tile. ``S2A_MSIL2A_20180105T101401_N0206_R022_T33UVP_..._10m.tif``
(as S2-preprocess writes) and ``T33UVP_20180105T101401_REFBOA.tif`` both work. A REFBOA image is
paired with the LAI image of the same date and time (or of the same date, when each side has only
one image that day).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from components.common.errors import ServiceError

log = logging.getLogger(__name__)

DATE_RE = re.compile(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})(?:T(\d{6}))?(?!\d)")
TILE_RE = re.compile(r"(?<![A-Z0-9])T?(\d{2}[C-X][A-Z]{2})(?![A-Z0-9])")
SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class Image:
    path: Path
    date: dt.date
    time: str | None
    tile: str | None

    @property
    def month(self) -> str:
        return f"{self.date:%Y-%m}"


@dataclass(frozen=True)
class Acquisition:
    boa: Image
    lai: Image

    @property
    def date(self) -> dt.date:
        return self.boa.date

    @property
    def month(self) -> str:
        return self.boa.month


def parse_name(path: Path, folder: str) -> Image:
    match = DATE_RE.search(path.name)
    if match is None:
        raise ServiceError(f"{folder}/{path.name}: no acquisition date in the file name (expected YYYYMMDD, "
                           "e.g. T33UVP_20180105T101401_REFBOA.tif)")
    try:
        date = dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise ServiceError(f"{folder}/{path.name}: {match[0]!r} is not a valid date") from None
    tile = TILE_RE.search(path.stem.upper())
    return Image(path, date, match[4], tile[1] if tile else None)


def scan(folder: Path) -> list[Image]:
    if not folder.is_dir():
        raise ServiceError(f"input folder has no {folder.name}/ sub-folder ({folder})")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and not p.name.startswith("."))
    if not files:
        raise ServiceError(f"{folder.name}/ holds no GeoTIFF (.tif) in {folder.parent}")
    return [parse_name(p, folder.name) for p in files]


def _for_tile(images: list[Image], tile: str | None, folder: str) -> tuple[list[Image], str | None]:
    tiles = sorted({i.tile for i in images if i.tile})
    if tile is None:
        if len(tiles) > 1:
            raise ServiceError(f"{folder}/ holds images of several tiles ({', '.join(tiles)}): choose one with --tile")
        return images, (tiles[0] if tiles else None)
    kept = [i for i in images if i.tile in (None, tile)]
    if not kept:
        raise ServiceError(f"{folder}/ holds no image of tile {tile} (tiles in the names: {', '.join(tiles)})")
    if len(kept) < len(images):
        log.info("%s: %d images of other tiles ignored", folder, len(images) - len(kept))
    return kept, tile


def pair(input_dir: Path, tile: str | None) -> tuple[list[Acquisition], str | None]:
    """Every REFBOA image with its LAI image; the tile code (None if the names carry none)."""
    boas, tile_b = _for_tile(scan(input_dir / "REFBOA"), tile, "REFBOA")
    lais, _ = _for_tile(scan(input_dir / "LAI"), tile_b, "LAI")
    by_key: dict[tuple, list[Image]] = {}
    by_date: dict[dt.date, list[Image]] = {}
    for img in lais:
        by_key.setdefault((img.date, img.time), []).append(img)
        by_date.setdefault(img.date, []).append(img)
    boa_by_date: dict[dt.date, list[Image]] = {}
    for img in boas:
        boa_by_date.setdefault(img.date, []).append(img)
    out, used = [], set()
    for img in boas:
        same = by_key.get((img.date, img.time), []) if img.time else []
        if len(same) != 1 and len(by_date.get(img.date, [])) == 1 and len(boa_by_date[img.date]) == 1:
            same = by_date[img.date]
        if len(same) != 1:
            what = "no" if not same else "more than one"
            raise ServiceError(f"{what} LAI image for REFBOA/{img.path.name} (acquired {img.date}"
                               f"{' ' + img.time if img.time else ''}): put its LAI in LAI/ with the same date "
                               "in the file name")
        used.add(same[0].path)
        out.append(Acquisition(img, same[0]))
    unused = [i.path.name for i in lais if i.path not in used]
    if unused:
        log.warning("LAI images without REFBOA image ignored: %s",
                    ", ".join(unused[:5]) + (" ..." if len(unused) > 5 else ""))
    out.sort(key=lambda a: (a.date, a.boa.time or "", a.boa.path.name))
    return out, tile_b
