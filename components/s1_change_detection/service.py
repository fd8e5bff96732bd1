"""S1-CD: amplitude change detection and multi-temporal coherence of a Sentinel-1 SLC pair.

1. The pair is checked on the manifests before any work (:mod:`.pair`).
2. Per IW sub-swath (or the SM image), burst by burst (:mod:`.interferometry`, kernels in
   :mod:`.tops`): the secondary is co-registered on the reference *geometrically*, each
   reference node geolocated on the DEM (``--dem``; else the ellipsoid at the annotated
   heights) and projected into the secondary orbit; optionally refined by amplitude
   cross-correlation (a constant shift), then by ESD in every burst overlap. The secondary
   burst is deramped and demodulated (TOPS steering), resampled with an 8-point sinc, reramped,
   and its flat-earth and topographic phase (range difference of the two orbits) removed.
3. Each burst keeps the lines it owns in the debursted image (TOPSAR-Deburst's split).
4. Coherence ``|sum s1 s2*| / sqrt(sum|s1|^2 sum|s2|^2)`` on a ``coherence_window_az`` x
   ``coherence_window_rg`` window; calibrated, noise-removed backscatter of each date; all three
   multilooked to the output pixel, the backscatters speckle-filtered; geocoded like
   S1-SLC-preprocess on the reference geometry.
5. Products (each a COG with quicklook and STAC item): coherence, backscatter of date 1 and of
   date 2 (float32), ACD RGB (R date 1, G date 2, B date 2) and MTC RGB (R date 1, G date 2,
   B coherence) as bytes (percentile stretch of the dB backscatter, coherence 0..1 -> 1..255,
   0 NoData), and the change mask (1 change, 0 none, 255 NoData).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from components import __version__
from components.common import outputs, stac, storage
from components.common.errors import ServiceError
from components.common.landmask import LandSeaMask
from components.common.logs import Progress, Steps
from components.common.aoi import require_overlap
from components.s1_preprocess import geocoding, radar, snap_graphs
from components.s1_preprocess import service as s1
from components.s1_preprocess.product import Image, open_product
from components.s1_preprocess.radiometry import NoiseModel, calibrate, calibration_lut, denoise, intensity

from . import interferometry, kernels, pair
from .params import S1CDParams

log = logging.getLogger(__name__)

SERVICE = "S1-CD"
STRIP = 128
PATCH = 256
NODE_STEP = 64
MIN_PEAK = 0.02
PERCENTILE_SAMPLE = 2_000_000


@dataclass
class CDResult:
    """What a run wrote: the products (by role), their sidecars and run.json."""

    products: dict
    run_record: str
    metrics: dict = field(default_factory=dict)


def run(input1: str, input2: str, params: S1CDParams, outdir: str) -> CDResult:
    aoi, driver, ext, crs = s1.check_common(params)
    with storage.output_folder(outdir) as local_out, \
            outputs.work_folder(local_out, ".s1cd-") as work:
        return _process(input1, input2, params, outdir, Path(work), aoi, driver, ext, crs)


def _process(input1, input2, params, outdir, work: Path, aoi, driver, ext, crs) -> CDResult:
    started = dt.datetime.now(dt.timezone.utc)
    steps = Steps(log)
    user_params = params  # what run.json records: the DEM and orbit as given
    with steps.step("fetch inputs"):
        local1 = storage.fetch_input(input1, work / "in1")
        local2 = storage.fetch_input(input2, work / "in2")
        params = s1.local_inputs(params, work)
    with steps.step("check pair"):
        days = pair.validate_pair(pair.peek(local1), pair.peek(local2), params.polarization)
        if days < 0:  # date 1 is the earlier one: the RGB composites' colours (and names) mean that
            log.info("input2 is the earlier acquisition: it is date 1")
            input1, input2, local1, local2, days = input2, input1, local2, local1, -days
    with steps.step("open products"):
        p1 = open_product(local1, work / "unzipped1", expect="SLC")
        p2 = open_product(local2, work / "unzipped2", expect="SLC")
        pol = p1.require_polarisation(params.polarization)
        p2.require_polarisation(pol)
        pair.require_overlap(p1.footprint_lonlat, p2.footprint_lonlat, p1.name, p2.name)
    if aoi is not None:
        require_overlap(aoi, p1.footprint_lonlat, p1.name)
    if params.dem:
        s1.check_dem_heights(params, geocoding.check_dem(params.dem, p1.footprint_lonlat))
    resolution = params.resolved_resolution(p1.mode)
    stage = work / "stage"
    stage.mkdir()
    if params.engine == "snap":
        return _snap(p1, p2, params, local1, local2, outdir, stage, resolution, started, steps, [input1, input2])
    swaths = [s for s in p1.swaths(pol) if p1.mode != "IW" or s in params.subswaths]
    swaths = [s for s in swaths if s in p2.swaths(pol)]
    if not swaths:
        raise ServiceError(f"the pair has no common sub-swath among {', '.join(params.subswaths)} for {pol}")
    images1 = [p1.image(s, pol) for s in swaths]
    # the manifests' footprints are the whole frames: the data of the swaths used must overlap too
    pair.require_overlap(s1.footprint(images1), s1.footprint([p2.image(s, pol) for s in swaths]), p1.name, p2.name)
    grid = geocoding.make_grid(crs, resolution, s1.footprint(images1), aoi)
    # coherence and both backscatters (float32) geocoded, RGB composites and change mask (7 bytes), and as products
    outputs.check_output_size(grid.rows, grid.cols, 2 * (3 * 4 + 7), work, parameter="resolution", value=resolution)
    src1 = s1.load_orbit(p1, images1[0], params.orbit)[1]
    log.info("%s + %s: %.1f days, %s, sub-swaths %s, output grid %dx%d", p1.name, p2.name, days, pol,
             ",".join(swaths), grid.cols, grid.rows)
    sources = {"coherence": [], "b1": [], "b2": []}
    shifts, esd = {}, {}
    heights = None
    if params.dem:
        with steps.step("read DEM"):
            heights = interferometry.DemHeights(params.dem, p1.footprint_lonlat, params.dem_geoid_height)
    for sw in swaths:
        im1, im2 = p1.image(sw, pol), p2.image(sw, pol)
        # orbit times are relative to each image's first line
        orbit1, orbit2 = s1.load_orbit(p1, im1, params.orbit)[0], s1.load_orbit(p2, im2, params.orbit)[0]
        with steps.step(f"co-register and estimate {sw}"):
            out = _swath(p1, p2, im1, im2, orbit1, orbit2, params, grid, resolution, work, heights)
        if out is None:
            continue
        shifts[sw] = out.pop("shift")
        esd[sw] = out.pop("esd")
        for k, v in out.items():
            sources[k].append(v)
    if not sources["coherence"]:
        raise ServiceError(f"the output area has no data in {p1.name}")
    landsea = LandSeaMask(grid.crs, grid.transform, grid.shape, params.landseamask, params.landseamask_tolerance,
                          params.dem, dem_geoid_height=params.dem_geoid_height) \
        if params.landseamask != "None" else None
    float_files = {}
    metrics = {"temporal_baseline_days": round(days, 4), "coregistration_shift": shifts, "resolution_m": resolution,
               "orbit": src1,
               "geocoding": f"terrain (DEM {Path(params.dem).name})" if params.dem else "ellipsoid (geolocation grid)",
               "interferometry": {
                   "steps": [name for name, _ in interferometry.NATIVE_STEPS],
                   "details": dict(interferometry.NATIVE_STEPS),
                   "heights": f"DEM {Path(params.dem).name} (+{params.dem_geoid_height} m geoid)" if params.dem
                   else "ellipsoid WGS84 at the annotation geolocation-grid heights (no --dem: no topographic phase "
                        "beyond those heights)",
                   "esd": esd}}
    names = {"coherence": "coherence", "b1": f"{params.calibration}_{pol}_date1",
             "b2": f"{params.calibration}_{pol}_date2"}
    with steps.step("geocode"):
        for key in ("coherence", "b1", "b2"):
            dst = work / f"{key}.tif"
            m = s1.geocode(sources[key], grid, dst, db=False, aoi=aoi, landsea=landsea, dem=params.dem,
                           dem_geoid_height=params.dem_geoid_height, band=names[key])
            metrics[f"{key}_valid_percent"] = m["valid_percent"]
            float_files[key] = dst
    with steps.step("RGB composites and change mask"):
        derived, stats = _derived(float_files, work, params)
    metrics.update(stats)
    stem = f"{p1.name[:32]}_{p2.name[17:32]}_{pol}"
    products, items = {}, {}
    descriptions = {"coherence": "interferometric coherence (0-1)",
                    "backscatter_date1": f"{params.calibration}0 {pol} of {p1.name} (linear)",
                    "backscatter_date2": f"{params.calibration}0 {pol} of {p2.name} (linear)",
                    "acd": "ACD RGB: R date 1, G date 2, B date 2 (bytes)",
                    "mtc": "MTC RGB: R date 1, G date 2, B coherence (bytes)",
                    "change": f"change mask: 1 where |dB change| >= {params.change_db} and coherence <= "
                              f"{params.change_coherence}, 0 no change, 255 NoData"}
    files = {"coherence": float_files["coherence"], "backscatter_date1": float_files["b1"],
             "backscatter_date2": float_files["b2"], "acd": derived["acd"], "mtc": derived["mtc"],
             "change": derived["change"]}
    with steps.step(f"write {driver} products"):
        for role, src in files.items():
            main = stage / f"{stem}_{role}{ext}"
            readable = main if driver == "COG" else src
            png = stage / f"{stem}_{role}_quicklook.png"
            if role == "change":
                outputs.write_product(src, main, driver, classes=_change_classes(descriptions[role]))
                ql = outputs.class_quicklook(readable, png, _change_classes(descriptions[role]), aoi=aoi)
            else:
                outputs.write_product(src, main, driver)
                ql = outputs.quicklook(readable, png, (1, 2, 3) if role in ("acd", "mtc") else None, aoi=aoi)
            items[f"{stem}_{role}.json"] = _stac(p1, p2, main, src, ql, role, descriptions[role], metrics, days,
                                                 pol, [input1, input2], outdir)
            products[role] = main.name
    record = outputs.run_record(SERVICE, __version__, user_params.as_dict(),
                                [{"uri": input1, "id": p1.name, "role": "date 1"},
                                 {"uri": input2, "id": p2.name, "role": "date 2"}],
                                {"products": products, "metrics": metrics}, steps.timings, started)
    outputs.write_json(stage / "run.json", record)
    for name, item in items.items():  # last: they carry the size and checksum of run.json
        stac.write_item(item, stage / name)
    with steps.step("publish"):
        published = storage.publish(stage, outdir, move=True)
    by_name = {Path(p).name: p for p in published}
    log.info("S1-CD %s: coherence valid %.1f %%, change %.2f %%, %.1f s", stem,
             metrics["coherence_valid_percent"], metrics["change_percent"], steps.elapsed)
    return CDResult({k: by_name[v] for k, v in products.items()}, by_name["run.json"], metrics)


# -- one sub-swath -----------------------------------------------------------------------------

def _rd(image: Image, plan, orbit):
    fs, tau0 = image.range_sampling_rate, image.slant_range_time
    return geocoding.RangeDopplerModel(orbit, plan.t_first, plan.interval, lambda t, tau: (tau - tau0) * fs)


def coregistration(im1: Image, plan1, orbit1, im2: Image, plan2, orbit2):
    """Polynomial offsets (d_row, d_col)(row, col) from the reference grid to the secondary's."""
    model1, n1 = s1.gcp_model(im1)
    rows = np.arange(0, n1, NODE_STEP, dtype=np.float64)
    cols = np.arange(0, im1.samples, NODE_STEP, dtype=np.float64)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    lon, lat, h = model1.forward(rr.ravel(), cc.ravel())
    r1, c1 = _rd(im1, plan1, orbit1).inverse(lon, lat, h)
    r2, c2 = _rd(im2, plan2, orbit2).inverse(lon, lat, h)
    x, y = r1 / max(n1, 1), c1 / max(im1.samples, 1)
    design = np.column_stack([np.ones_like(x), x, y, x * x, x * y, y * y])
    coef_r, *_ = np.linalg.lstsq(design, r2 - r1, rcond=None)
    coef_c, *_ = np.linalg.lstsq(design, c2 - c1, rcond=None)
    scale = (max(n1, 1), max(im1.samples, 1))

    def offsets(r, c):
        """Offsets at rows ``r`` and columns ``c`` (arrays that broadcast, e.g. a column of rows
        and a row of columns: no full-size intermediate but the result)."""
        x, y = np.asarray(r, np.float64) / scale[0], np.asarray(c, np.float64) / scale[1]

        def poly(k):
            return (k[0] + k[1] * x + k[3] * x * x) + (k[2] + k[4] * x) * y + k[5] * y * y
        return poly(coef_r), poly(coef_c)
    return offsets


