"""monthlycomposite: a Sentinel-2 BOA time series and its LAI images to 12 monthly median
composites of the agronomic year (seed D5.2 section 3.2.3).

For each month from September of ``season_start`` to August of the next year, and block by block
(``block_size`` rows and columns, so memory does not grow with the tile), the REFBOA samples of the
month's acquisitions whose LAI is 0 (cloudy, as the seed's pre-processing marks them) are set to 0
and left out of the per-pixel, per-band median of the others. Each composite is a uint16 GeoTIFF of
the nine TimeSen2Crop bands, surface reflectance x 10000 (scale 1e-4), 0 where no clear sample.

REFBOA images are expected on one 10 m grid with their LAI images; the bands B2 B3 B4 B5 B6 B7 B8A
B11 B12 are found by band description (S2-preprocess writes them) or, without any description, taken
as the nine bands in that order; descriptions that do not name them all stop the run (by position,
other bands would pass for them). Band scale/offset tags are honoured: DNs of processing baseline
04.00 and later (offset -0.1, i.e. DN - 1000) are brought to plain reflectance x 10000, the unit of
the TimeSen2Crop samples the classifier is trained on. Without a scale tag the data type and values
decide (``components.common.reflectance``): integers far above 1 are DN x 10000, floats within about
-0.5..2 reflectance (multiplied by 10000), anything that fits neither stops the run. An image
tagged as top-of-atmosphere reflectance (``QUANTITY=TOA reflectance``, what S2-preprocess writes for
an L1C product) stops the run: the composites are surface reflectance (L2A).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from components import __version__
from components.common import outputs, stac, storage
from components.common.contract import uninterrupted
from components.common.cpus import usable_cpus
from components.common.errors import ServiceError
from components.common.logs import Progress, Steps
from components.common.readers import open_raster
from components.common.reflectance import data_mask, reflectance_units
from components.common.sentinel2 import BAND_FWHM_NM
from components.timesen2crop.legend import BANDS, normalise_band, season_months

from .inventory import Acquisition, pair
from .kernels import NODATA, composite_block
from .params import MonthlyCompositeParams

log = logging.getLogger(__name__)

SERVICE = "monthlycomposite"
SCALE = 1e-4  # output DN -> reflectance
GEOTIFF = "image/tiff; application=geotiff"  # tiled, without overviews: not a COG
CREATION = {"driver": "GTiff", "dtype": "uint16", "nodata": NODATA, "tiled": True, "blockxsize": 512,
            "blockysize": 512, "compress": "deflate", "predictor": 2, "BIGTIFF": "IF_SAFER", "interleave": "band"}


@dataclass
class CompositeResult:
    """What a run wrote: the 12 composites (the product) and their sidecars."""

    composites: list[str]
    stac: str
    quicklook: str
    run_record: str
    metrics: dict = field(default_factory=dict)


@dataclass
class Grid:
    crs: object
    transform: object
    width: int
    height: int

    def same(self, other: "Grid") -> bool:
        return (self.crs == other.crs and self.width == other.width and self.height == other.height
                and self.transform.almost_equals(other.transform))

    def text(self) -> str:
        return f"{self.width}x{self.height} px, {self.crs}, origin {self.transform.c:g},{self.transform.f:g}, " \
               f"pixel {self.transform.a:g} m"


@dataclass
class BoaBands:
    indexes: list[int]  # 1-based band indexes of B2..B12
    scale: np.ndarray  # per band, DN -> reflectance x 10000: value = DN * scale + offset
    offset: np.ndarray
    nodata: float | None
    unit: str = "tags"  # how the values were read: "tags", "dn" (DN x 10000) or "reflectance" (no scale tag)
    note: str = ""


def run(input_dir: str, params: MonthlyCompositeParams, output_dir: str) -> CompositeResult:
    with storage.output_folder(output_dir) as local_out:
        return _run(input_dir, params, output_dir, local_out)


def _grid(ds) -> Grid:
    return Grid(ds.crs, ds.transform, ds.width, ds.height)


_TOA = re.compile(r"\bTOA\b|top[ -]of[ -](the[ -])?atmosphere", re.IGNORECASE)


def _refuse_toa(ds, name: str) -> None:
    """A REFBOA image tagged as top-of-atmosphere reflectance (S2-preprocess writes ``QUANTITY=TOA
    reflectance`` for an L1C product; without a QUANTITY tag, a ``PRODUCT`` tag naming an L1C
    product) is refused: the composites are surface reflectance, the unit of TimeSen2Crop."""
    tags = ds.tags()
    quantity = " ".join(str(tags.get("QUANTITY", "")).split())
    product = str(tags.get("PRODUCT", "")).strip()
    if _TOA.search(quantity):
        why = f"tagged QUANTITY={quantity}"
    elif not quantity and "MSIL1C" in product.upper():
        why = f"tagged PRODUCT={product} (an L1C product)"
    else:
        return
    raise ServiceError(f"REFBOA/{name}: {why}: top-of-atmosphere reflectance, but monthlycomposite composites "
                       "surface reflectance (BOA, Sentinel-2 L2A): run S2-preprocess on the L2A product of that "
                       "acquisition, or correct the L1C product with Sen2Cor first")


def boa_bands(ds, name: str) -> BoaBands:
    """Where the nine TimeSen2Crop bands are in a REFBOA image, and how to bring them to
    reflectance x 10000. An image tagged as top-of-atmosphere reflectance is refused."""
    _refuse_toa(ds, name)
    names = [normalise_band(d) if d else "" for d in ds.descriptions]
    if all(b in names for b in BANDS):
        indexes = [names.index(b) + 1 for b in BANDS]
    elif any(names):
        # descriptions that name other bands: taking the bands by position would mix them up
        missing = [b for b in BANDS if b not in names]
        raise ServiceError(f"REFBOA/{name}: its band descriptions ({', '.join(n or '?' for n in names)}) lack "
                           f"{', '.join(missing)}: need the bands {', '.join(BANDS)} named in the descriptions, "
                           "or exactly 9 bands in that order without descriptions")
    elif ds.count == len(BANDS):
        indexes = list(range(1, len(BANDS) + 1))
    else:
        raise ServiceError(f"REFBOA/{name} has {ds.count} bands ({', '.join(n or '?' for n in names)}): need the "
                           f"bands {', '.join(BANDS)}, named in the band descriptions or as exactly 9 bands in "
                           "that order")
    nodata = ds.nodatavals[indexes[0] - 1]
    # scale tags, else DN x 10000 (integers, values far above 1) or reflectance (floats within about
    # -0.5..2): components.common.reflectance, the rule S2-CD applies to its stacks too
    units = reflectance_units(ds, indexes, list(BANDS), f"REFBOA/{name}", nodata)
    scale, offset = units.to_dn()
    return BoaBands(indexes, scale.astype(np.float32), offset.astype(np.float32), nodata, units.unit, units.note)


def _check_inputs(acqs: list[Acquisition]) -> tuple[Grid, dict[Path, BoaBands]]:
    grid = None
    first = None
    bands: dict[Path, BoaBands] = {}
    for a in acqs:
        for img, folder in ((a.boa, "REFBOA"), (a.lai, "LAI")):
            with open_raster(img.path, f"{folder}/{img.path.name}") as ds:
                g = _grid(ds)
                if folder == "REFBOA":
                    bands[img.path] = boa_bands(ds, img.path.name)
                elif ds.count < 1:
                    raise ServiceError(f"LAI/{img.path.name} has no band")
            if grid is None:
                grid, first = g, f"{folder}/{img.path.name}"
            elif not g.same(grid):
                raise ServiceError(f"{folder}/{img.path.name} is on another grid ({g.text()}) than {first} "
                                   f"({grid.text()}): all REFBOA and LAI images must share one grid")
    for unit in ("dn", "reflectance"):  # one line per unit read without a scale tag, not one per image
        untagged = [b for b in bands.values() if b.unit == unit]
        if untagged:
            log.info("%s%s", untagged[0].note, f" (and {len(untagged) - 1} more REFBOA images)" if len(untagged) > 1
                     else "")
    return grid, bands


def _windows(grid: Grid, size: int):
    for r in range(0, grid.height, size):
        for c in range(0, grid.width, size):
            yield Window(c, r, min(size, grid.width - c), min(size, grid.height - r))


def _composite_rows(pool: ThreadPoolExecutor, workers: int, boa: np.ndarray, lai: np.ndarray, boa_nd: np.ndarray,
                    lai_nd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """composite_block over bands of rows in parallel threads (NumPy's sort and element-wise passes
    release the GIL), joined back into the block."""
    rows = boa.shape[1]
    step = -(-rows // workers)
    with uninterrupted():  # map starts the workers: all registered before a stop takes effect
        results = pool.map(lambda r: composite_block(boa[:, r:r + step], lai[r:r + step], boa_nd[r:r + step],
                                                     lai_nd[r:r + step]), range(0, rows, step))
    parts = list(results)
    return np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=0)


def _composite_month(acqs: list[Acquisition], bands: dict[Path, BoaBands], grid: Grid, dst: Path, month: str,
                     params: MonthlyCompositeParams, progress: Progress, meta: dict) -> dict:
    profile = dict(CREATION, width=grid.width, height=grid.height, count=len(BANDS), crs=grid.crs,
                   transform=grid.transform)
    clear_px = 0
    with contextlib.ExitStack() as stack, rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS", GDAL_CACHEMAX=256):
        workers = usable_cpus()
        pool = stack.enter_context(ThreadPoolExecutor(workers, thread_name_prefix="median"))
        # reads of damaged inputs end in one line naming the file (components.common.readers)
        boas = [stack.enter_context(open_raster(a.boa.path, f"REFBOA/{a.boa.path.name}")) for a in acqs]
        lais = [stack.enter_context(open_raster(a.lai.path, f"LAI/{a.lai.path.name}")) for a in acqs]
        out = stack.enter_context(rasterio.open(dst, "w", **profile))
        for win in _windows(grid, params.block_size):
            h, w = int(win.height), int(win.width)
            if not acqs:
                out.write(np.zeros((len(BANDS), h, w), np.uint16), window=win)
                progress.advance()
                continue
            n = len(acqs)
            boa = np.empty((len(BANDS), h, w, n), np.float32)
            lai = np.empty((h, w, n), np.float32)
            boa_nd = np.zeros((h, w, n), bool)
            lai_nd = np.zeros((h, w, n), bool)
            for i, (a, bds, lds) in enumerate(zip(acqs, boas, lais)):
                b = bands[a.boa.path]
                dn = bds.read(b.indexes, window=win)
                boa_nd[..., i] = ~data_mask(dn, b.nodata).all(axis=0)  # NaN is never data
                boa[..., i] = dn * b.scale[:, None, None] + b.offset[:, None, None]
                lv = lds.read(1, window=win, out_dtype="float32")
                lai[..., i] = lv
                if lds.nodata is not None and not math.isnan(lds.nodata):
                    lai_nd[..., i] = lv == lds.nodata
            comp, count = _composite_rows(pool, workers, boa, lai, boa_nd, lai_nd)
            clear_px += int((count > 0).sum())
            out.write(comp, window=win)
            progress.advance()
        outputs.describe_dataset(out, _bands(), fwhm_um={b: w / 1000.0 for b, w in BAND_FWHM_NM.items()})
        out.scales, out.offsets = [SCALE] * len(BANDS), [0.0] * len(BANDS)
        out.update_tags(COMPOSITE_MONTH=month, ACQUISITIONS=len(acqs), QUANTITY="BOA reflectance x 10000",
                        METHOD="median of clear samples (LAI != 0)", **meta)
    return {"month": month, "acquisitions": len(acqs),
            "clear_percent": round(100.0 * clear_px / (grid.width * grid.height), 3)}


def _run(input_dir: str, params: MonthlyCompositeParams, output_dir: str, local_out: Path | None) -> CompositeResult:
    started = dt.datetime.now(dt.timezone.utc)
    steps = Steps(log)
    months = season_months(params.season_start)
    with outputs.work_folder(local_out, ".mcomp-") as work:
        with steps.step("fetch input"):
            local_input = storage.fetch_input(input_dir, work / "input")
        if not local_input.is_dir():
            raise ServiceError(f"input_dir must be a folder holding REFBOA/ and LAI/: {input_dir}")
        with steps.step("inventory"):
            acqs, tile = pair(local_input, params.tile)
            in_season = [a for a in acqs if a.month in months]
            if not in_season:
                raise ServiceError(f"no REFBOA image in the agronomic year {months[0]} to {months[-1]} "
                                   f"(images from {acqs[0].date} to {acqs[-1].date}): check --season_start")
            if len(in_season) < len(acqs):
                log.info("%d acquisitions outside %s..%s ignored", len(acqs) - len(in_season), months[0], months[-1])
            by_month = {m: [a for a in in_season if a.month == m] for m in months}
            empty = [m for m, a in by_month.items() if not a]
            if empty and params.empty_months == "error":
                raise ServiceError(f"no acquisition in {', '.join(empty)} (agronomic year {months[0]} to "
                                   f"{months[-1]}): each of the 12 monthly composites needs at least one REFBOA "
                                   "image; pass --empty_months zero to write such months as no data")
            grid, bands = _check_inputs(in_season)
        log.info("tile %s, %d acquisitions in the season, grid %s", tile or "(unnamed)", len(in_season), grid.text())
        stage = work / "stage"
        stage.mkdir()
        prefix = f"{tile}_" if tile else ""
        n_blocks = math.ceil(grid.height / params.block_size) * math.ceil(grid.width / params.block_size)
        progress = Progress(n_blocks * len(months), "composites", log)
        per_month = []
        paths = []
        meta = {"TILE": tile or "", "SEASON": f"{months[0]}/{months[-1]}"}
        with steps.step("monthly medians"):
            for m in months:
                dst = stage / f"{prefix}MC_{m}.tif"
                per_month.append(_composite_month(by_month[m], bands, grid, dst, m, params, progress, meta))
                paths.append(dst)
                log.info("%s: %d acquisitions, clear %.1f %%", m, per_month[-1]["acquisitions"],
                         per_month[-1]["clear_percent"])
        stem = f"{prefix}MC_{months[0]}_{months[-1]}"
        with steps.step("quicklook and STAC item"):
            best = max(range(len(months)), key=lambda i: per_month[i]["clear_percent"])
            ql = outputs.quicklook(paths[best], stage / f"{stem}_quicklook.png",
                                   tuple(BANDS.index(b) + 1 for b in ("B4", "B3", "B2")))
            item = _stac(stem, paths, per_month, params, tile, ql, grid, input_dir, output_dir)
        metrics = {"acquisitions": len(in_season), "empty_months": len(empty),
                   "clear_percent_mean": round(float(np.mean([p["clear_percent"] for p in per_month])), 3)}
        if metrics["clear_percent_mean"] == 0:  # every pixel of every month cloudy or no data, as S2-preprocess warns
            log.warning("no clear pixel in any month: the 12 composites hold no data (every acquisition's LAI "
                        "marks its pixels cloudy or invalid)")
        record = outputs.run_record(
            SERVICE, __version__, params.as_dict(),
            [{"uri": input_dir, "tile": tile, "acquisitions": [
                {"date": str(a.date), "refboa": a.boa.path.name, "lai": a.lai.path.name} for a in in_season]}],
            {"composites": [p.name for p in paths], "stac": f"{stem}.json", "quicklook": ql.name,
             "months": per_month, "metrics": metrics}, steps.timings, started)
        outputs.write_json(stage / "run.json", record)
        stac.write_item(item, stage / f"{stem}.json")  # last: it carries the size and checksum of run.json
        size_mb = sum(p.stat().st_size for p in paths) / 1e6
        with steps.step("publish"):
            published = storage.publish(stage, output_dir, move=True)
    by_name = {Path(p).name: p for p in published}
    log.info("product %s: 12 composites %dx%d px, %d acquisitions, clear %.1f %% on average, %.1f MB, %.1f s",
             by_name[paths[0].name], grid.width, grid.height, len(in_season), metrics["clear_percent_mean"],
             size_mb, steps.elapsed)
    return CompositeResult([by_name[p.name] for p in paths], by_name[f"{stem}.json"], by_name[ql.name],
                           by_name["run.json"], metrics)


def _bands() -> list[stac.Band]:
    """The composites' bands, as the STAC item and GDAL's band fields give them."""
    return [stac.s2_band(b, f"Sentinel-2 {b}, monthly median", NODATA, SCALE, 0.0) for b in BANDS]


def _stac(stem: str, paths: list[Path], per_month: list[dict], params: MonthlyCompositeParams, tile: str | None,
          ql: Path, grid: Grid, input_dir: str, output_dir: str):
    """One item for the 12 composites, an asset per month; its gsd is the grid's pixel size in
    metres (none on a grid in degrees)."""
    start = dt.datetime(params.season_start, 9, 1, tzinfo=dt.timezone.utc)
    end = dt.datetime(params.season_start + 1, 9, 1, tzinfo=dt.timezone.utc) - dt.timedelta(seconds=1)
    bands = _bands()
    first, *others = zip(paths, per_month)
    item = stac.raster_item(stem, first[0], first[0].name, start, bands, start=start, end=end,
                            properties={**({} if grid.crs.is_geographic else {"gsd": abs(grid.transform.a)}),
                                        "composite_method": "median of clear samples (LAI != 0)",
                                        "composite_acquisitions": {p["month"]: p["acquisitions"] for p in per_month}},
                            asset_key=first[1]["month"], media_type=GEOTIFF)
    item.assets[first[1]["month"]].title = f"median composite {first[1]['month']}"
    for path, month in others:
        stac.add_raster_asset(item, month["month"], path.name, bands, "uint16", f"median composite {month['month']}",
                              GEOTIFF)
    stac.add_sentinel2(item, tile=tile)
    stac.add_processing(item, lineage=f"{SERVICE}: monthly medians of the clear REFBOA samples")
    stac.add_sidecars(item, ql.name)
    stac.add_links(item, stac.location(output_dir, f"{stem}.json"), [(input_dir, "REFBOA/LAI time series")])
    return item
