"""S2-preprocess: a Sentinel-2 L2A (or L1C) product to analysis-ready bands on one grid.

The seed's SNAP graph (Read -> S2Resampling -> Land/Sea-Mask -> BandMaths cloud mask -> Subset
-> Reproject -> Write) becomes one pass over strips of the output grid: each band is read from
its native-resolution JP2 and resampled to the output resolution, then cloud, land/sea and AoI
masks set NoData, and the strip is written. Memory is bounded by the strip size, not the tile.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import shutil
import subprocess
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS

from components import __version__
from components.common import outputs, stac, storage
from components.common.aoi import AoI, aoi_mask, load_aoi, require_overlap
from components.common.contract import uninterrupted
from components.common.errors import ServiceError
from components.common.landmask import LandSeaMask
from components.common.logs import Progress, Steps
from components.common.output_grid import check_resolution, parse_crs, pixel_size, warped_grid
from components.common.readers import ZIP_ERRORS, zip_failure
from components.common.sentinel2 import BAND_FWHM_NM, NATIVE_RESOLUTION, NODATA_DN, Grid, S2Product, open_product

from .cloudmask import CloudMask
from .params import S2PreprocessParams
from .sampling import GDAL_UPSAMPLING, SourceRaster, Strip

log = logging.getLogger(__name__)

SERVICE = "S2-preprocess"
STRIP_METRES = 10240  # strips of 1024 rows at 10 m: one row of JP2 tiles per read
STRIP_PIXELS = 1 << 24  # 16.8 Mpx: a strip of a whole tile at 10 m is 11.2 Mpx
SEN2COR = "L2A_Process"
EPS = 1e-6  # in pixels
FWHM_UM = {b: w / 1000.0 for b, w in BAND_FWHM_NM.items()}


@dataclass
class S2Result:
    """What a run wrote. ``product`` is the main product; the rest are its sidecars."""

    product: str
    stac: str
    quicklook: str
    run_record: str
    metrics: dict = field(default_factory=dict)


def run(input_uri: str, params: S2PreprocessParams, outdir: str) -> S2Result:
    """Pre-process one product into ``outdir`` (a folder or an ``s3://`` prefix)."""
    aoi = load_aoi(params.aoi) if params.aoi else None
    driver, ext = outputs.resolve_format(params.output_format)
    target_crs = _target_crs(params.projection)
    with storage.output_folder(outdir) as local_out:
        return _run(input_uri, params, outdir, local_out, aoi, driver, ext, target_crs)


def _run(input_uri: str, params: S2PreprocessParams, outdir: str, local_out: Path | None, aoi: AoI | None,
         driver: str, ext: str, target_crs: CRS | None) -> S2Result:
    started = dt.datetime.now(dt.timezone.utc)
    steps = Steps(log)
    # Work next to the destination so the final moves are renames, not copies.
    with outputs.work_folder(local_out, ".s2p-") as work:
        with steps.step("fetch input"):
            local_input = storage.fetch_input(input_uri, work / "input")
        with steps.step("open product"):
            product = open_product(local_input)
            product = _ensure_level(product, params, work)
        log.info("%s: %s, baseline %s, tile %s", product.name, product.level, product.baseline, product.tile)
        grid = _output_grid(product, params.resolution, aoi)
        reproject = target_crs is not None and CRS.from_user_input(product.crs) != target_crs
        out_cols, out_rows = grid.cols, grid.rows
        if reproject:  # a CRS that cannot hold the tile fails here, before the bands are read
            _, out_cols, out_rows = _reprojected_grid(grid.crs, grid.bounds, grid.cols, grid.rows, target_crs,
                                                      params.resolution, product.name, params.projection)
        # uint16 bands in the assembled raster, the product and the reprojected raster if any (the
        # larger grid counted for all); a byte for the mask reasons of the quicklook
        big_rows, big_cols = max((grid.rows, grid.cols), (out_rows, out_cols), key=lambda g: g[0] * g[1])
        outputs.check_output_size(big_rows, big_cols, (3 if reproject else 2) * len(params.bands) * 2 + 1, work,
                                  parameter="resolution", value=params.resolution)
        stage = work / "stage"
        stage.mkdir()
        stem = f"{product.name}_{params.resolution:g}m"
        assembled = work / "assembled.tif"
        with outputs.writing(assembled):
            metrics = _assemble(product, params, grid, aoi, assembled, steps)
        outputs.check_valid(metrics, params.min_valid_percent, product.name)
        if reproject:
            with steps.step(f"reproject to {target_crs.to_string()}"), outputs.writing(work / "reprojected.tif"):
                assembled = _reproject(assembled, target_crs, params, aoi, work / "reprojected.tif")
        main = stage / f"{stem}{ext}"
        with steps.step(f"write {driver}"):
            outputs.write_product(assembled, main, driver, bands=_bands(product, params), fwhm_um=FWHM_UM)
        with steps.step("quicklook and STAC item"):
            rgb = _rgb_indexes(params.bands)
            # the COG's overviews make the quicklook read cheap; the reasons tell cloud from NoData
            ql = outputs.quicklook(main if driver == "COG" else assembled, stage / f"{stem}_quicklook.png", rgb,
                                   reasons=_reasons_path(work / "assembled.tif"))
            item = _stac(product, params, main, assembled, ql, metrics, input_uri, outdir)
        record = outputs.run_record(
            SERVICE, __version__, {**params.as_dict(), "projection_resolved": _crs_text(assembled)},
            [{"uri": input_uri, "id": product.name, "level": product.level, "baseline": product.baseline}],
            {"product": main.name, "stac": f"{stem}.json", "quicklook": ql.name, "metrics": metrics},
            steps.timings, started)
        outputs.write_json(stage / "run.json", record)
        stac.write_item(item, stage / f"{stem}.json")
        size_mb = main.stat().st_size / 1e6
        with steps.step("publish"):
            published = storage.publish(stage, outdir, move=True)
    by_name = {Path(p).name: p for p in published}
    log.info("product %s: %dx%d px, %d bands, valid %.1f %%, cloud %.1f %%, %.1f MB, %.1f s",
             by_name[main.name], out_cols, out_rows, len(params.bands), metrics["valid_percent"],
             metrics["cloud_percent"], size_mb, steps.elapsed)
    return S2Result(by_name[main.name], by_name[f"{stem}.json"], by_name[ql.name], by_name["run.json"], metrics)


def _target_crs(projection: str) -> CRS | None:
    if projection.strip().lower().replace(" ", "") in ("utm(auto)", "utm", "auto", ""):
        return None
    return parse_crs(projection, "UTM(Auto), an EPSG code such as EPSG:4326, or WKT")


def _reprojected_grid(src_crs, bounds: tuple, cols: int, rows: int, crs: CRS, resolution: float, name: str,
                      projection: str):
    """(transform, width, height) of a raster of ``bounds`` in ``src_crs`` warped to ``crs`` at a
    pixel of ``resolution`` metres."""
    return warped_grid(src_crs, bounds, cols, rows, crs, pixel_size(resolution, crs), f"the area of {name}",
                       projection)


def _ensure_level(product: S2Product, params: S2PreprocessParams, work: Path) -> S2Product:
    """L1C input: atmospheric correction by Sen2Cor when installed, else TOA only if asked."""
    if product.level == "L2A":
        return product
    if params.toa:
        log.info("Level-1C input: writing top-of-atmosphere reflectance as requested (--toa)")
        return product
    exe = shutil.which(SEN2COR)
    if exe is None:
        raise ServiceError(f"{product.name} is Level-1C and Sen2Cor ({SEN2COR}) is not installed: install "
                           f"Sen2Cor, or pass --toa true to write top-of-atmosphere reflectance")
    # Sen2Cor reads a folder named like the product, <name>.SAFE, whichever layout the input has: a
    # zip with or without a top folder (of any name), a SAFE folder or a folder holding one
    safe = work / "l1c" / f"{product.name}.SAFE"
    source = Path(product.source)
    if source.is_file():
        try:
            with zipfile.ZipFile(source) as z:  # the reader found exactly one MTD_MSIL1C.xml in it
                mtd = next(n for n in z.namelist() if n == "MTD_MSIL1C.xml" or n.endswith("/MTD_MSIL1C.xml"))
            shutil.unpack_archive(source, work / "l1c_zip", format="zip")
        except ZIP_ERRORS as e:
            raise zip_failure(e, source) from None
        safe.parent.mkdir()
        (work / "l1c_zip" / mtd).parent.rename(safe)
    else:
        root = Path(product.gdal_path("MTD_MSIL1C.xml")).parent  # the folder that holds the metadata
        if root.name == safe.name:
            safe = root
        else:  # a renamed folder: linked under the product's name, not copied
            safe.parent.mkdir()
            safe.symlink_to(root, target_is_directory=True)
    out = work / "sen2cor"
    out.mkdir()
    log.info("running Sen2Cor on %s", product.name)
    proc = subprocess.run([exe, str(safe), "--output_dir", str(out)], capture_output=True, text=True)
    produced = list(out.glob("*MSIL2A*.SAFE"))
    if proc.returncode != 0 or not produced:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ServiceError(f"Sen2Cor failed on {product.name}: {tail[0]}")
    return open_product(produced[0])


def _output_grid(product: S2Product, resolution: float, aoi: AoI | None) -> Grid:
    """The output grid in the tile CRS: aligned on the tile's origin, cropped to the AoI."""
    tile = product.grids[10]
    left, bottom, right, top = tile.bounds
    check_resolution(resolution, right - left, top - bottom, f"the tile of {product.name}")
    if aoi is not None:
        require_overlap(aoi, product.footprint_lonlat, product.name)
        a_left, a_bottom, a_right, a_top = aoi.bounds_in(product.crs)
        # snap outwards to the tile's pixel grid; EPS absorbs reprojection round-off
        left2 = tile.ulx + math.floor((max(a_left, left) - tile.ulx) / resolution + EPS) * resolution
        top2 = tile.uly - math.floor((tile.uly - min(a_top, top)) / resolution + EPS) * resolution
        right, bottom = min(a_right, right), max(a_bottom, bottom)
        left, top = left2, top2
        if right <= left or top <= bottom:
            raise ServiceError(f"AoI does not intersect the tile of {product.name}")
    cols = max(1, math.ceil((right - left) / resolution - EPS))
    rows = max(1, math.ceil((top - bottom) / resolution - EPS))
    return Grid(product.crs, left, top, float(resolution), rows, cols)


def _assemble(product: S2Product, params: S2PreprocessParams, grid: Grid, aoi: AoI | None,
              dst: Path, steps: Steps) -> dict:
    """Resample, mask and write all bands strip by strip into a tiled GeoTIFF."""
    with steps.step("prepare sources and masks"):
        sources = []
        for band in params.bands:
            rel, res = product.band_source(band, params.resolution)
            if res != NATIVE_RESOLUTION[band]:
                log.warning("%s: native file absent, reading ESA's %d m copy %s", band, res, Path(rel).name)
            sources.append(SourceRaster(product.gdal_path(rel), product.grids[res], label=product.label(rel)))
        clouds = None
        if params.cloudmask != "None":
            clouds = CloudMask(product, params.cloudmask, tuple(int(c) for c in params.cloud_classes),
                               params.resolution, params.flagdownsampling)
        landsea = None
        if params.landseamask != "None":
            landsea = LandSeaMask(grid.crs, grid.transform, (grid.rows, grid.cols), params.landseamask,
                                  params.landseamask_tolerance, params.dem)
    profile = {"driver": "GTiff", "width": grid.cols, "height": grid.rows, "count": len(sources),
               "dtype": "uint16", "crs": grid.crs, "transform": grid.transform, "nodata": NODATA_DN,
               "tiled": True, "blockxsize": 512, "blockysize": 512, "BIGTIFF": "IF_SAFER", "interleave": "band"}
    # a strip is at most STRIP_PIXELS wide x high: bounded memory at fine resolutions too
    strip_rows = max(1, min(round(STRIP_METRES / params.resolution), STRIP_PIXELS // grid.cols))
    counts = {"pixels": 0, "data": 0, "valid": 0, "cloud": 0}
    progress = Progress(math.ceil(grid.rows / strip_rows), "bands")
    # why each pixel without a value has none, for the quicklook
    why_profile = profile | {"count": 1, "dtype": "uint8", "nodata": None, "compress": "deflate"}
    gdal_env = {"GDAL_NUM_THREADS": "ALL_CPUS", "GDAL_CACHEMAX": 512}

    def read_strip(strip: Strip):
        """Decode and resample one strip: runs in a worker thread, ahead of the masking and
        writing of the previous strip, so that both cores stay busy."""
        with rasterio.Env(**gdal_env):
            data = np.stack([s.read(strip, flag=False, downsampling=params.downsampling,
                                    upsampling=params.upsampling) for s in sources])
            return data, (clouds.cloudy(strip) if clouds is not None else None)

    strips = [Strip(grid, r, min(strip_rows, grid.rows - r)) for r in range(0, grid.rows, strip_rows)]
    try:
        with steps.step("resample and mask bands"), rasterio.Env(**gdal_env), \
                rasterio.open(dst, "w", **profile) as out, ThreadPoolExecutor(max_workers=1) as reader, \
                rasterio.open(_reasons_path(dst), "w", **why_profile) as why_out:
            with uninterrupted():
                pending = reader.submit(read_strip, strips[0])
            for i, strip in enumerate(strips):
                data, cloudy = pending.result()
                if i + 1 < len(strips):
                    with uninterrupted():
                        pending = reader.submit(read_strip, strips[i + 1])
                inside = np.ones(strip.shape, bool) if aoi is None else \
                    aoi_mask(aoi, grid.crs, strip.transform, strip.shape)
                has_data = (data != NODATA_DN).all(axis=0) & inside
                remove = ~inside
                why = np.where(has_data, 0, outputs.NO_DATA).astype(np.uint8)
                if cloudy is not None:
                    counts["cloud"] += int((cloudy & has_data).sum())
                    remove |= cloudy
                    why[cloudy] = outputs.CLOUD
                if landsea is not None:
                    sea = landsea.remove(strip.row_off, 0, strip.height, grid.cols)
                    remove |= sea
                    why[sea] = outputs.MASKED_SEA
                why[~inside] = outputs.OUTSIDE_AOI
                data[:, remove] = NODATA_DN
                counts["pixels"] += int(inside.sum())
                counts["data"] += int(has_data.sum())
                counts["valid"] += int((data != NODATA_DN).all(axis=0).sum())
                out.write(data, window=rasterio.windows.Window(0, strip.row_off, grid.cols, strip.height))
                why_out.write(why, 1, window=rasterio.windows.Window(0, strip.row_off, grid.cols, strip.height))
                progress.advance()
            out.descriptions = params.bands
            out.scales = [product.scale_offset(b)[0] for b in params.bands]
            out.offsets = [product.scale_offset(b)[1] for b in params.bands]
            out.update_tags(PRODUCT=product.name, PROCESSING_BASELINE=product.baseline,
                            QUANTITY="TOA reflectance" if product.level == "L1C" else "BOA reflectance")
    finally:
        for s in sources:
            s.close()
        if clouds is not None:
            clouds.close()
    data_px = max(counts["data"], 1)
    return {"valid_percent": round(100.0 * counts["valid"] / max(counts["pixels"], 1), 3),
            "cloud_percent": round(100.0 * counts["cloud"] / data_px, 3),
            "pixels": counts["pixels"], "valid_pixels": counts["valid"]}


def _reproject(src_path: Path, crs: CRS, params: S2PreprocessParams, aoi: AoI | None, dst: Path) -> Path:
    """Warp the assembled product to another CRS, by windows, and re-apply the AoI polygon there."""
    from rasterio.vrt import WarpedVRT

    with rasterio.open(src_path) as src:
        transform, width, height = _reprojected_grid(src.crs, src.bounds, src.width, src.height, crs,
                                                     params.resolution, src.tags().get("PRODUCT", "the product"),
                                                     params.projection)
        vrt_opts = dict(crs=crs, transform=transform, width=width, height=height, nodata=NODATA_DN,
                        resampling=GDAL_UPSAMPLING[params.upsampling])
        profile = src.profile | {"crs": crs, "transform": transform, "width": width, "height": height}
        with WarpedVRT(src, **vrt_opts) as vrt, rasterio.open(dst, "w", **profile) as out:
            rows = 1024
            for row_off in range(0, height, rows):
                win = rasterio.windows.Window(0, row_off, width, min(rows, height - row_off))
                data = vrt.read(window=win)
                if aoi is not None:
                    t = rasterio.windows.transform(win, transform)
                    data[:, ~aoi_mask(aoi, crs, t, data.shape[1:])] = NODATA_DN
                out.write(data, window=win)
            out.descriptions = src.descriptions
            out.scales, out.offsets = src.scales, src.offsets
            for i in range(1, src.count + 1):
                out.update_tags(i, **src.tags(i))
            out.update_tags(**src.tags())
    return dst


def _reasons_path(assembled: Path) -> Path:
    """The raster of mask codes (outputs.MASK_STYLES) beside the assembled product."""
    return assembled.with_name("reasons.tif")


def _bands(product: S2Product, params: S2PreprocessParams) -> list[stac.Band]:
    """The product's bands, as the STAC item and GDAL's band fields give them."""
    return [stac.s2_band(b, f"Sentinel-2 {b}", NODATA_DN, *product.scale_offset(b)) for b in params.bands]


def _rgb_indexes(bands: tuple[str, ...]) -> tuple[int, int, int] | None:
    if all(b in bands for b in ("B4", "B3", "B2")):
        return tuple(bands.index(b) + 1 for b in ("B4", "B3", "B2"))
    return None


def _crs_text(path: Path) -> str:
    with rasterio.open(path) as ds:
        return ds.crs.to_string()


def _stac(product: S2Product, params: S2PreprocessParams, main: Path, assembled: Path, ql: Path,
          metrics: dict, input_uri: str, outdir: str):
    item = stac.raster_item(main.stem, assembled, main.name, product.sensing_time, _bands(product, params),
                            properties={"gsd": params.resolution, "valid_percent": metrics["valid_percent"]})
    stac.add_sentinel2(item, platform=product.spacecraft, tile=product.tile, baseline=product.baseline,
                       product_uri=f"{product.name}.SAFE")
    stac.add_cloud_cover(item, metrics["cloud_percent"])
    stac.add_processing(item, level=product.level, lineage=f"{SERVICE}: bands resampled to {params.resolution:g} m, "
                                                           f"cloud mask {params.cloudmask}")
    stac.add_sidecars(item, ql.name)
    stac.add_links(item, stac.location(outdir, f"{main.stem}.json"), [(input_uri, product.name)])
    return item