def _secondary_block(im2, plan2, rows2, cols2, cal2, noise2):
    """Complex and calibrated intensity of the secondary at fractional debursted positions."""
    ok = np.isfinite(rows2) & np.isfinite(cols2)
    if not ok.any():
        nan = np.full(rows2.shape, np.nan)
        return nan + 0j, nan
    b0 = max(0, int(np.floor(rows2[ok].min())) - 1)
    b1 = min(plan2.source_line.size, int(np.ceil(rows2[ok].max())) + 2)
    if b1 <= b0:
        nan = np.full(rows2.shape, np.nan)
        return nan + 0j, nan
    block, valid, lines = radar.deburst_rows(im2, plan2, b0, b1)
    power = intensity(block)
    if noise2 is not None and not noise2.empty:
        power = denoise(power, noise2.rows(lines.astype(np.float64), 0, im2.samples), valid)
    value = calibrate(power, cal2.rows(lines.astype(np.float64)))
    value[~valid] = np.nan
    re = np.where(valid, block.real, np.nan)
    im = np.where(valid, block.imag, np.nan)
    rr, cc = rows2 - b0, cols2
    s_re = geocoding.sample_bilinear(re, rr, cc)
    s_im = geocoding.sample_bilinear(im, rr, cc)
    return s_re + 1j * s_im, geocoding.sample_bilinear(value, rr, cc)


