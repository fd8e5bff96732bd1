"""Writing products and their sidecars: Cloud Optimized GeoTIFF (or another GDAL format) with
the band names, units and wavelengths in GDAL's own fields and a class map's names as GDAL
categories, quicklook PNG with a legend, and run.json (STAC items: stac.py). Files are written
under a temporary name in the same folder and renamed at the end, so a failed run leaves nothing
half-written.

Also where a run writes and how a write can fail: the output folder (:func:`output_folder`),
the temporary work folder beside it (:func:`work_folder`), the pre-flight check of the output
size (:func:`check_output_size`), and a failed write as one line naming the file
(:func:`write_failure`): a full disk, a quota or a file-size limit is an
:class:`~.errors.EnvironmentFailure` (exit status 3), whether Python or GDAL met it."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import platform
import re
import resource
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from .contract import checkpoint
from .errors import EnvironmentFailure, ServiceError, from_os_error

log = logging.getLogger(__name__)

# ZSTD level 1 with the horizontal predictor: about the size of DEFLATE level 6 on reflectance
# bands, written three times faster (measured on a full 10 m tile; see bench/s2_preprocess.py).
COG_OPTIONS = {"COMPRESS": "ZSTD", "LEVEL": "1", "PREDICTOR": "YES", "BLOCKSIZE": "512",
               "OVERVIEWS": "AUTO", "RESAMPLING": "AVERAGE", "NUM_THREADS": "ALL_CPUS", "BIGTIFF": "IF_SAFER"}
# Names users give for the default format; all mean a Cloud Optimized GeoTIFF.
COG_NAMES = ("geotiff", "cog", "gtiff", "tif", "tiff")
# drivers whose "file" is memory, or points at the files it was made from (gone after the run)
NOT_A_FILE = ("MEM", "Memory", "VRT")


# ------------------------------------------------------------------------------------------
# Where a run writes, and how a write fails

# A grid larger than this per band is refused before any work: a 31 600 px square, a whole
# Sentinel-2 tile at 3.5 m, a whole Sentinel-1 IW scene at 10 m in lon/lat (0.7 Gpx).
MAX_GRID_PIXELS = 1_000_000_000

# The machine's reasons for a failed write. EFBIG (a file larger than the filesystem or the
# process's file-size limit, ``ulimit -f``, allow) is the contract's full disk in another form.
WRITE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                errno.EFBIG: "file too large: the filesystem's or the process's file-size limit (ulimit -f) "
                             "is reached", errno.EIO: "input/output error"}
# GDAL names them in its messages ...
_GDAL_FREE_SPACE = re.compile(r"free disk space available is (\d+) bytes, whereas (\d+) are at least necessary")
_GDAL_REASONS = (("no space left on device", errno.ENOSPC),
                 ("disk quota exceeded", errno.EDQUOT), ("file too large", errno.EFBIG),
                 ("input/output error", errno.EIO))
# ... except when its writer thread met them: then only these say a write failed
_GDAL_WRITE_FAILED = ("write failed", "write error", "_tiffwriteproc", "failed to write", "cannot write",
                      "error while writing", "short write")
# a write that fails with less than this left on the device failed for want of space
LOW_SPACE_BYTES = 64 * 2 ** 20


def _size(nbytes: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


def _messages(exc: BaseException) -> list[str]:
    """The messages of ``exc`` and of the exceptions it was raised from (GDAL's first error
    often sits in the cause: "Write failed. See previous exception for details.")."""
    found, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        found.append(" ".join(str(exc).split()))
        exc = exc.__cause__ or exc.__context__
    return found


def _is_gdal(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("rasterio")


def _diagnose(target: Path) -> int | None:
    """Why a write under ``target`` failed when GDAL does not say: ask the filesystem."""
    folder = target if target.is_dir() else target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    with contextlib.suppress(OSError):
        if shutil.disk_usage(folder).free < LOW_SPACE_BYTES:
            return errno.ENOSPC
    if resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY:
        return errno.EFBIG
    return None


def _is_under(path: str | os.PathLike, folder: Path) -> bool:
    try:
        return Path(path).absolute().is_relative_to(folder.absolute())
    except (TypeError, ValueError):
        return False


def _is_temporary_of(path: Path, target: Path) -> bool:
    """True for the temporary names :func:`atomic_path` and :func:`write_product` write ``target``
    under (``.<name>.<random>.part`` beside it, or a file in such a folder)."""
    if target.is_dir() or not _is_under(path, target.parent):
        return False
    parts = path.absolute().relative_to(target.parent.absolute()).parts
    return bool(parts) and parts[0].startswith(f".{target.name}.")


def _os_failure(exc: OSError, path: Path) -> ServiceError:
    doing = f"writing {path}" if exc.errno != errno.EIO else str(path)  # EIO: a read, maybe
    if exc.errno in WRITE_ERRNOS:
        return EnvironmentFailure(f"{doing}: {WRITE_ERRNOS[exc.errno]}")
    return from_os_error(exc, doing)


def write_failure(exc: BaseException, target: Path | str) -> ServiceError | None:
    """The one-line failure for ``exc`` met while writing ``target`` (a file, or a folder being
    written in), or None when ``exc`` is not a failed write (it then keeps its own handling).

    - a full disk, a quota, a file-size limit or a device error, from Python (the ``OSError``'s
      number) or from GDAL (its message, else the free space and the limits of the process):
      :class:`EnvironmentFailure`, naming the file;
    - another ``OSError`` on the file ``target`` itself or its temporary name (permission
      refused, read-only filesystem): :class:`ServiceError` naming it;
    - anything else, a reader's error on an input included (also one in a work folder given as
      ``target``): None.
    """
    if isinstance(exc, ServiceError):
        return None
    target = Path(target)
    if isinstance(exc, OSError) and not _is_gdal(exc):
        if exc.errno is None:
            return None
        where = Path(os.fspath(exc.filename)) if exc.filename else target
        if _is_temporary_of(where, target):
            where = target
        if exc.errno in WRITE_ERRNOS or where == target:
            return _os_failure(exc, where)
        return None
    if not _is_gdal(exc):
        return None
    doing = f"writing in {target}" if target.is_dir() else f"writing {target}"
    messages = _messages(exc)
    text = " ".join(messages).lower()
    checked = _GDAL_FREE_SPACE.search(text)
    if checked:  # GDAL's own check of the free space before it creates a raster
        free, need = (int(v) for v in checked.groups())
        return EnvironmentFailure(f"{doing}: not enough free space on the device (GDAL: about {_size(need)} "
                                  f"needed, {_size(free)} free)")
    for words, number in _GDAL_REASONS:
        if words in text:
            return EnvironmentFailure(f"{doing}: {WRITE_ERRNOS[number]}")
    if any(words in text for words in _GDAL_WRITE_FAILED):
        number = _diagnose(target)
        reason = WRITE_ERRNOS[number] if number else f"GDAL: {messages[-1]}"
        return EnvironmentFailure(f"{doing} failed: {reason}")
    return None


@contextlib.contextmanager
def writing(target: Path | str) -> Iterator[None]:
    """Within the block, a failed write of ``target`` ends the run with one line naming it
    (:func:`write_failure`); any other exception goes on unchanged."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - sorted by write_failure; the rest re-raised
        failure = write_failure(exc, target)
        if failure is None:
            raise
        raise failure from None


