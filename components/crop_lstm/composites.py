"""The inputs of tile_classifier: the monthly composites of ``--mc_dir`` (checked against the time
steps and bands the model was trained on), the crop mask and the model file of ``--input_dir``."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from components.common.errors import ServiceError
from components.common.readers import open_raster
from components.timesen2crop.legend import normalise_band

from .h5io import ModelInfo
from .units import Conversion, composite_conversion, model_factor

log = logging.getLogger(__name__)

MONTH_RE = re.compile(r"(?<!\d)((?:19|20)\d{2})-?(0[1-9]|1[0-2])(?!\d)")
STEP_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
TILE_RE = re.compile(r"(?<![A-Z0-9])T?(\d{2}[C-X][A-Z]{2})(?![A-Z0-9])")
RASTER_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class Composite:
    path: Path
    month: str  # YYYY-MM
    bands: tuple[int, ...] = ()  # 1-based indexes of the model's features
    conversion: Conversion = Conversion()  # from the values stored to the model's unit (default: unchanged)


@dataclass
class GridInfo:
    crs: object
    transform: object
    width: int
    height: int

    @classmethod
    def of(cls, ds) -> "GridInfo":
        return cls(ds.crs, ds.transform, ds.width, ds.height)

    def size(self) -> str:
        return f"{self.width}x{self.height} px"


CROP_MAP_RE = re.compile(r"(^|_)crop_map_\d{4}-\d{2}_\d{4}-\d{2}\.tif$")


def _rasters(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES
                  and not p.name.startswith("."))


def find_model_and_mask(folder: Path) -> tuple[Path, Path | None]:
    """The one ``.h5`` model and the optional crop-mask GeoTIFF of ``--input_dir``."""
    if not folder.is_dir():
        raise ServiceError(f"input_dir must be a folder holding the .h5 model (and the mask GeoTIFF): {folder}")
    models = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".h5", ".hdf5") and not p.name.startswith("."))
    if not models:
        raise ServiceError(f"no .h5 model in {folder}: put the file train_lstm wrote there")
    if len(models) > 1:
        raise ServiceError(f"several .h5 models in {folder} ({', '.join(p.name for p in models)}): keep one")
    # a crop map this service wrote into the folder before is no mask (a rerun would mask all out)
    masks = [p for p in _rasters(folder) if not CROP_MAP_RE.search(p.name)]
    if len(masks) > 1:
        raise ServiceError(f"several GeoTIFFs in {folder} ({', '.join(p.name for p in masks)}): keep one crop mask")
    return models[0], (masks[0] if masks else None)


def _month_of(path: Path, ds) -> str | None:
    tag = ds.tags().get("COMPOSITE_MONTH")
    if tag and re.fullmatch(r"\d{4}-\d{2}", tag.strip()):
        return tag.strip()
    match = MONTH_RE.search(path.name)
    return f"{match[1]}-{match[2]}" if match else None


def _add_months(month: str, k: int) -> str:
    y, m = int(month[:4]), int(month[5:])
    m0 = m - 1 + k
    return f"{y + m0 // 12:04d}-{m0 % 12 + 1:02d}"


def _feature_bands(ds, path: Path, info: ModelInfo) -> tuple[tuple[int, ...], bool]:
    """(1-based indexes of the model's bands in ``ds``, whether they were taken by position). Bands
    named in the descriptions are found by name, in any order; by position only when no band carries
    a name (taking named bands by position would let other bands pass for the model's)."""
    names = [normalise_band(d) if d else "" for d in ds.descriptions]
    wanted = [normalise_band(b) for b in info.band_names]
    twice = next((b for i, b in enumerate(wanted) if b in wanted[:i]), None)
    if twice is not None:  # each feature would be read from that one band
        raise ServiceError(f"the model's band_names list {twice} twice ({', '.join(info.band_names)}): each input "
                           "band must be named once")
    listed = ", ".join(n or "?" for n in names)
    if any(names):
        missing = [b for b, w in zip(info.band_names, wanted) if w not in names]
        if missing:
            raise ServiceError(f"{path.name} has no band named {', '.join(missing)} (its {ds.count} band "
                               f"descriptions: {listed}): the model needs {', '.join(info.band_names)}, found by "
                               "name in any order (by position only when no band carries a name)")
        doubled = next((b for b, w in zip(info.band_names, wanted) if names.count(w) > 1), None)
        if doubled is not None:
            raise ServiceError(f"{path.name} names two bands {doubled} ({listed}): each band the model needs must "
                               "be named once")
        return tuple(names.index(w) + 1 for w in wanted), False
    if ds.count == len(wanted):
        return tuple(range(1, ds.count + 1)), True
    raise ServiceError(f"{path.name} has {ds.count} bands ({listed}): the model needs "
                       f"{', '.join(info.band_names)}, named in the band descriptions or as exactly "
                       f"{len(wanted)} unnamed bands in that order")


def _log_conversions(composites: list[Composite]) -> None:
    """What was decided about the composites' units: one line per way of converting, not one per file."""
    groups: dict[str, list[Composite]] = {}
    for c in composites:
        groups.setdefault(c.conversion.summary(), []).append(c)
    for how, comps in groups.items():
        more = f" (and {len(comps) - 1} more composites)" if len(comps) > 1 else ""
        log.info("%s%s: %s", comps[0].conversion.note, more, how)


def find_composites(mc_dir: Path, info: ModelInfo, model_name: str = "the model"
                    ) -> tuple[list[Composite], GridInfo, str | None]:
    """The composites in the order of the model's time steps, their grid and tile code; each with the
    indexes of the model's bands and how its values are brought to the model's unit (:mod:`.units`)."""
    if not mc_dir.is_dir():
        raise ServiceError(f"mc_dir is not a folder: {mc_dir}")
    factor = model_factor(info.input_unit, model_name)
    found: dict[str, Composite] = {}
    by_position: list[str] = []
    grid = first = None
    tile = None
    for path in _rasters(mc_dir):
        with open_raster(path, f"{path.name} in mc_dir") as ds:
            month = _month_of(path, ds)
            if month is None:
                raise ServiceError(f"{path.name} in mc_dir: no month in its name (YYYY-MM) or COMPOSITE_MONTH "
                                   "tag: name monthly composites as monthlycomposite does")
            if month in found:
                raise ServiceError(f"two composites for {month} in mc_dir: {found[month].path.name} and {path.name}")
            g = GridInfo.of(ds)
            bands, positional = _feature_bands(ds, path, info)
            if positional:
                by_position.append(path.name)
            conversion = composite_conversion(ds, list(bands), list(info.band_names), f"{path.name} in mc_dir",
                                              factor)
            tile = tile or ds.tags().get("TILE") or None
        if grid is None:
            grid, first = g, path.name
        elif (g.width, g.height) != (grid.width, grid.height) or g.crs != grid.crs or \
                not g.transform.almost_equals(grid.transform):
            raise ServiceError(f"{path.name} ({g.size()}, {g.crs}) is not on the grid of {first} ({grid.size()}, "
                               f"{grid.crs}): all composites must share one grid")
        found[month] = Composite(path, month, bands, conversion)
        if tile is None:
            m = TILE_RE.search(path.stem.upper())
            tile = m[1] if m else None
    if not found:
        raise ServiceError(f"no monthly composite (.tif) in mc_dir {mc_dir}")
    if by_position:
        log.info("%s%s: no band carries a name (band description): the %d bands taken by position as the model's "
                 "%s", by_position[0], f" and {len(by_position) - 1} more composites" if len(by_position) > 1 else "",
                 len(info.band_names), ", ".join(info.band_names))
    steps = info.timesteps
    n = len(steps)
    months = sorted(found)
    if all(STEP_MONTH_RE.match(s) for s in steps):
        first_moy = int(steps[0][5:])
        e = months[0]
        start_year = int(e[:4]) if int(e[5:]) >= first_moy else int(e[:4]) - 1
        expected = [_add_months(f"{start_year:04d}-{first_moy:02d}", k) for k in range(n)]
        model_moy = [s[5:] for s in steps]
        if [m[5:] for m in expected] != model_moy:
            raise ServiceError(f"the model's time steps ({steps[0]} .. {steps[-1]}) are not {n} consecutive months")
    else:
        if len(months) != n:
            raise ServiceError(f"mc_dir holds {len(months)} composites; the model takes {n} time steps")
        expected = months
    missing = [m for m in expected if m not in found]
    if missing:
        raise ServiceError(f"missing monthly composite(s) {', '.join(missing)} in mc_dir: the model needs the {n} "
                           f"months {expected[0]} to {expected[-1]}")
    extra = [m for m in months if m not in expected]
    if extra:
        log.warning("composites outside %s..%s ignored: %s", expected[0], expected[-1], ", ".join(extra))
    chosen = [found[m] for m in expected]
    _log_conversions(chosen)
    return chosen, grid, tile


def check_mask(mask: Path, grid: GridInfo) -> None:
    with open_raster(mask, f"mask {mask.name}") as ds:
        g = GridInfo.of(ds)
    if (g.width, g.height) != (grid.width, grid.height):
        raise ServiceError(f"mask {mask.name} is {g.size()} but the composites are {grid.size()}: the mask must cover "
                           "the composites' grid pixel for pixel")
    if g.crs and (g.crs != grid.crs or not g.transform.almost_equals(grid.transform)):
        raise ServiceError(f"mask {mask.name} has the composites' size but another georeferencing ({g.crs}, origin "
                           f"{g.transform.c:g},{g.transform.f:g}; composites {grid.crs}, origin {grid.transform.c:g},"
                           f"{grid.transform.f:g})")