def _refine(im1, plan1, im2, plan2, offsets) -> tuple[float, float, int]:
    """Constant residual shift by phase correlation of amplitude patches."""
    n1 = plan1.source_line.size
    found = []
    for fr in (0.25, 0.5, 0.75):
        for fc in (0.25, 0.5, 0.75):
            r0 = int(fr * n1) - PATCH // 2
            c0 = int(fc * im1.samples) - PATCH // 2
            if r0 < 0 or c0 < 0 or r0 + PATCH > n1 or c0 + PATCH > im1.samples:
                continue
            block, valid, _ = radar.deburst_rows(im1, plan1, r0, r0 + PATCH)
            ref = np.where(valid, np.abs(block), np.nan)[:, c0:c0 + PATCH]
            if np.isnan(ref).mean() > 0.2:
                continue
            rr = np.arange(r0, r0 + PATCH, dtype=float)[:, None]
            cc = np.arange(c0, c0 + PATCH, dtype=float)[None, :]
            dr, dc = offsets(rr, cc)
            sec, _ = _secondary_block(im2, plan2, rr + dr, cc + dc, _Unit(), None)
            sec = np.abs(sec)
            if np.isnan(sec).mean() > 0.2:
                continue
            ref = np.where(np.isfinite(ref), ref, np.nanmean(ref))
            sec = np.where(np.isfinite(sec), sec, np.nanmean(sec))
            d_r, d_c, peak = kernels.phase_correlation(ref, sec)
            if peak >= MIN_PEAK and abs(d_r) < PATCH / 4 and abs(d_c) < PATCH / 4:
                found.append((d_r, d_c))
    if not found:
        return 0.0, 0.0, 0
    arr = np.array(found)
    return float(np.median(arr[:, 0])), float(np.median(arr[:, 1])), len(found)