@contextlib.contextmanager
def work_folder(parent: Path | None, prefix: str) -> Iterator[Path]:
    """A temporary work folder in ``parent`` (the output folder, so that publishing the products
    is a rename; the system's temporary folder for None), removed when the block ends however it
    ends: a failure, or SIGTERM/SIGINT raising :class:`~.errors.Interrupted`. A write that fails
    in the block for the machine's reasons ends the run with one line (:func:`write_failure`)."""
    try:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as exc:
        raise from_os_error(exc, f"cannot create a work folder in {parent or tempfile.gettempdir()}") from None
    try:
        with writing(path):
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def check_output_size(rows: int, cols: int, bytes_per_pixel: int, folder: Path, *, parameter: str, value,
                      extra_bytes: int = 0) -> None:
    """Before any work: refuse a grid of more than :data:`MAX_GRID_PIXELS` per band
    (:class:`ServiceError`), and an output that does not fit in the free space of ``folder``, the
    work folder (:class:`EnvironmentFailure`). ``bytes_per_pixel`` counts every full-size raster
    the run holds at once, each uncompressed (the temporary assembled raster and the product:
    a 4-band uint16 product is 2 x 4 x 2 bytes), ``extra_bytes`` other temporary files. Both
    lines name the parameter that set the grid (``--resolution 1``)."""
    flag = f"--{parameter} {value:g}" if isinstance(value, (int, float)) else f"--{parameter} {value}"
    pixels = rows * cols
    if pixels > MAX_GRID_PIXELS:
        raise ServiceError(f"{flag} gives an output grid of {cols} x {rows} px ({pixels / 1e6:.0f} Mpx per band), "
                           f"more than the {MAX_GRID_PIXELS / 1e6:.0f} Mpx a product may have: choose a coarser "
                           f"{parameter} or a smaller AoI")
    need = pixels * bytes_per_pixel + extra_bytes
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise from_os_error(exc, f"cannot read the free space of {folder}") from None
    if need > free:
        raise EnvironmentFailure(
            f"not enough free space in {folder} for the output at {flag}: about {_size(need)} needed "
            f"({cols} x {rows} px, {bytes_per_pixel} bytes a pixel over the temporary rasters and the product), "
            f"{_size(free)} free; choose a coarser {parameter}, a smaller AoI, or give the run more disk")
    log.debug("output grid %d x %d px: about %s needed, %s free in %s", cols, rows, _size(need), _size(free), folder)


