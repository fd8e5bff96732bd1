"""S2-CD: change detection between two Sentinel-2 acquisitions of one tile by Change Vector
Analysis (seed D5.2 section 2.2.5).

1. Both inputs are identified and checked before any work (same tile, same level, bands present,
   AoI inside both footprints, output writable).
2. Products are pre-processed by S2-preprocess (selected bands on the tile grid at the requested
   resolution, cloud mask, AoI crop); pre-processed stacks are taken as they are.
3. The pair is compared on the common grid by ``engine.detect_changes`` (normalisation, filtered
   difference, noise model, chi-squared test, region filter, K-means in the polar domain).
4. The class map and the CVA are reprojected when asked and written in the output format, with
   quicklooks, STAC items, a per-class report and ``run.json``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pystac
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling

from components import __version__
from components.common import outputs, stac, storage
from components.common.aoi import AoI, aoi_mask, continuous, load_aoi
from components.common.errors import ServiceError
from components.common.logs import Steps
from components.common.output_grid import check_resolution, parse_crs, pixel_size, warped_grid
from components.s2_preprocess.params import S2PreprocessParams
from components.s2_preprocess.service import run as preprocess

from . import cva
from .engine import NODATA_CLASS, Detection, DetectionConfig, detect_changes
from .inputs import PairInput, check_pair, identify
from .params import S2ChangeParams
from .rendering import class_quicklook, cloud_reasons, colour_table, report_markdown
from .sources import RasterPairSource, SclReader, StackReader, TiffSink, common_grid, stack_units

log = logging.getLogger(__name__)

SERVICE = "S2-CD"
OVERVIEW_FACTORS = (2, 4, 8, 16, 32)
GDAL_CACHE_MB = 256  # GDAL's block cache while the pair is read strip by strip
_UTM_AUTO = ("utm(auto)", "utm", "auto", "")
_WGS84 = ("wgs84", "wgs 84", "wgs-84")


@dataclass
class CDResult:
    """What a run wrote. ``product`` (the change classes) is the main product."""

    product: str
    cva: str
    stac: str
    cva_stac: str
    quicklook: str
    cva_quicklook: str
    report: str
    run_record: str
    metrics: dict = field(default_factory=dict)
    classes: list = field(default_factory=list)


def target_crs(projection: str) -> CRS | None:
    """None for UTM(Auto) (the processing grid's CRS); WGS84 is EPSG:4326."""
    text = projection.strip()
    if text.lower().replace(" ", "") in _UTM_AUTO:
        return None
    if text.lower() in _WGS84:
        return CRS.from_epsg(4326)
    return parse_crs(projection, "WGS84, UTM(Auto), an EPSG code such as EPSG:3035, or WKT")


def run(input1: str, input2: str, params: S2ChangeParams, outdir: str) -> CDResult:
    """Detect the changes from ``input1`` to ``input2`` into ``outdir`` (folder or s3:// prefix)."""
    aoi = load_aoi(params.aoi) if params.aoi else None
    driver, ext = outputs.resolve_format(params.output_format)
    crs = target_crs(params.projection)
    with storage.output_folder(outdir) as local_out:
        return _run(input1, input2, params, outdir, local_out, aoi, driver, ext, crs)


def _run(input1: str, input2: str, params: S2ChangeParams, outdir: str, local_out: Path | None,
         aoi: AoI | None, driver: str, ext: str, crs: CRS | None) -> CDResult:
    started = dt.datetime.now(dt.timezone.utc)
    steps = Steps(log)
    with outputs.work_folder(local_out, ".s2cd-") as work:
        with steps.step("fetch and check inputs"):
            pair = [identify(role, uri, _fetch(role, uri, work)) for role, uri in (("input1", input1), ("input2", input2))]
            check_pair(pair[0], pair[1], params.bands, params.resolution, aoi)
            for item in pair:
                _check_resolution(item, params.resolution)
                if crs is not None:  # a CRS that cannot hold the tile fails before the products are read
                    _warped_grid(continuous(item.footprint_lonlat).bounds, "EPSG:4326", 64, 64, crs, params,
                                 item.name)
            # the unit of each stack (scale tags, data type, values), before any product is pre-processed
            units = {item.role: stack_units(item.stack, params.bands, f"{item.role}: {item.local.name}")
                     for item in pair if item.kind == "stack"}
        for note in (u.note for u in units.values() if u.unit != "tags"):
            log.info("%s", note)
        for item in pair:
            log.info("%s: %s %s, tile %s, sensed %s", item.role, item.kind, item.name, item.tile or "?",
                     item.sensing.date() if item.sensing else "?")
        pre_metrics = {}
        stacks = []
        for item in pair:
            if item.kind == "stack":
                stacks.append(item.stack)
                continue
            with steps.step(f"pre-process {item.role} (S2-preprocess)"):
                result = preprocess(str(item.local), _preprocess_params(item, params), str(work / f"pre-{item.role}"))
            stacks.append(Path(result.product))
            pre_metrics[item.role] = result.metrics
        grid = common_grid(stacks[0], stacks[1], params.resolution, aoi)
        # the CVA magnitude (float32) and the classes (uint8), temporary and as products
        outputs.check_output_size(grid.rows, grid.cols, 2 * (4 + 1), work, parameter="resolution",
                                  value=params.resolution)
        log.info("common grid: %d x %d px of %g in %s", grid.cols, grid.rows, grid.resolution, grid.crs)
        use_scl = all(p.kind == "product" and p.level == "L2A" for p in pair)
        classes_tif, cva_tif = work / "classes.tif", work / "cva.tif"
        with contextlib.ExitStack() as opened:
            readers = [opened.enter_context(contextlib.closing(StackReader(s, params.bands, grid, units.get(p.role))))
                       for s, p in zip(stacks, pair)]
            scl = tuple(opened.enter_context(contextlib.closing(SclReader(p.product, grid))) for p in pair) \
                if use_scl else None
            source = RasterPairSource(grid, readers[0], readers[1], aoi, scl,
                                      tuple(int(c) for c in params.cloud_classes))
            sink = opened.enter_context(contextlib.closing(TiffSink(grid, cva_tif, classes_tif)))
            with steps.step("change detection"), rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
                detection = detect_changes(source, DetectionConfig.from_params(params), sink)
        if crs is not None and CRS.from_user_input(grid.crs) != crs:
            with steps.step(f"reproject to {crs.to_string()}"):
                classes_tif = _reproject(classes_tif, work / "classes_proj.tif", crs, params, aoi)
                cva_tif = _reproject(cva_tif, work / "cva_proj.tif", crs, params, aoi)
        _finish_rasters(classes_tif, cva_tif, detection, params)

        stem = _stem(pair, params)
        stage = work / "stage"
        stage.mkdir()
        main, cva_main = stage / f"S2-CD_{stem}{ext}", stage / f"CVA_{stem}{ext}"
        with steps.step(f"write {driver}"):
            outputs.write_product(classes_tif, main, driver, bands=_bands("classes"), classes=_classes(detection))
            outputs.write_product(cva_tif, cva_main, driver, bands=_bands("cva"))
        metrics = outputs.json_safe(_metrics(detection, pre_metrics))
        summary = outputs.json_safe(_summary(pair, params, detection, grid))
        with steps.step("quicklooks, report and STAC items"):
            reasons = cloud_reasons([p.product for p in pair], grid, tuple(int(c) for c in params.cloud_classes),
                                    work / "reasons.tif") if use_scl else None
            ql = class_quicklook(main if driver == "COG" else classes_tif, stage / f"S2-CD_{stem}_quicklook.png",
                                 _classes(detection), aoi=aoi, reasons=reasons)
            cva_ql = outputs.quicklook(cva_main if driver == "COG" else cva_tif, stage / f"CVA_{stem}_quicklook.png",
                                       aoi=aoi, reasons=reasons)
            report = {"title": f"S2-CD {stem}", "summary": summary, "classes": detection.class_stats}
            outputs.write_json(stage / f"S2-CD_{stem}_report.json", report)
            with outputs.atomic_path(stage / f"S2-CD_{stem}_report.md") as tmp:
                tmp.write_text(report_markdown(f"S2-CD {stem}", summary, detection.class_stats))
            items = {f"S2-CD_{stem}.json": _stac(main, classes_tif, ql, pair, params, detection, metrics, outdir,
                                                 kind="classes", report=f"S2-CD_{stem}_report.json"),
                     f"CVA_{stem}.json": _stac(cva_main, cva_tif, cva_ql, pair, params, detection, metrics, outdir,
                                               kind="cva")}
        record = outputs.run_record(
            SERVICE, __version__, {**params.as_dict(), "reference_resolved": list(params.reference),
                                   "projection_resolved": _crs_text(classes_tif)},
            [{**p.describe(), **({"values": units[p.role].unit} if p.role in units else {})} for p in pair],
            {"product": main.name, "cva": cva_main.name, "stac": f"S2-CD_{stem}.json", "cva_stac": f"CVA_{stem}.json",
             "quicklook": ql.name, "cva_quicklook": cva_ql.name, "report": f"S2-CD_{stem}_report.json",
             "metrics": metrics, "method": _method(detection), "classes": detection.class_stats},
            steps.timings, started)
        outputs.write_json(stage / "run.json", record)
        for name, item in items.items():  # last: they carry the size and checksum of run.json
            stac.write_item(item, stage / name)
        size_mb = main.stat().st_size / 1e6
        with steps.step("publish"):
            published = storage.publish(stage, outdir, move=True)
    by_name = {Path(p).name: p for p in published}
    log.info("product %s: %dx%d px, valid %.1f %%, changed %.3f %% of valid, %d classes, %.1f MB, %.1f s",
             by_name[main.name], grid.cols, grid.rows, detection.valid_percent, detection.changed_percent,
             detection.classes.k, size_mb, steps.elapsed)
    return CDResult(by_name[main.name], by_name[cva_main.name], by_name[f"S2-CD_{stem}.json"],
                    by_name[f"CVA_{stem}.json"], by_name[ql.name], by_name[cva_ql.name],
                    by_name[f"S2-CD_{stem}_report.json"], by_name["run.json"], metrics, detection.class_stats)


def _fetch(role: str, uri: str, work: Path) -> Path:
    try:
        return storage.fetch_input(uri, work / role)
    except ServiceError as e:
        raise ServiceError(f"{role}: {e.one_line()}") from None


def _preprocess_params(item: PairInput, params: S2ChangeParams) -> S2PreprocessParams:
    """S2-preprocess settings for one product: the selected bands on the tile grid, clouds masked."""
    return S2PreprocessParams(resolution=params.resolution, bands=params.bands, aoi=params.aoi,
                              cloudmask="L2A" if item.level == "L2A" else "L1C",
                              cloud_classes=params.cloud_classes, projection="UTM(Auto)",
                              output_format="GeoTIFF", toa=item.level == "L1C")


def _check_resolution(item: PairInput, resolution: float) -> None:
    """The resolution must leave a few pixels across the input (tile or stack), as S2-preprocess asks."""
    check_resolution(resolution, *item.extent_m, f"{item.role} {item.name}")


def _warped_grid(bounds: tuple, src_crs, width: int, height: int, crs: CRS, params: S2ChangeParams, name: str):
    """(transform, width, height) of a raster of ``bounds`` in ``src_crs`` warped to ``crs`` at the resolution."""
    return warped_grid(src_crs, bounds, width, height, crs, pixel_size(params.resolution, crs), f"the area of {name}",
                       params.projection)


def _finish_rasters(classes_tif: Path, cva_tif: Path, detection: Detection, params: S2ChangeParams) -> None:
    """Palette, descriptions, tags and (nearest) overviews of the class map; CVA descriptions."""
    with rasterio.open(classes_tif, "r+") as ds:
        ds.write_colormap(1, colour_table(detection.classes.k))
        ds.update_tags(1, NO_CHANGE="0", NODATA=str(NODATA_CLASS),
                       CLASSES=",".join(str(c["class"]) for c in detection.class_stats))
        ds.update_tags(SERVICE=SERVICE, BANDS=",".join(params.bands))
        factors = [f for f in OVERVIEW_FACTORS if max(ds.width, ds.height) / f >= 256]
        if factors:
            ds.build_overviews(factors, Resampling.nearest)
    with rasterio.open(cva_tif, "r+") as ds:  # names and units: write_product, from _bands
        ds.update_tags(2, REFERENCE_VECTOR=",".join(f"{v:g}" for v in params.reference))
        ds.update_tags(SERVICE=SERVICE, BANDS=",".join(params.bands))


def _reproject(src_path: Path, dst: Path, crs: CRS, params: S2ChangeParams, aoi: AoI | None) -> Path:
    """Warp a product to ``crs`` by nearest neighbour (classes and CVA stay consistent), by strips,
    and re-apply the AoI polygon there."""
    from rasterio.vrt import WarpedVRT

    with rasterio.open(src_path) as src:
        transform, width, height = _warped_grid(src.bounds, src.crs, src.width, src.height, crs, params,
                                                "the change map")
        profile = src.profile | {"crs": crs, "transform": transform, "width": width, "height": height}
        with WarpedVRT(src, crs=crs, transform=transform, width=width, height=height, nodata=src.nodata,
                       resampling=Resampling.nearest) as vrt, rasterio.open(dst, "w", **profile) as out:
            for row_off in range(0, height, 1024):
                win = rasterio.windows.Window(0, row_off, width, min(1024, height - row_off))
                data = vrt.read(window=win)
                if aoi is not None:
                    data[:, ~aoi_mask(aoi, crs, transform, (height, width),
                                      window=(row_off, 0, win.height, width))] = src.nodata
                out.write(data, window=win)
    return dst


def _stem(pair: list[PairInput], params: S2ChangeParams) -> str:
    tile = pair[0].tile or pair[1].tile or "pair"
    dates = [p.sensing.strftime("%Y%m%d") if p.sensing else p.role for p in pair]
    return f"{tile}_{dates[0]}_{dates[1]}_{params.resolution:g}m"


def _crs_text(path: Path) -> str:
    with rasterio.open(path) as ds:
        return ds.crs.to_string()


def _method(detection: Detection) -> dict:
    return {"normalisation": detection.normalisation.as_dict(), "noise": detection.noise.as_dict(),
            "chi2_threshold": round(detection.threshold, 4),
            "changed_pixels_before_area_filter": detection.changed_before_area_filter}


def _metrics(detection: Detection, pre_metrics: dict) -> dict:
    out = {"valid_percent": round(detection.valid_percent, 3),
           "changed_percent": round(detection.changed_percent, 4),
           "changed_pixels": detection.changed_pixels, "valid_pixels": detection.valid_pixels,
           "pixels": detection.pixels, "change_classes": detection.classes.k}
    for role, m in pre_metrics.items():
        out[f"{role}_cloud_percent"] = m.get("cloud_percent")
    return out


def _summary(pair: list[PairInput], params: S2ChangeParams, detection: Detection, grid) -> dict:
    return {"input1": pair[0].name, "input2": pair[1].name, "tile": pair[0].tile or pair[1].tile or "",
            "bands": ",".join(params.bands), "resolution_m": params.resolution,
            "grid": f"{grid.cols} x {grid.rows} px, {grid.crs}",
            "valid_percent": round(detection.valid_percent, 3),
            "changed_percent_of_valid": round(detection.changed_percent, 4),
            "chi2_threshold": f"{detection.threshold:.2f} ({len(params.bands)} degrees of freedom, "
                              f"{params.levelConfidence:g} %)",
            "reference_vector": ",".join(f"{v:g}" for v in params.reference)}


def _bands(kind: str) -> list[stac.Band]:
    """The bands of the class map or of the CVA product, for the STAC item and GDAL's band fields."""
    if kind == "classes":
        return [stac.Band("change_class", "0 no change, 1..N change classes (K-means on magnitude and angle), "
                                          "255 no data", NODATA_CLASS)]
    return [stac.Band("magnitude", "magnitude of the normalised difference vector (reflectance)", cva.NODATA,
                      unit="1"),
            stac.Band("angle", "angle between the difference vector and the reference vector", cva.NODATA,
                      unit="deg")]


def _classes(detection: Detection) -> list[stac.Class]:
    """The legend of the class map: for the STAC item, the category names and the quicklook."""
    colours = colour_table(detection.classes.k)
    return [stac.Class(0, "no_change", "no change", colours[0][:3]),
            *[stac.Class(c["class"], f"change_{c['class']}", f"change class {c['class']}: mean "
                         f"magnitude {c['mean_magnitude']}, mean angle {c['mean_angle_deg']} deg",
                         colours[c["class"]][:3], count=c["pixels"],
                         percentage=c["percent_of_valid"]) for c in detection.class_stats],
            stac.Class(NODATA_CLASS, "no_data", "no data", nodata=True)]


def _stac(main: Path, readable: Path, ql: Path, pair: list[PairInput], params: S2ChangeParams,
          detection: Detection, metrics: dict, outdir: str, *, kind: str, report: str | None = None):
    times = sorted(p.sensing for p in pair if p.sensing)
    when = times[-1] if times else dt.datetime.now(dt.timezone.utc)
    span = {"start": times[0], "end": times[-1]} if len(times) == 2 else {}
    item = stac.raster_item(main.stem, readable, main.name, when, _bands(kind), **span,
                            properties={"gsd": params.resolution, **metrics})
    if kind == "classes":
        stac.add_classes(item, _classes(detection))
    stac.add_sentinel2(item, tile=pair[0].tile or pair[1].tile or None)
    stac.add_processing(item, lineage=f"{SERVICE}: change vector analysis of {pair[0].name} and {pair[1].name}")
    stac.add_sidecars(item, ql.name)
    if report:
        item.add_asset("report", pystac.Asset(report, media_type=pystac.MediaType.JSON, roles=["metadata"]))
    stac.add_links(item, stac.location(outdir, f"{main.stem}.json"), [(p.uri, p.name) for p in pair])
    return item