class _Unit:
    """A calibration stand-in with A = 1 (the refinement needs amplitudes only)."""

    def rows(self, rows, c0=0, c1=None):
        return np.ones((np.asarray(rows).size, 1))


def _swath(p1, p2, im1: Image, im2: Image, orbit1, orbit2, params: S1CDParams, grid, resolution, work: Path,
           heights):
    plan1, plan2 = radar.plan_for(im1), radar.plan_for(im2)
    shift = (0.0, 0.0, 0)
    if params.refine_coregistration:
        shift = _refine(im1, plan1, im2, plan2, coregistration(im1, plan1, orbit1, im2, plan2, orbit2))
    ay, ax = s1.looks_for(im1, resolution)
    n1 = plan1.source_line.size
    rows_ml, cols_ml = n1 // ay, im1.samples // ax
    model1, _ = s1.gcp_model(im1)
    inv = _inverse_map(im1, plan1, orbit1, grid, heights, model1)
    # only the debursted lines the output grid needs
    bounds = inv.radar_bounds(n1, im1.samples, margin=16 + 2 * params.filter_spec().halo() * max(ay, ax))
    if bounds is None:
        return None
    r_lo, r_hi = bounds[0] // ay, min(-(-bounds[1] // ay), rows_ml)
    kind = params.calibration
    noise1 = NoiseModel(im1, p1.ipf_version) if params.thermal_noise_removal else None
    noise2 = NoiseModel(im2, p2.ipf_version) if params.thermal_noise_removal else None
    pair_ = interferometry.PairSwath(im1, im2, orbit1, orbit2, model1, plan1, heights, shift=shift[:2],
                                     radiometry=((calibration_lut(im1, kind), noise1),
                                                 (calibration_lut(im2, kind), noise2)))
    esd = pair_.estimate_esd()
    log.info("%s: amplitude refinement %s lines/samples, ESD per burst %s lines", im1.swath,
             tuple(round(v, 3) for v in shift[:2]), esd["burst_shift_lines"])
    win = (params.coherence_window_az, params.coherence_window_rg)
    paths = {k: str(work / f"{k}_{im1.swath}_raw.tif") for k in ("coherence", "b1", "b2")}
    profile = radar._raster_profile(rows_ml, cols_ml)
    handles = {k: rasterio.open(p, "w", **profile) for k, p in paths.items()}
    progress = Progress(len(pair_.st1), f"{im1.swath} bursts")
    pending, row = None, r_lo * ay

    def flush(final: bool):
        nonlocal pending, row
        usable = (pending.shape[1] // ay) * ay
        if usable == 0 or (not final and usable < STRIP * ay):
            return
        for key, arr in zip(("coherence", "b1", "b2"), pending[:, :usable]):
            ml = radar.multilook(arr[:, :cols_ml * ax], ay, ax)
            handles[key].write(ml.astype(np.float32), 1, window=Window(0, row // ay, cols_ml, usable // ay))
        pending = pending[:, usable:]
        row += usable

    try:
        for d0, d1, coh, b1, b2 in pair_.swath(win, r_lo * ay, r_hi * ay):
            block = np.stack([coh, b1, b2])
            pending = block if pending is None else np.concatenate([pending, block], axis=1)
            flush(False)
            progress.advance()
        if pending is not None:
            flush(True)
    finally:
        for h in handles.values():
            h.close()
    spec = params.filter_spec()
    out = {"shift": {"rows": round(shift[0], 3), "cols": round(shift[1], 3), "patches": shift[2]}, "esd": esd}
    for key in ("coherence", "b1", "b2"):
        path = paths[key]
        if key != "coherence" and spec.name != "None":
            path = str(work / f"{key}_{im1.swath}.tif")
            radar.filter_raster(paths[key], path, spec)
        raster = radar.RadarRaster(path, rows_ml, cols_ml, (ay - 1) / 2, (ax - 1) / 2, (ay, ax),
                                   plan1.t_first + (ay - 1) / 2 * plan1.interval, ay * plan1.interval)
        m = _inverse_map(im1, plan1, orbit1, grid, heights, model1)
        m.maps = [((r - raster.row0) / ay, (c - raster.col0) / ax) for r, c in m.maps]
        out[key] = s1.Source(raster, m)
    return out


def _inverse_map(im1: Image, plan1, orbit1, grid, heights, model1):
    """Output grid -> debursted reference (row, col): range-Doppler over the DEM's height range
    with a DEM, else range-Doppler at the geolocation grid's heights (as S1-SLC-preprocess)."""
    if heights is None:
        return geocoding.InverseMap(grid, geocoding.SurfaceModel(_rd(im1, plan1, orbit1), model1))
    lo, hi = float(np.nanmin(heights.data)), float(np.nanmax(heights.data))
    return geocoding.InverseMap(grid, _rd(im1, plan1, orbit1), terrain=True,
                                heights=(lo, hi) if hi - lo > 1 else (lo, lo + 100.0))


# -- derived products --------------------------------------------------------------------------

def _sample_values(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        scale = max(1.0, (ds.width * ds.height / PERCENTILE_SAMPLE) ** 0.5)
        shape = (max(1, int(ds.height / scale)), max(1, int(ds.width / scale)))
        data = ds.read(1, out_shape=shape, resampling=rasterio.enums.Resampling.nearest)
        return np.where(data == ds.nodata, np.nan, data)


def _derived(files: dict, work: Path, params: S1CDParams):
    lo1, hi1 = kernels.percentiles_db(_sample_values(files["b1"]), params.percentile_low, params.percentile_high)
    lo2, hi2 = kernels.percentiles_db(_sample_values(files["b2"]), params.percentile_low, params.percentile_high)
    paths = {"acd": work / "acd.tif", "mtc": work / "mtc.tif", "change": work / "change.tif"}
    with rasterio.open(files["b1"]) as b1, rasterio.open(files["b2"]) as b2, rasterio.open(files["coherence"]) as co:
        prof = {k: b1.profile[k] for k in ("width", "height", "crs", "transform")}
        rgb = dict(prof, driver="GTiff", count=3, dtype="uint8", nodata=0, tiled=True, blockxsize=512,
                   blockysize=512, compress="ZSTD", photometric="RGB", BIGTIFF="IF_SAFER")
        mask = dict(prof, driver="GTiff", count=1, dtype="uint8", nodata=255, tiled=True, blockxsize=512,
                    blockysize=512, compress="ZSTD", BIGTIFF="IF_SAFER")
        changed = total = 0
        with rasterio.open(paths["acd"], "w", **rgb) as acd, rasterio.open(paths["mtc"], "w", **rgb) as mtc, \
                rasterio.open(paths["change"], "w", **mask) as chg:
            for row in range(0, b1.height, 512):
                window = Window(0, row, b1.width, min(512, b1.height - row))
                v1, v2, vc = (_masked(ds.read(1, window=window), ds.nodata) for ds in (b1, b2, co))
                r, g = kernels.stretch_db(v1, lo1, hi1), kernels.stretch_db(v2, lo2, hi2)
                acd.write(np.stack([r, g, g]), window=window)
                mtc.write(np.stack([r, g, kernels.stretch_coherence(vc)]), window=window)
                m = kernels.change_mask(v1, v2, vc, params.change_db, params.change_coherence)
                chg.write(m, 1, window=window)
                changed += int((m == 1).sum())
                total += int((m != 255).sum())
            for ds, names in ((acd, ("date1", "date2", "date2")), (mtc, ("date1", "date2", "coherence"))):
                for i, n in enumerate(names, start=1):
                    ds.set_band_description(i, n)
            chg.set_band_description(1, "change")
    stats = {"stretch_db_date1": [round(lo1, 3), round(hi1, 3)], "stretch_db_date2": [round(lo2, 3), round(hi2, 3)],
             "change_percent": round(100.0 * changed / max(total, 1), 4)}
    return paths, stats


def _masked(data: np.ndarray, nodata) -> np.ndarray:
    data = data.astype(np.float64)
    data[data == nodata] = np.nan
    return data


def _change_classes(description: str) -> list[stac.Class]:
    """The legend of the change mask: for the STAC item, GDAL's category names and the quicklook."""
    return [stac.Class(0, "no_change", "no change", (40, 40, 40)), stac.Class(1, "change", description, (230, 25, 75)),
            stac.Class(255, "no_data", "no data", nodata=True)]


def _stac(p1, p2, main: Path, src: Path, ql: Path, role: str, description: str, metrics: dict, days: float,
          pol: str, uris: list[str], outdir: str):
    with rasterio.open(src) as ds:
        bands = [stac.Band(ds.descriptions[i] or f"band{i + 1}", description, ds.nodata, unit=ds.units[i] or None)
                 for i in range(ds.count)]
    start, end = sorted((p1.sensing_time, p2.sensing_time))
    item = stac.raster_item(main.stem, src, main.name, p1.sensing_time, bands, start=start, end=end,
                            properties={"gsd": metrics["resolution_m"], "change_role": role,
                                        "temporal_baseline_days": round(days, 4)})
    if role == "change":
        stac.add_classes(item, _change_classes(description))
    stac.add_sentinel1(item, mission=p1.mission, mode=p1.mode, product_type=p1.product_type, polarizations=[pol],
                       relative_orbit=p1.relative_orbit, orbit_state=p1.orbit_pass)
    stac.add_processing(item, lineage=f"{SERVICE}: {role} of {p1.name} (date 1) and {p2.name} (date 2)")
    stac.add_sidecars(item, ql.name)
    stac.add_links(item, stac.location(outdir, f"{main.stem}.json"), [(uris[0], p1.name), (uris[1], p2.name)])
    return item


def _snap(p1, p2, params, local1, local2, outdir, stage: Path, resolution, started, steps, uris) -> CDResult:
    graphs = {}
    pol = params.polarization.upper()
    swaths = [s for s in p1.swaths(pol) if s in params.subswaths] if p1.mode == "IW" else [None]
    base = Path(outdir) if not storage.is_s3(outdir) else Path(".")
    for sw in swaths:
        g = snap_graphs.coherence_graph(params, str(Path(local1).resolve()), str(Path(local2).resolve()),
                                        str(base / f"coherence_{sw or 'SM'}"), resolution, p1.mode, subswath=sw,
                                        window=(params.coherence_window_az, params.coherence_window_rg))
        f = stage / f"coherence_{sw or 'SM'}_graph.xml"
        f.write_text(g.to_xml())
        graphs[f.name] = g.operators()
    for i, (p, local) in enumerate(((p1, local1), (p2, local2)), start=1):
        image = p.image(p.swaths(pol)[0], pol)
        g = snap_graphs.slc_graph(params, str(Path(local).resolve()), str(base / f"backscatter_date{i}"),
                                  resolution, p.mode, s1.looks_for(image, resolution))
        f = stage / f"backscatter_date{i}_graph.xml"
        f.write_text(g.to_xml())
        graphs[f.name] = g.operators()
    if not params.graph_only:
        for name in graphs:
            with steps.step(f"SNAP gpt {name}"):
                snap_graphs.run_gpt(stage / name)
    record = outputs.run_record(SERVICE, __version__, params.as_dict(),
                                [{"uri": uris[0], "id": p1.name, "role": "date 1"},
                                 {"uri": uris[1], "id": p2.name, "role": "date 2"}],
                                {"graphs": graphs}, steps.timings, started)
    outputs.write_json(stage / "run.json", record)
    published = storage.publish(stage, outdir, move=True)
    by_name = {Path(p).name: p for p in published}
    return CDResult({k: by_name[k] for k in graphs}, by_name["run.json"], {})