def check_valid(metrics: dict, minimum: float, what: str) -> None:
    """A product with no valid pixel is logged as a WARNING; one with a smaller valid percentage
    than ``minimum`` (``--min_valid_percent``; 0 accepts any) is refused (:class:`ServiceError`)
    before it is written."""
    valid = metrics.get("valid_percent", 0.0)
    if not metrics.get("valid_pixels"):
        log.warning("%s: the product has no valid pixel (every pixel is NoData: outside the footprint or "
                    "the AoI, masked, or without data)", what)
    if valid < minimum:
        raise ServiceError(f"{what}: {valid:g} % of the pixels are valid, below --min_valid_percent {minimum:g}: "
                           "no product written")


@contextlib.contextmanager
def atomic_path(final: Path):
    """Yield a temporary path next to ``final``; rename it into place only on success. A write
    that fails there (full disk, permissions) is one line naming ``final``."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        try:
            yield tmp
            checkpoint()  # a stop that came during the write: the file is not put in place
            os.replace(tmp, final)
        except Exception as exc:  # noqa: BLE001 - failed writes sorted out; the rest re-raised
            if isinstance(exc, OSError) and not _is_gdal(exc) and exc.errno is not None \
                    and (exc.filename is None or os.fspath(exc.filename) in (str(tmp), str(final))):
                raise _os_failure(exc, final) from None
            failure = write_failure(exc, final)
            if failure is None:
                raise
            raise failure from None
    finally:
        if tmp.exists():
            tmp.unlink()


def json_safe(value):
    """``value`` with every NaN or infinity (which JSON cannot hold) replaced by None."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


