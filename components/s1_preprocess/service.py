"""S1-GRD-preprocess and S1-SLC-preprocess: a Sentinel-1 Level-1 product to calibrated,
speckle-filtered, geocoded backscatter (one float32 band), COG + STAC item + quicklook + run.json.

Native engine, two passes with bounded memory:

1. radar geometry (:mod:`.radar`), only over the part of the image the output grid needs:
   thermal noise, GRD border noise, calibration, multilook (when the output pixel is at least
   twice the image pixel), speckle filter; written as a float32 raster in a work folder;
2. map geometry, 1024x1024 output tiles: inverse mapping (range-Doppler, on the DEM or at the
   geolocation grid's heights), bilinear sampling, terrain flattening (GammaRTC), dB, AoI and
   land/sea masks.

``--engine snap`` writes the seed's gpt graph and runs it with SNAP (``--graph_only true``: the
graph alone).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from components import __version__
from components.common import outputs, stac, storage
from components.common.aoi import AoI, aoi_mask, load_aoi, lonlat_beside, require_overlap
from components.common.errors import ServiceError
from components.common.landmask import LandSeaMask
from components.common.logs import Progress, Steps
from components.common.readers import open_raster

from . import filters, geocoding, radar, snap_graphs, terrain_flattening
from .params import S1CommonParams, S1GRDParams, S1SLCParams
from .product import Image, S1Product, is_pieces, open_pieces, open_product

log = logging.getLogger(__name__)

NODATA = -9999.0
TILE = 1024
DB_FLOOR = 1e-10  # linear values below this become -100 dB


@dataclass
class S1Result:
    """What a run wrote. ``product`` is the main product; the rest are its sidecars."""

    product: str
    stac: str
    quicklook: str
    run_record: str
    metrics: dict = field(default_factory=dict)


@dataclass
class Source:
    """A radar raster and its inverse mapping onto the output grid."""

    raster: radar.RadarRaster
    inverse: geocoding.InverseMap
    flattening: "terrain_flattening.FlatteningArea | None" = None  # GammaRTC: beta0 / illuminated area


def run_grd(input_uri: str, params: S1GRDParams, outdir: str) -> S1Result:
    """Pre-process one GRD product into ``outdir`` (a folder or an ``s3://`` prefix)."""
    return _run("S1-GRD-preprocess", "GRD", input_uri, params, outdir)


def run_slc(input_uri: str, params: S1SLCParams, outdir: str) -> S1Result:
    """Pre-process one SLC product into ``outdir`` (a folder or an ``s3://`` prefix)."""
    return _run("S1-SLC-preprocess", "SLC", input_uri, params, outdir)


# -- plumbing shared with S1-CD ----------------------------------------------------------------

def check_common(params: S1CommonParams):
    """Validate what needs no product (before any work): AoI, format, projection, DEM file."""
    aoi = load_aoi(params.aoi) if params.aoi else None
    driver, ext = outputs.resolve_format(params.output_format)
    crs = geocoding.target_crs(params.projection)
    # s3:// DEMs and orbit files are fetched into the work folder (local_inputs); GDAL paths
    # (/vsizip/, /vsicurl/) are DEMs opened by GDAL (geocoding.check_dem)
    if params.dem and not storage.is_s3(params.dem) and not geocoding.is_gdal_path(params.dem) \
            and not Path(params.dem).exists():
        raise ServiceError(f"DEM file does not exist: {params.dem}")
    if params.orbit and not storage.is_s3(params.orbit) and not Path(params.orbit).exists():
        raise ServiceError(f"orbit file not found: {params.orbit}")
    if params.graph_only and params.engine != "snap":
        raise ServiceError("--graph_only true needs --engine snap")
    if params.calibration.startswith("GammaRTC") and not params.dem:
        raise ServiceError(f"--calibration {params.calibration} (terrain flattening) needs the terrain: give --dem")
    if params.calibration.startswith("GammaRTC") and params.engine == "snap":
        raise ServiceError(f"--calibration {params.calibration} is not available with --engine snap "
                           f"(use the native engine)")
    return aoi, driver, ext, crs


def local_inputs(params, work: Path):
    """``params`` with an ``s3://`` DEM and orbit file (or folder) fetched into ``work``."""
    changes = {}
    for name, folder in (("dem", "dem"), ("orbit", "orbit")):
        uri = getattr(params, name)
        if uri and storage.is_s3(uri):
            changes[name] = str(storage.fetch_input(uri, work / folder))
    return dataclasses.replace(params, **changes) if changes else params


def check_dem_heights(params, spec) -> None:
    """Before any work: the DEM's declared vertical datum and ``--dem_geoid_height`` agree.

    PROJ here has no geoid grid (EGM96/EGM2008 to ellipsoidal heights is a no-op "ballpark"
    transformation without one), so the geoid's height comes from ``--dem_geoid_height``: a DEM
    that declares heights above a geoid needs it (not 0), one that declares ellipsoidal heights
    must not have it (it would be added twice), and then neither the land/sea mask (heights
    above sea level) nor ``--dem_outside geoid`` can find the geoid. A DEM that declares no
    vertical datum gets ``--dem_geoid_height`` added, as given."""
    from components.common.landmask import ELLIPSOID, GEOID

    name = Path(str(params.dem)).name
    geoid = float(params.dem_geoid_height)
    if spec.vertical == GEOID and geoid == 0:
        raise ServiceError(f"DEM file {name} declares heights above the geoid ({spec.datum}): give "
                           f"--dem_geoid_height, the geoid's height above the WGS84 ellipsoid over the scene "
                           f"(about 47 m over Rome for EGM96), to make them ellipsoidal")
    if spec.vertical == ELLIPSOID and geoid != 0:
        raise ServiceError(f"DEM file {name} declares ellipsoidal heights ({spec.datum}): --dem_geoid_height "
                           f"{geoid:g} would count the geoid twice; leave it at 0 for this DEM")
    if spec.vertical == ELLIPSOID and getattr(params, "landseamask", "None") != "None":
        raise ServiceError(f"--landseamask {params.landseamask} from DEM file {name} needs heights above sea "
                           f"level, and the DEM declares ellipsoidal heights ({spec.datum}) with no geoid height "
                           f"known: give a DEM of heights above the geoid (e.g. EGM96, EPSG:9707) with "
                           f"--dem_geoid_height")
    if spec.vertical == ELLIPSOID and getattr(params, "dem_outside", "error") == "geoid":
        raise ServiceError(f"--dem_outside geoid: DEM file {name} declares ellipsoidal heights ({spec.datum}), "
                           f"so the geoid's height is not known; use --dem_outside ellipsoid or error")


def _run(service: str, kind: str, input_uri: str, params, outdir: str) -> S1Result:
    aoi, driver, ext, crs = check_common(params)
    with storage.output_folder(outdir) as local_out, outputs.work_folder(local_out, ".s1p-") as work:
        return _process(service, kind, input_uri, params, outdir, work, aoi, driver, ext, crs)


def _process(service, kind, input_uri, params, outdir, work: Path, aoi, driver, ext, crs) -> S1Result:
    started = dt.datetime.now(dt.timezone.utc)
    steps = Steps(log)
    user_params = params  # what run.json records: the DEM and orbit as given
    with steps.step("fetch input"):
        local_input = storage.fetch_input(input_uri, work / "input")
        params = local_inputs(params, work)
    with steps.step("open product"):
        if kind == "SLC" and is_pieces(local_input):
            product = _open_slc_pieces(local_input, params)
        else:
            product = open_product(local_input, work / "unzipped", expect=kind)
            for name in ("calibration_constant", "crop_offset"):
                if kind == "SLC" and getattr(params, name):
                    raise ServiceError(f"--{name} is for an input given as pieces (swath annotation and measurement); "
                                       f"{product.name} is a SAFE product with its own annotations")
        pol = product.require_polarisation(params.polarization)
    if aoi is not None:
        require_overlap(aoi, product.footprint_lonlat, product.name)
    if params.dem:
        check_dem_heights(params, geocoding.check_dem(params.dem, product.footprint_lonlat))
    resolution = params.resolved_resolution(product.mode)
    stem = f"{product.name}_{pol}_{params.calibration}_{resolution:g}m"
    stage = work / "stage"
    stage.mkdir()
    if params.engine == "snap":
        return _snap(service, kind, product, params, input_uri, local_input, outdir, stage, stem, resolution,
                     started, steps)
    images = _images(product, pol, params, kind)
    orbit_source = load_orbit(product, images[0], params.orbit)[1]
    grid = geocoding.make_grid(crs, resolution, footprint(images), aoi)
    log.info("%s: %s %s IPF %.2f, %s, output grid %dx%d in %s", product.name, product.product_type,
             product.mode, product.ipf_version, pol, grid.cols, grid.rows, grid.crs.to_string())
    # the geocoded raster and the product (float32), and the radar images at most whole and multilooked
    radar_bytes = 4 * sum(im.lines * im.samples // math.prod(looks_for(im, resolution)) for im in images)
    outputs.check_output_size(grid.rows, grid.cols, 2 * 4, work, parameter="resolution", value=resolution,
                              extra_bytes=radar_bytes)
    dem_fill = check_dem_coverage(params, grid, footprint(images), aoi)
    flatten = params.calibration.startswith("GammaRTC")
    # terrain flattening divides beta0 by the illuminated area
    radar_params = dataclasses.replace(params, calibration="Beta") if flatten else params
    sources = []
    for image in images:
        with steps.step(f"radar processing {image.swath}"), outputs.writing(work / f"radar_{image.swath}.tif"):
            src = radar_source(product, image, radar_params, grid, resolution, work, kind)
        if src is not None and flatten:
            with steps.step(f"terrain flattening {image.swath}"):
                r = src.raster
                src.flattening = terrain_flattening.FlatteningArea(
                    grid, src.inverse.model, image, params.dem, params.dem_geoid_height, dem_fill,
                    src.inverse.heights, (int(r.row0), int(math.ceil(r.row0 + r.rows * r.looks[0]))))
        if src is not None:
            sources.append(src)
    if not sources:
        raise ServiceError(f"the output area has no data in {product.name}")
    assembled = work / "assembled.tif"
    landsea = LandSeaMask(grid.crs, grid.transform, grid.shape, params.landseamask, params.landseamask_tolerance,
                          params.dem, dem_geoid_height=params.dem_geoid_height) \
        if params.landseamask != "None" else None
    with steps.step("geocode"), outputs.writing(assembled):
        metrics = geocode(sources, grid, assembled, db=params.calibration.endswith("DB"), aoi=aoi,
                          landsea=landsea, dem=params.dem, dem_geoid_height=params.dem_geoid_height,
                          dem_fill=dem_fill, band=f"{params.calibration}_{pol}")
    outputs.check_valid(metrics, params.min_valid_percent, product.name)
    metrics.update({"geocoding": "range-Doppler terrain correction" if params.dem else
                    "range-Doppler on the ellipsoid at the geolocation grid's heights",
                    "orbit": orbit_source,
                    **({"dem_outside": params.dem_outside} if params.dem else {}),
                    "speckle_filter": filters.describe(params.filter_spec()),
                    "looks": list(sources[0].raster.looks), "resolution_m": resolution})
    if kind == "SLC":
        metrics.update(_slc_record(images, sources))
    result = publish_product(service, product, user_params, assembled, driver, ext, stage, stem, metrics,
                             [{"uri": input_uri, "id": product.name, "type": product.product_type,
                               "ipf": product.ipf_version, "orbit": orbit_source}], outdir, started, steps,
                             extra={"polarization": pol}, description=_constant_note(images))
    log.info("product %s: %dx%d px, valid %.1f %%, %.1f s", result.product, grid.cols, grid.rows,
             metrics["valid_percent"], steps.elapsed)
    return result


def _open_slc_pieces(folder, params):
    """An SLC given as a swath annotation and its (cropped) measurement: the calibration is the
    explicit constant, and there is no noise annotation to remove."""
    if params.engine == "snap":
        raise ServiceError(f"{Path(folder).name} is not a SAFE product (pieces of one): --engine snap needs a SAFE")
    if params.thermal_noise_removal:
        raise ServiceError(f"{Path(folder).name} has no noise annotation (pieces of a product, no SAFE folder): "
                           f"set --thermal_noise_removal false")
    offset = None
    if params.crop_offset:
        try:
            line, sample = (int(v) for v in str(params.crop_offset).split(","))
        except ValueError:
            raise ServiceError(f"--crop_offset {params.crop_offset!r} is not LINE,SAMPLE (two whole numbers)") from None
        offset = (line, sample)
    return open_pieces(Path(folder), calibration_constant=params.calibration_constant, offset=offset)


def _slc_record(images: list[Image], sources) -> dict:
    """What the SLC radar work touched and how it was calibrated, for run.json."""
    constant = images[0].calibration_constant
    windows = {}
    for im in images:
        if im.windows_read:
            w = np.array(im.windows_read)
            windows[im.swath] = {"lines": [int(w[:, 0].min()), int((w[:, 0] + w[:, 2]).max())],
                                 "samples": [int(w[:, 1].min()), int((w[:, 1] + w[:, 3]).max())],
                                 "bursts": sorted({int(b) for r0, _, h, _ in im.windows_read
                                                   for b in range(r0 // max(im.lines_per_burst, 1),
                                                                  (r0 + h - 1) // max(im.lines_per_burst, 1) + 1)})
                                 if im.bursts else []}
    record = {"calibration_source": "calibration annotation", "radar_read": windows}
    if constant is not None:
        record["calibration_source"] = (f"constant {constant:g} from --calibration_constant (the input has no "
                                        f"calibration annotation)")
        record["thermal_noise"] = "not removed (the input has no noise annotation)"
    return record


def _constant_note(images: list[Image]) -> str | None:
    constant = images[0].calibration_constant
    if constant is None:
        return None
    return (f"backscatter calibrated with the constant A = {constant:g} given by --calibration_constant "
            f"(no calibration annotation), thermal noise not removed")


def _images(product: S1Product, pol: str, params, kind: str) -> list[Image]:
    swaths = product.swaths(pol)
    if kind == "SLC" and product.mode == "IW":
        wanted = [s for s in swaths if s in params.subswaths]
        if not wanted:
            raise ServiceError(f"none of the sub-swaths {', '.join(params.subswaths)} is in {product.name} "
                               f"for {pol}: available {', '.join(swaths)}")
        swaths = wanted
    return [product.image(s, pol) for s in swaths]


def footprint(images: list[Image]):
    """Union of the image outlines in lon/lat: the image border (GRD) or the debursted image
    border (SLC) mapped through the geolocation grid."""
    import shapely

    parts = []
    for im in images:
        model, n_rows = gcp_model(im)
        # a cropped measurement: the outline of its pixels
        window = (0, n_rows, 0, im.samples) if im.data_window is None else radar.data_bounds(im, radar.plan_for(im))
        if window is None:
            continue
        parts.append(model.outline(*window, 33))
    return shapely.union_all(parts)


def gcp_model(image: Image):
    """The geolocation-grid model in the coordinates processed: image lines (GRD, SM SLC) or
    debursted lines (IW SLC); and the number of such lines."""
    if image.bursts:
        plan = radar.deburst_plan(image)

        def rows_of(gcp):
            t = (gcp.azimuth_time.values - image.first_line_time) / np.timedelta64(1, "s")
            return (t - plan.t_first) / plan.interval
        return geocoding.GcpModel.from_gcp(image.gcp, row_of_line=rows_of), plan.source_line.size
    return geocoding.GcpModel.from_gcp(image.gcp), image.lines


def load_orbit(product: S1Product, image: Image, orbit_path):
    if orbit_path:
        orb = geocoding.read_eof(orbit_path, product.mission, product.start_time, product.stop_time,
                                 image.first_line_time)
        return orb, f"EOF file {orb.source}"
    return geocoding.Orbit.from_annotation(image.orbit, image.first_line_time), "annotation state vectors"


def looks_for(image: Image, resolution: float) -> tuple[int, int]:
    """Integer looks (azimuth, range) so that a look is at most the output pixel."""
    if image.projection == "Ground Range":
        ground_range = image.range_pixel_spacing
    else:
        ground_range = image.range_pixel_spacing / math.sin(math.radians(image.incidence_mid))
    ay = max(1, int(resolution / image.azimuth_pixel_spacing + 1e-6))
    ax = max(1, int(resolution / ground_range + 1e-6))
    return ay, ax


def inverse_map(product, image: Image, params, grid, plan=None) -> geocoding.InverseMap:
    """Output grid -> radar coordinates of ``image``: full-resolution image coordinates (GRD) or
    debursted ones (SLC, ``plan``); range-Doppler on the DEM, or at the geolocation grid's
    heights without one."""
    t_row0, interval = (plan.t_first, plan.interval) if plan is not None else (0.0, image.azimuth_time_interval)
    model = range_doppler_model(product, image, params.orbit, t_row0, interval)
    if params.dem:
        heights = _dem_height_range(params.dem, params.dem_geoid_height, dem_fill_height(params))
        return geocoding.InverseMap(grid, model, terrain=True, heights=heights)
    return geocoding.InverseMap(grid, geocoding.SurfaceModel(model, gcp_model(image)[0]))


def radar_source(product, image: Image, params, grid, resolution, work: Path, kind: str):
    """Process one image in radar geometry and build its inverse map onto ``grid``."""
    ay, ax = looks_for(image, resolution)
    plan = radar.deburst_plan(image) if kind == "SLC" and image.bursts else None
    inv_full = inverse_map(product, image, params, grid, plan)
    n_rows = plan.source_line.size if plan is not None else image.lines
    bounds = inv_full.radar_bounds(n_rows, image.samples, margin=8 + 2 * params.filter_spec().halo() * max(ay, ax))
    if bounds is None:
        log.info("%s: no overlap with the output grid", image.swath)
        return None
    dst = str(work / f"radar_{image.swath}.tif")
    if kind == "GRD":
        steps = radar.strips(max(1, (bounds[1] - bounds[0]) // ay))
        raster = radar.process_grd(product, image, params, bounds, (ay, ax), dst,
                                   Progress(steps, f"{image.swath} strips"))
    else:
        # only the lines and samples the output grid needs (with the filter's margin), within
        # the pixels the measurement holds
        bounds = _grid_radar_bounds(inv_full, n_rows, image.samples, 8 + 2 * params.filter_spec().halo() * max(ay, ax))
        bounds = radar.intersect(bounds, radar.data_bounds(image, plan or radar.plan_for(image)))
        if bounds is None:
            log.info("%s: no overlap with the output grid", image.swath)
            return None
        raster = radar.process_slc(product, image, params, (ay, ax), dst,
                                   Progress(radar.strips(max(1, (bounds[1] - bounds[0]) // ay)),
                                            f"{image.swath} strips"), plan=plan, bounds=bounds)
    # re-express the inverse map in raster coordinates: raster = (image - row0) / looks
    inv_full.maps = [((r - raster.row0) / ay, (c - raster.col0) / ax) for r, c in inv_full.maps]
    return Source(raster, inv_full)


def _grid_radar_bounds(inverse: geocoding.InverseMap, rows: int, cols: int, margin: int):
    """(r0, r1, c0, c1) of the radar image that the output grid maps into, from the grid's border
    pixels (the map is one-to-one, so the interior maps inside; with a DEM, at both bounding
    heights), clipped to the image; None when outside. Tighter than the coarse nodes, which run up
    to a node step (32 output pixels) beyond the grid: for a small AoI that step is most of it."""
    g = inverse.grid
    border = [(0, 0, 1, g.cols), (g.rows - 1, 0, 1, g.cols), (0, 0, g.rows, 1), (0, g.cols - 1, g.rows, 1)]
    r, c = [], []
    for h in (inverse.heights if inverse.terrain else (None,)):
        for win in border:
            rr, cc = inverse.window(*win, dem=None if h is None else np.full(win[2:], h))
            r.append(rr.ravel())
            c.append(cc.ravel())
    r, c = np.concatenate(r), np.concatenate(c)
    ok = np.isfinite(r) & np.isfinite(c)
    if not ok.any():
        return None
    r0, r1 = max(0, int(np.floor(r[ok].min())) - margin), min(rows, int(np.ceil(r[ok].max())) + margin + 1)
    c0, c1 = max(0, int(np.floor(c[ok].min())) - margin), min(cols, int(np.ceil(c[ok].max())) + margin + 1)
    return (r0, r1, c0, c1) if r1 > r0 and c1 > c0 else None


def range_doppler_model(product, image: Image, orbit_path, t_row0: float, interval: float):
    """Zero-Doppler time and slant range of a ground point to (row, col): rows on the image's
    (or debursted) azimuth time grid, columns through the GRD slant-to-ground range polynomials
    or the SLC range sampling."""
    orbit, _ = load_orbit(product, image, orbit_path)  # times relative to this image's first line
    if image.projection == "Ground Range":
        col_of = geocoding.GrdRange(image.coordinate_conversion, image.first_line_time, image.range_pixel_spacing)
    else:
        fs, tau0 = image.range_sampling_rate, image.slant_range_time

        def col_of(t, tau):
            return (tau - tau0) * fs
    return geocoding.RangeDopplerModel(orbit, t_row0, interval, col_of)


def dem_fill_height(params) -> float | None:
    """Ellipsoidal height given to output pixels the DEM does not cover; None: refuse them."""
    return {"error": None, "geoid": float(params.dem_geoid_height), "ellipsoid": 0.0}[params.dem_outside]


def check_dem_coverage(params, grid, footprint_lonlat, aoi) -> float | None:
    """Before any work: refuse a DEM that leaves part of the output area without heights (unless
    ``dem_outside`` names a fill height, returned)."""
    if not params.dem:
        return None
    fill = dem_fill_height(params)
    area = footprint_lonlat if aoi is None else footprint_lonlat.intersection(lonlat_beside(aoi, footprint_lonlat))
    share = geocoding.dem_uncovered_share(params.dem, grid, area)
    if share > 0 and fill is None:
        raise ServiceError(f"DEM file {Path(params.dem).name} does not cover {_percent(share)} of the output area "
                           f"(outside the DEM or its NoData): give a DEM that covers it, or --dem_outside geoid or "
                           f"ellipsoid to geocode those pixels at that height")
    if share > 0:
        log.warning("DEM file %s does not cover %s of the output area: those pixels are geocoded at %s height "
                    "(%.1f m above the ellipsoid)", Path(params.dem).name, _percent(share), params.dem_outside, fill)
    return fill


def _percent(share: float) -> str:
    return f"{100 * share:.1f} %" if share >= 0.001 else "less than 0.1 %"


def _dem_height_range(dem: str, geoid: float, fill: float | None = None) -> tuple[float, float]:
    """The span of the DEM's heights (ellipsoidal, metres) that the inverse map interpolates over."""
    from components.common.landmask import dem_height_spec

    with open_raster(dem, f"DEM file {Path(dem).name}") as src:
        spec = dem_height_spec(src.dataset, Path(dem).name)
        data = src.read(1, out_shape=(min(src.height, 512), min(src.width, 512)))
    # voids, NaN or +-inf (a corrupt float DEM without a NoData value) are no heights: one inf
    # would make the span infinite and every output pixel invalid
    data = spec.masked(data)
    if not np.isfinite(data).any():
        return 0.0, 1000.0
    lo, hi = float(np.nanmin(data)) + geoid, float(np.nanmax(data)) + geoid
    if fill is not None:
        lo, hi = min(lo, fill), max(hi, fill)
    return (lo, hi) if hi - lo > 1 else (lo, lo + 100.0)


def geocode(sources: list[Source], grid, dst: Path, *, db: bool, aoi: AoI | None, landsea, dem, dem_geoid_height,
            band: str, dem_fill: float | None = None) -> dict:
    """Sample the sources tile by tile onto ``grid`` and write a float32 GeoTIFF (NoData -9999).
    Output pixels without a DEM height get ``dem_fill``; with None, any such valid pixel is an
    error (the coverage check before the work samples the grid coarsely: a small hole can pass it)."""
    profile = {"driver": "GTiff", "width": grid.cols, "height": grid.rows, "count": 1, "dtype": "float32",
               "crs": grid.crs, "transform": grid.transform, "nodata": NODATA, "tiled": True, "blockxsize": 512,
               "blockysize": 512, "BIGTIFF": "IF_SAFER", "compress": "ZSTD", "zstd_level": 1}
    tiles = [(r, c) for r in range(0, grid.rows, TILE) for c in range(0, grid.cols, TILE)]
    progress = Progress(len(tiles), "geocode tiles")
    counts = {"pixels": 0, "valid": 0, "dem_filled": 0}
    values_sum = 0.0
    handles = [rasterio.open(s.raster.path) for s in sources]
    try:
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS", GDAL_CACHEMAX=512), rasterio.open(dst, "w", **profile) as out:
            for r0, c0 in tiles:
                h, w = min(TILE, grid.rows - r0), min(TILE, grid.cols - c0)
                inside = np.ones((h, w), bool) if aoi is None else aoi_mask(aoi, grid.crs, grid.transform,
                                                                            grid.shape, window=(r0, c0, h, w))
                data = np.full((h, w), np.nan)
                heights = None
                covered = any(s.inverse.may_cover(r0, c0, h, w, s.raster.rows, s.raster.cols) for s in sources)
                if dem and inside.any() and covered:
                    heights = geocoding.read_dem(dem, grid, r0, c0, h, w, dem_geoid_height)
                    holes = ~np.isfinite(heights)
                    heights[holes] = 0.0 if dem_fill is None else dem_fill
                for src, ds in zip(sources, handles):
                    if not inside.any():
                        break
                    if not src.inverse.may_cover(r0, c0, h, w, src.raster.rows, src.raster.cols):
                        continue
                    rows, cols = src.inverse.window(r0, c0, h, w, dem=heights)
                    need = np.isnan(data) & inside & (rows > -1) & (cols > -1) & \
                        (rows < src.raster.rows) & (cols < src.raster.cols)
                    if not need.any():
                        continue
                    a0 = max(0, int(np.floor(rows[need].min())) - 1)
                    a1 = min(src.raster.rows, int(np.ceil(rows[need].max())) + 2)
                    b0 = max(0, int(np.floor(cols[need].min())) - 1)
                    b1 = min(src.raster.cols, int(np.ceil(cols[need].max())) + 2)
                    window = ds.read(1, window=Window(b0, a0, b1 - b0, a1 - a0)).astype(np.float64)
                    rr = np.where(need, rows - a0, -1.0)
                    cc = np.where(need, cols - b0, -1.0)
                    sampled = geocoding.sample_bilinear(window, rr, cc)
                    if src.flattening is not None:
                        sampled = sampled / src.flattening.at(r0, c0, rows * src.raster.looks[0] + src.raster.row0,
                                                              heights)
                    data = np.where(need & np.isfinite(sampled), sampled, data)
                if landsea is not None:
                    data[landsea.remove(r0, c0, h, w)] = np.nan
                data[~inside] = np.nan
                ok = np.isfinite(data)
                if heights is not None:
                    counts["dem_filled"] += int((holes & ok).sum())
                if db:
                    data[ok] = 10.0 * np.log10(np.maximum(data[ok], DB_FLOOR))
                counts["pixels"] += int(inside.sum())
                counts["valid"] += int(ok.sum())
                values_sum += float(data[ok].sum())
                out.write(np.where(ok, data, NODATA).astype(np.float32), 1, window=Window(c0, r0, w, h))
                progress.advance()
            out.set_band_description(1, band)
            out.set_band_unit(1, "dB" if db else "linear")  # GDAL's unit field: what gdalinfo and QGIS show
    finally:
        for ds in handles:
            ds.close()
    if dem and counts["dem_filled"] and dem_fill is None:
        raise ServiceError(f"DEM file {Path(dem).name} has no height for {counts['dem_filled']} output pixels "
                           f"(NoData or outside it): give a DEM that covers them, or --dem_outside geoid or ellipsoid "
                           f"to geocode them at that height")
    filled = {} if not dem else {"dem_filled_percent": round(100.0 * counts["dem_filled"] / max(counts["valid"], 1), 3)}
    return {**filled, "valid_percent": round(100.0 * counts["valid"] / max(counts["pixels"], 1), 3),
            "valid_pixels": counts["valid"], "pixels": counts["pixels"],
            "mean_value": round(values_sum / counts["valid"], 6) if counts["valid"] else None}


def publish_product(service, product: S1Product, params, assembled: Path, driver, ext, stage: Path, stem: str,
                    metrics: dict, inputs: list[dict], outdir: str, started, steps: Steps, extra=None,
                    description: str | None = None) -> S1Result:
    """Write the main product, quicklook, STAC item and run.json into ``stage`` and publish."""
    main = stage / f"{stem}{ext}"
    with steps.step(f"write {driver}"):
        outputs.write_product(assembled, main, driver)
    with steps.step("quicklook and STAC item"):
        ql = outputs.quicklook(main if driver == "COG" else assembled, stage / f"{stem}_quicklook.png",
                               aoi=load_aoi(params.aoi) if getattr(params, "aoi", None) else None)
        item = stac_item(service, product, params, main, assembled, ql, metrics, inputs, outdir,
                         (extra or {}).get("polarization"), description)
    record = outputs.run_record(service, __version__, {**params.as_dict(), **(extra or {})}, inputs,
                                {"product": main.name, "stac": f"{stem}.json", "quicklook": ql.name,
                                 "metrics": metrics}, steps.timings, started)
    outputs.write_json(stage / "run.json", record)
    stac.write_item(item, stage / f"{stem}.json")  # last: it carries the size and checksum of run.json
    with steps.step("publish"):
        published = storage.publish(stage, outdir, move=True)
    by_name = {Path(p).name: p for p in published}
    return S1Result(by_name[main.name], by_name[f"{stem}.json"], by_name[ql.name], by_name["run.json"], metrics)


def stac_item(service: str, product: S1Product, params, main: Path, assembled: Path, ql: Path, metrics: dict,
              inputs: list[dict], outdir: str, polarization: str | None, description=None):
    with rasterio.open(assembled) as ds:
        band_name = ds.descriptions[0] or "backscatter"
        units = ds.units[0] or ""
    band = stac.Band(band_name, description or f"calibrated backscatter ({units})", NODATA, unit=units or None)
    item = stac.raster_item(main.stem, assembled, main.name, product.sensing_time, [band],
                            properties={"gsd": metrics.get("resolution_m"), "valid_percent": metrics["valid_percent"],
                                        **{k: metrics[k] for k in ("dem_outside", "dem_filled_percent") if k in metrics}})
    stac.add_sentinel1(item, mission=product.mission, mode=product.mode, product_type=product.product_type,
                       polarizations=[polarization] if polarization else product.polarisations,
                       relative_orbit=product.relative_orbit, absolute_orbit=product.absolute_orbit,
                       orbit_state=product.orbit_pass)
    stac.add_processing(item, lineage=f"{service}: {params.calibration} calibration, speckle filter "
                                      f"{metrics.get('speckle_filter')}, {metrics.get('geocoding')}")
    stac.add_sidecars(item, ql.name)
    stac.add_links(item, stac.location(outdir, f"{main.stem}.json"), [(i["uri"], i.get("id")) for i in inputs])
    return item


# -- SNAP engine -------------------------------------------------------------------------------

def _snap(service, kind, product, params, input_uri, local_input, outdir, stage: Path, stem, resolution, started,
          steps) -> S1Result | "GraphResult":
    output = str(Path(outdir) / stem) if not storage.is_s3(outdir) else stem
    if kind == "GRD":
        graph = snap_graphs.grd_graph(params, str(Path(local_input).resolve()), output, resolution)
    else:
        image = product.image(product.swaths(params.polarization.upper())[0], params.polarization.upper())
        graph = snap_graphs.slc_graph(params, str(Path(local_input).resolve()), output, resolution, product.mode,
                                      looks_for(image, resolution))
    graph_file = stage / f"{stem}_graph.xml"
    graph_file.write_text(graph.to_xml())
    if not params.graph_only:
        with steps.step("SNAP gpt"):
            snap_graphs.run_gpt(graph_file)
    record = outputs.run_record(service, __version__, params.as_dict(),
                                [{"uri": input_uri, "id": product.name, "type": product.product_type}],
                                {"graph": graph_file.name, "operators": graph.operators()}, steps.timings, started)
    outputs.write_json(stage / "run.json", record)
    published = storage.publish(stage, outdir, move=True)
    by_name = {Path(p).name: p for p in published}
    return GraphResult(by_name[graph_file.name], by_name["run.json"])


@dataclass
class GraphResult:
    """What ``--engine snap --graph_only true`` wrote: the gpt graph and run.json."""

    graph: str
    run_record: str
    metrics: dict = field(default_factory=dict)
