"""Writing products and their sidecars: Cloud Optimized GeoTIFF (or another GDAL format),
quicklook PNG, STAC item and run.json. Files are written under a temporary name in the same
folder and renamed at the end, so a failed run leaves nothing half-written."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import uuid
from pathlib import Path

import numpy as np

from .errors import ServiceError

# ZSTD level 1 with the horizontal predictor: about the size of DEFLATE level 6 on reflectance
# bands, written three times faster (measured on a full 10 m tile; see bench/s2_preprocess.py).
COG_OPTIONS = {"COMPRESS": "ZSTD", "LEVEL": "1", "PREDICTOR": "YES", "BLOCKSIZE": "512",
               "OVERVIEWS": "AUTO", "RESAMPLING": "AVERAGE", "NUM_THREADS": "ALL_CPUS", "BIGTIFF": "IF_SAFER"}
# Names users give for the default format; all mean a Cloud Optimized GeoTIFF.
COG_NAMES = ("geotiff", "cog", "gtiff", "tif", "tiff")
STAC_VERSION = "1.1.0"
PROJECTION_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"


@contextlib.contextmanager
def atomic_path(final: Path):
    """Yield a temporary path next to ``final``; rename it into place only on success."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, data: dict) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return Path(path)


def resolve_format(name: str) -> tuple[str, str]:
    """(GDAL driver, file extension) for an output_format value; COG for the GeoTIFF names."""
    import rasterio
    from rasterio.drivers import raster_driver_extensions

    from .errors import InvalidParameter

    if name.strip().lower() in COG_NAMES:
        return "COG", ".tif"
    with rasterio.Env() as env:
        drivers = env.drivers()
    match = [d for d in drivers if d.lower() == name.strip().lower()]
    if not match:
        raise InvalidParameter("output_format", name, "GeoTIFF or a GDAL raster driver name such as "
                               "ENVI, netCDF, JP2OpenJPEG, HFA")
    driver = match[0]
    ext = {v: k for k, v in raster_driver_extensions().items()}.get(driver, "img")
    return driver, "." + ext


def write_product(src: Path, dst: Path, driver: str) -> Path:
    """Copy the assembled raster ``src`` into its final format at ``dst``. The driver writes into
    a temporary folder beside ``dst`` (drivers add sidecars such as .hdr or .aux.xml), whose files
    are renamed into place only once all are written."""
    import rasterio
    import rasterio.shutil

    options = COG_OPTIONS if driver == "COG" else {}
    tmp = dst.parent / f".{dst.name}.{uuid.uuid4().hex[:8]}.part"
    tmp.mkdir()
    try:
        try:
            with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
                rasterio.shutil.copy(src, tmp / dst.name, driver=driver, **options)
        except rasterio.errors.RasterioError as e:
            raise ServiceError(f"GDAL driver {driver} cannot write this product: {' '.join(str(e).split())}") from None
        for f in tmp.iterdir():
            os.replace(f, dst.parent / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def quicklook(src: Path, png: Path, rgb: tuple[int, int, int] | None = None, max_size: int = 1024) -> Path:
    """An RGBA PNG (NoData transparent), 2-98 % stretch per channel, at most ``max_size`` px."""
    import rasterio
    from PIL import Image

    with rasterio.open(src) as ds:
        scale = max(ds.width, ds.height) / max_size
        shape = (max(1, round(ds.height / max(scale, 1))), max(1, round(ds.width / max(scale, 1))))
        bands = list(rgb) if rgb else [1]
        data = ds.read(bands, out_shape=(len(bands), *shape), resampling=rasterio.enums.Resampling.nearest)
        nodata = ds.nodata
    valid = np.all(data != nodata, axis=0) if nodata is not None else np.ones(shape, bool)
    out = np.zeros((*shape, 4), np.uint8)
    for i, channel in enumerate(data if len(bands) == 3 else [data[0]] * 3):
        v = channel[valid].astype(np.float64)
        lo, hi = (np.percentile(v, [2, 98]) if v.size else (0.0, 1.0))
        out[..., i] = np.clip((channel - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)
    out[..., 3] = np.where(valid, 255, 0)
    with atomic_path(png) as tmp:
        Image.fromarray(out, "RGBA").save(tmp, format="PNG")
    return png


def stac_item(item_id: str, product: Path, datetime: dt.datetime, properties: dict,
              band_info: list[dict], assets: dict[str, dict]) -> dict:
    """A STAC 1.1 item for a raster product: geometry from its bounds, projection fields,
    per-band nodata/scale/offset (STAC 1.1 common band metadata)."""
    import rasterio
    from rasterio.warp import transform_geom
    from shapely.geometry import box, mapping, shape

    with rasterio.open(product) as ds:
        geom = transform_geom(ds.crs, "EPSG:4326", mapping(box(*ds.bounds)), antimeridian_cutting=True)
        epsg = ds.crs.to_epsg()
        proj = {"proj:code": f"EPSG:{epsg}" if epsg else None, "proj:shape": [ds.height, ds.width],
                "proj:transform": list(ds.transform)[:6]}
        if not epsg:
            proj["proj:wkt2"] = ds.crs.to_wkt()
        dtype = ds.dtypes[0]
    data_asset = {"href": product.name, "roles": ["data"],
                  "type": "image/tiff; application=geotiff; profile=cloud-optimized"
                  if product.suffix == ".tif" else "application/octet-stream",
                  "bands": [dict(b, data_type=dtype) for b in band_info]}
    return {
        "type": "Feature", "stac_version": STAC_VERSION, "stac_extensions": [PROJECTION_EXT],
        "id": item_id, "geometry": geom, "bbox": list(shape(geom).bounds),
        "properties": {"datetime": datetime.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
                       **proj, **properties},
        "links": [], "assets": {"data": data_asset, **assets},
    }


def run_record(service: str, version: str, params: dict, inputs: list[dict], outputs: dict,
               timings: dict, started: dt.datetime) -> dict:
    """The content of run.json: what ran, on what, with which resolved parameters, how long."""
    return {
        "service": service, "version": version, "params": params, "inputs": inputs, "outputs": outputs,
        "timings_s": timings, "started": started.isoformat(),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(),
        "python": platform.python_version(),
    }