def write_json(path: Path, data: dict) -> Path:
    """``data`` as strict JSON (NaN and infinities as null: Python's NaN token is no JSON)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(json_safe(data), indent=2, default=str, allow_nan=False) + "\n")
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
    if driver in NOT_A_FILE:
        raise InvalidParameter("output_format", name, "a GDAL driver that writes a file of its own, such as "
                               "GeoTIFF, ENVI, netCDF, JP2OpenJPEG, HFA")
    ext = {v: k for k, v in raster_driver_extensions().items()}.get(driver, "img")
    return driver, "." + ext


def write_product(src: Path, dst: Path, driver: str, *, bands: Sequence | None = None,
                  classes: Iterable | None = None, fwhm_um: Mapping[str, float] | None = None) -> Path:
    """Copy the assembled raster ``src`` into its final format at ``dst``. The driver writes into
    a temporary folder beside ``dst`` (drivers add sidecars such as .hdr or .aux.xml), whose files
    are renamed into place only once all are written.

    ``bands`` (:class:`~.stac.Band`, the facts the STAC item lists) are first written into GDAL's
    band fields of ``src`` (:func:`describe_bands`); ``classes`` (:class:`~.stac.Class`) of a
    single-band class map become its category names and attribute table (:func:`write_categories`:
    the ``.aux.xml`` sidecar of ``dst``, which then travels with it)."""
    import rasterio
    import rasterio.shutil
    from rasterio._err import CPLE_BaseError

    if bands:
        describe_bands(src, bands, fwhm_um=fwhm_um)

    options = COG_OPTIONS if driver == "COG" else {}
    tmp = dst.parent / f".{dst.name}.{uuid.uuid4().hex[:8]}.part"
    try:
        with writing(dst):
            tmp.mkdir()
            try:
                with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
                    rasterio.shutil.copy(src, tmp / dst.name, driver=driver, **options)
            except (rasterio.errors.RasterioError, CPLE_BaseError) as e:
                if write_failure(e, dst) is not None:
                    raise
                raise ServiceError(f"GDAL driver {driver} cannot write this product: "
                                   f"{' '.join(str(e).split())}") from None
            if not (tmp / dst.name).is_file():
                raise ServiceError(f"GDAL driver {driver} cannot write this product: it wrote no file {dst.name}")
            if classes is not None:
                write_categories(tmp / dst.name, classes)
            checkpoint()  # a stop that came during the write: the product is not put in place
            for f in tmp.iterdir():
                os.replace(f, dst.parent / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


# ------------------------------------------------------------------------------------------
# What GDAL users see: band fields, category names, quicklooks

# GDAL's standard band metadata for the spectral position of a band (GDAL >= 3.10, "IMAGERY"
# domain); QGIS and gdalinfo read it, a custom tag they do not.
IMAGERY_DOMAIN = "IMAGERY"


def describe_bands(path: Path, bands: Sequence, *, fwhm_um: Mapping[str, float] | None = None) -> None:
    """Write the facts of ``bands`` (:class:`~.stac.Band`: name, unit, centre wavelength in um)
    into GDAL's own fields of the raster ``path``: the band description (the band's name, which
    readers match bands by), the unit type, and ``CENTRAL_WAVELENGTH_UM`` / ``FWHM_UM`` (from
    ``fwhm_um``, by band name) in the ``IMAGERY`` domain."""
    import rasterio

    with rasterio.open(path, "r+") as ds:
        describe_dataset(ds, bands, fwhm_um=fwhm_um)


def describe_dataset(ds, bands: Sequence, *, fwhm_um: Mapping[str, float] | None = None) -> None:
    """:func:`describe_bands` on a dataset open for writing."""
    for i, band in enumerate(bands, start=1):
        ds.set_band_description(i, band.name)
        if band.unit:
            ds.set_band_unit(i, band.unit)
        imagery = {}
        if band.center_wavelength:
            imagery["CENTRAL_WAVELENGTH_UM"] = f"{band.center_wavelength:g}"
        if fwhm_um and band.name in fwhm_um:
            imagery["FWHM_UM"] = f"{fwhm_um[band.name]:g}"
        if imagery:
            ds.update_tags(i, ns=IMAGERY_DOMAIN, **imagery)


def category_label(cls) -> str:
    """The name of a class as people read it (``no_change`` -> ``no change``)."""
    return cls.name.replace("_", " ").strip()


# Raster attribute table columns: (name, GDAL field type, GDAL field usage). Types: 0 integer,
# 2 string; usages: 0 generic, 2 name, 5 min-max (the pixel value), 6-9 red, green, blue, alpha.
_RAT_COLUMNS = (("Value", 0, 5), ("Class_Name", 2, 2), ("Description", 2, 0), ("Red", 0, 6), ("Green", 0, 7),
                ("Blue", 0, 8), ("Alpha", 0, 9))


def write_categories(path: Path, classes: Iterable, band: int = 1) -> Path:
    """The classes of a class map (:class:`~.stac.Class`) as GDAL's category names and a
    thematic raster attribute table of ``band``. GeoTIFF (and so COG) cannot hold either in the
    file: GDAL keeps them in the PAM sidecar ``<path>.aux.xml``, where gdalinfo and QGIS read
    them. Other content of an existing sidecar is kept. Returns the sidecar's path."""
    import xml.etree.ElementTree as ET

    classes = sorted(classes, key=lambda c: c.value)
    sidecar = Path(f"{path}.aux.xml")
    root = ET.parse(sidecar).getroot() if sidecar.exists() else ET.Element("PAMDataset")
    node = next((b for b in root.findall("PAMRasterBand") if b.get("band") == str(band)), None)
    if node is None:
        node = ET.SubElement(root, "PAMRasterBand", band=str(band))
    for old in node.findall("CategoryNames") + node.findall("GDALRasterAttributeTable"):
        node.remove(old)
    # category names are indexed by pixel value: values without a class get an empty name
    names = {c.value: category_label(c) for c in classes}
    categories = ET.SubElement(node, "CategoryNames")
    for value in range(max(names, default=-1) + 1):
        ET.SubElement(categories, "Category").text = names.get(value, "")
    table = ET.SubElement(node, "GDALRasterAttributeTable", tableType="thematic")
    for i, (name, kind, usage) in enumerate(_RAT_COLUMNS):
        field = ET.SubElement(table, "FieldDefn", index=str(i))
        ET.SubElement(field, "Name").text = name
        ET.SubElement(field, "Type").text = str(kind)
        ET.SubElement(field, "Usage").text = str(usage)
    for row, c in enumerate(classes):
        rgba = (0, 0, 0, 0) if c.nodata else _class_rgba(c, None)  # as the colour tables: NoData transparent
        values = (c.value, category_label(c), c.description or "", *rgba)
        element = ET.SubElement(table, "Row", index=str(row))
        for v in values:
            ET.SubElement(element, "F").text = str(v)
    ET.indent(root)
    with atomic_path(sidecar) as tmp:
        ET.ElementTree(root).write(tmp, encoding="UTF-8")
    return sidecar


# Why a pixel of a product holds no value, as the quicklooks draw it. Services that know more
# than NoData write a uint8 raster of these codes on the product's grid (0: a value).
NO_DATA, CLOUD, OUTSIDE_AOI, MASKED_SEA = 1, 2, 3, 4
MASK_STYLES = {NO_DATA: ("no data", (120, 120, 120, 255)),
               CLOUD: ("cloud masked", (205, 235, 255, 255)),
               OUTSIDE_AOI: ("outside the AoI (transparent)", (0, 0, 0, 0)),
               MASKED_SEA: ("land/sea mask", (25, 50, 120, 255))}
NODATA_CLASS_RGBA = MASK_STYLES[NO_DATA][1]


def _class_rgba(cls, palette: dict | None) -> tuple[int, int, int, int]:
    if cls.nodata:
        return NODATA_CLASS_RGBA
    if cls.color:
        return (*cls.color[:3], 255)
    if palette and cls.value in palette:
        return tuple(palette[cls.value])
    return (128, 128, 128, 255)


def _quicklook_grid(ds, max_size: int):
    """The shape and transform of a quicklook of ``ds`` at most ``max_size`` px."""
    scale = max(ds.width, ds.height) / max_size
    shape = (max(1, round(ds.height / max(scale, 1))), max(1, round(ds.width / max(scale, 1))))
    transform = ds.transform @ ds.transform.scale(ds.width / shape[1], ds.height / shape[0])
    return shape, transform


def _reasons(ds, shape, transform, invalid: np.ndarray, reasons: Path | None, aoi) -> np.ndarray:
    """The mask code of each quicklook pixel (0 where the product has a value): NoData, unless
    the reasons raster or the AoI says why."""
    import rasterio
    from rasterio.vrt import WarpedVRT

    why = np.where(invalid, NO_DATA, 0).astype(np.uint8)
    if reasons is not None:
        with rasterio.open(reasons) as rs, WarpedVRT(rs, crs=ds.crs, transform=ds.transform, width=ds.width,
                                                     height=ds.height, resampling=rasterio.enums.Resampling.nearest,
                                                     nodata=None) as vrt:
            codes = vrt.read(1, out_shape=shape, resampling=rasterio.enums.Resampling.nearest)
        why = np.where(invalid & np.isin(codes, list(MASK_STYLES)), codes, why).astype(np.uint8)
    if aoi is not None:
        from .aoi import aoi_mask

        why[invalid & ~aoi_mask(aoi, ds.crs, transform, shape)] = OUTSIDE_AOI
    return why


def _legend(image: np.ndarray, entries: list[tuple[str, tuple[int, int, int, int]]]):
    """``image`` (RGBA) with a legend on its right: a swatch and a label per entry (a
    transparent swatch drawn as an empty frame)."""
    from PIL import Image, ImageDraw, ImageFont

    picture = Image.fromarray(image, "RGBA")
    if not entries:
        return picture
    font = ImageFont.load_default()
    pad, row, swatch = 6, 16, 12
    probe = ImageDraw.Draw(picture)
    text_w = max(int(probe.textlength(label, font=font)) for label, _ in entries)
    width, height = pad * 3 + swatch + text_w, pad * 2 + row * len(entries)
    canvas = Image.new("RGBA", (picture.width + width, max(picture.height, height)), (0, 0, 0, 0))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0 = picture.width
    draw.rectangle((x0, 0, x0 + width - 1, height - 1), fill=(255, 255, 255, 255))
    for i, (label, rgba) in enumerate(entries):
        y = pad + i * row
        box = (x0 + pad, y, x0 + pad + swatch, y + swatch)
        draw.rectangle(box, fill=rgba if rgba[3] else (255, 255, 255, 255), outline=(0, 0, 0, 255))
        if not rgba[3]:  # a crossed frame stands for transparent
            draw.line(box, fill=(0, 0, 0, 255))
            draw.line((box[0], box[3], box[2], box[1]), fill=(0, 0, 0, 255))
        draw.text((x0 + pad * 2 + swatch, y), label, fill=(0, 0, 0, 255), font=font)
    return canvas


def _mask_entries(why: np.ndarray) -> list[tuple[str, tuple[int, int, int, int]]]:
    present = set(np.unique(why).tolist())
    return [MASK_STYLES[code] for code in MASK_STYLES if code in present]


def _save_png(picture, png: Path) -> Path:
    with atomic_path(png) as tmp:
        picture.save(tmp, format="PNG")
    return png


def quicklook(src: Path, png: Path, rgb: tuple[int, int, int] | None = None, max_size: int = 1024, *,
              reasons: Path | None = None, aoi=None) -> Path:
    """An RGBA PNG, 2-98 % stretch per channel, the map at most ``max_size`` px. Pixels without a
    value are drawn by why they have none (:data:`MASK_STYLES`: a ``reasons`` raster of mask codes,
    pixels outside ``aoi``, else NoData), each in a legend on the right of the map."""
    import rasterio

    with rasterio.open(src) as ds:
        shape, transform = _quicklook_grid(ds, max_size)
        bands = list(rgb) if rgb else [1]
        data = ds.read(bands, out_shape=(len(bands), *shape), resampling=rasterio.enums.Resampling.nearest)
        nodata = ds.nodata
        if nodata is None:
            valid = np.ones(shape, bool)
        elif np.isnan(nodata):
            valid = ~np.any(np.isnan(data), axis=0)
        else:
            valid = np.all(data != nodata, axis=0)
        why = _reasons(ds, shape, transform, ~valid, reasons, aoi)
    out = np.zeros((*shape, 4), np.uint8)
    for i, channel in enumerate(data if len(bands) == 3 else [data[0]] * 3):
        v = channel[valid].astype(np.float64)
        lo, hi = (np.percentile(v, [2, 98]) if v.size else (0.0, 1.0))
        scaled = np.nan_to_num((channel - lo) / max(hi - lo, 1e-9) * 255)  # NaN: NoData, drawn below
        out[..., i] = np.clip(scaled, 0, 255).astype(np.uint8)
    out[..., 3] = 255
    for code, (_, rgba) in MASK_STYLES.items():
        out[why == code] = rgba
    return _save_png(_legend(out, _mask_entries(why)), png)


def class_quicklook(src: Path, png: Path, classes: Iterable, max_size: int = 1024, *,
                    reasons: Path | None = None, aoi=None) -> Path:
    """An RGBA PNG of a single-band class map, the map at most ``max_size`` px, with a legend:
    each class (:class:`~.stac.Class`; its colour, else the raster's colour table) and each reason
    a pixel has no class (:data:`MASK_STYLES`, as in :func:`quicklook`)."""
    import rasterio

    classes = sorted(classes, key=lambda c: c.value)
    with rasterio.open(src) as ds:
        shape, transform = _quicklook_grid(ds, max_size)
        data = ds.read(1, out_shape=shape, resampling=rasterio.enums.Resampling.nearest)
        try:
            palette = ds.colormap(1)
        except ValueError:
            palette = None
        missing = {c.value for c in classes if c.nodata}
        if ds.nodata is not None:
            missing.add(int(ds.nodata))
        invalid = np.isin(data, list(missing))
        why = _reasons(ds, shape, transform, invalid, reasons, aoi)
    lut = np.zeros((max(int(data.max(initial=0)), *(c.value for c in classes), 0) + 1, 4), np.uint8)
    if palette:
        for value, rgba in palette.items():
            if value < len(lut):
                lut[value] = rgba
    shown = [c for c in classes if not c.nodata and c.value not in missing]
    for c in shown:
        lut[c.value] = _class_rgba(c, palette)
    out = lut[data]
    for code, (_, rgba) in MASK_STYLES.items():
        out[why == code] = rgba
    entries = [(category_label(c), tuple(int(v) for v in lut[c.value])) for c in shown]
    return _save_png(_legend(out, entries + _mask_entries(why)), png)


# Libraries recorded when the run has loaded them (torch only in the ML services).
OPTIONAL_LIBRARIES = ("torch", "onnxruntime", "scipy", "pyproj", "shapely", "osmium", "xarray", "netCDF4", "pystac")


def software_versions() -> dict[str, str]:
    """The versions that decide a product's values: this package, Python, NumPy, rasterio and
    the GDAL and PROJ it runs on, and the optional libraries the run has imported."""
    import sys

    import rasterio

    from components import __version__

    versions = {"eo-kfp-services": __version__, "python": platform.python_version(), "numpy": np.__version__,
                "rasterio": rasterio.__version__, "GDAL": rasterio.__gdal_version__,
                "PROJ": rasterio.__proj_version__}
    for name in OPTIONAL_LIBRARIES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__version__", None):
            versions[name] = str(module.__version__)
    return versions


def run_record(service: str, version: str, params: dict, inputs: list[dict], outputs: dict,
               timings: dict, started: dt.datetime) -> dict:
    """The content of run.json: what ran, on what, with which resolved parameters, how long, and
    the software versions it ran with."""
    return {
        "service": service, "version": version, "params": params, "inputs": inputs, "outputs": outputs,
        "timings_s": timings, "started": started.isoformat(),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(),
        "python": platform.python_version(), "software": software_versions(),
    }
