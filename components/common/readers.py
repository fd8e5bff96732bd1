"""Reading input files under the failure contract: damaged rasters and zip members.

GDAL notices a damaged raster (cut short, emptied, overwritten) when it opens it or, for a file
whose header is intact, only when a read reaches a missing or undecodable block: in the middle
of a windowed read, possibly in a worker thread, as ``RasterioIOError`` chained to
``CPLE_AppDefinedError`` ("opj_decode", "TIFFReadEncodedTile", ...). Every reader of input
rasters opens them with :func:`open_raster` (or wraps its reads in :func:`reading`), so that such
a failure becomes one :class:`ServiceError` naming the file and what is wrong with it::

    with open_raster(path) as ds:          # ds.read() is guarded; ds.dataset is the rasterio one
        block = ds.read(1, window=win)

    with reading(path):                     # for other GDAL calls on the file (warping, VRTs)
        reproject(rasterio.band(ds.dataset, 1), dst, ...)

Zip members read by GDAL through ``/vsizip/`` are not checked against their CRC (a stored JPEG
2000 band with damaged bytes decodes to wrong pixels without any error): :func:`check_zip_member`
streams a member once and compares its CRC.
"""

from __future__ import annotations

import contextlib
import os
import re
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterator

from .errors import EnvironmentFailure, ServiceError, from_os_error

FORMAT_BY_SUFFIX = {".jp2": "JPEG 2000", ".j2k": "JPEG 2000", ".tif": "GeoTIFF", ".tiff": "GeoTIFF",
                    ".nc": "netCDF", ".nc4": "netCDF", ".grib": "GRIB", ".grb": "GRIB", ".grib2": "GRIB",
                    ".grb2": "GRIB", ".vrt": "VRT", ".img": "ERDAS Imagine", ".hgt": "SRTM HGT"}
# messages that only point at another one in the chain
_GENERIC = ("see previous exception", "chunk and warp failed", "read failed")
_DETAIL_CHARS = 200


def describe(path: str | os.PathLike) -> str:
    """The file as a user knows it: its name, and the SAFE product holding it, if any."""
    parts = PurePosixPath(str(path).replace("\\", "/")).parts
    name = parts[-1] if parts else str(path)
    safe = next((p for p in reversed(parts[:-1]) if p.upper().endswith(".SAFE")), None)
    return f"{name} in {safe[:-5]}" if safe else name


def format_of(path: str | os.PathLike) -> str:
    return FORMAT_BY_SUFFIX.get(PurePosixPath(str(path)).suffix.lower(), "raster")


def _zip_location(path: str) -> tuple[str, str] | None:
    """(archive, member) of a ``/vsizip/`` path."""
    m = re.match(r"^/vsizip/(.*?\.zip)/(.+)$", path, re.IGNORECASE)
    return (m.group(1), m.group(2)) if m else None


def _size(path: str) -> int | None:
    """Size of a local file or of a ``/vsizip/`` member; None if unknown or absent."""
    try:
        where = _zip_location(path)
        if where is not None:
            with zipfile.ZipFile(where[0]) as z:
                return z.getinfo(where[1]).file_size
        if path.startswith("/vsi") or "://" in path:
            return None
        return os.path.getsize(path)
    except (OSError, KeyError, zipfile.BadZipFile):
        return None


def _exists(path: str) -> bool | None:
    where = _zip_location(path)
    if where is not None:
        try:
            with zipfile.ZipFile(where[0]) as z:
                z.getinfo(where[1])
            return True
        except KeyError:
            return False
        except (OSError, zipfile.BadZipFile):
            return None
    if path.startswith("/vsi") or "://" in path:
        return None
    return os.path.exists(path)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _detail(exc: BaseException, path: str) -> str:
    """The most telling GDAL message of the chain, without the file's path."""
    messages = [" ".join(str(e).split()) for e in _chain(exc)]
    messages = [m for m in messages if m and not any(g in m.lower() for g in _GENERIC)] or messages
    text = messages[0] if messages else type(exc).__name__
    if "not recognized as being in a supported file format" in text or "not recognised" in text:
        return "GDAL does not recognise its content"
    name = PurePosixPath(path).name
    for known in (path, name):
        text = text.replace(f"'{known}'", "").replace(known, "")
    text = re.sub(r"^[\s,:]+", "", text).strip()
    return text[:_DETAIL_CHARS] + ("..." if len(text) > _DETAIL_CHARS else "")


def _gdal_errors() -> tuple[type[BaseException], ...]:
    import rasterio.errors
    from rasterio._err import CPLE_BaseError

    return rasterio.errors.RasterioIOError, rasterio.errors.WarpOperationError, CPLE_BaseError


def raster_failure(exc: BaseException, path: str | os.PathLike, label: str | None = None) -> ServiceError:
    """The one-line failure for a GDAL error met while opening or reading the input ``path``."""
    from rasterio import _err

    path = str(path)
    label = label or describe(path)
    errors = list(_chain(exc))
    if any(isinstance(e, _err.CPLE_OutOfMemoryError) for e in errors):
        return EnvironmentFailure(f"out of memory while reading {label}")
    if any(isinstance(e, (_err.CPLE_HttpResponseError, _err.CPLE_AWSError)) for e in errors):
        return EnvironmentFailure(f"reading {label} from the object store failed: {_detail(exc, path)}")
    fmt = format_of(path)
    if _exists(path) is False:
        return ServiceError(f"{label}: file missing")
    if _size(path) == 0:
        return ServiceError(f"{label}: truncated or corrupt {fmt} file (empty: 0 bytes)")
    return ServiceError(f"{label}: truncated or corrupt {fmt} file ({_detail(exc, path)})")


@contextlib.contextmanager
def reading(path: str | os.PathLike, label: str | None = None) -> Iterator[None]:
    """Within the block, a GDAL open/read/decode error is a :class:`ServiceError` naming ``path``
    (as ``label``, default: its name and the SAFE product holding it)."""
    try:
        yield
    except ServiceError:
        raise
    except _gdal_errors() as exc:
        raise raster_failure(exc, path, label) from None


class RasterReader:
    """A rasterio dataset opened for reading whose ``read``, ``read_masks`` and ``dataset_mask``
    raise the one-line :class:`ServiceError` on damaged data. Everything else is the dataset's
    (``.dataset`` is the dataset itself, for ``WarpedVRT`` and ``rasterio.band``)."""

    def __init__(self, path: str | os.PathLike, label: str | None = None, **open_kwargs):
        import rasterio

        self.path = str(path)
        self.label = label or describe(self.path)
        with self.guard():
            self.dataset = rasterio.open(path, **open_kwargs)

    def guard(self):
        return reading(self.path, self.label)

    def read(self, *args, **kwargs):
        with self.guard():
            return self.dataset.read(*args, **kwargs)

    def read_masks(self, *args, **kwargs):
        with self.guard():
            return self.dataset.read_masks(*args, **kwargs)

    def dataset_mask(self, *args, **kwargs):
        with self.guard():
            return self.dataset.dataset_mask(*args, **kwargs)

    def __getattr__(self, name):
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def close(self) -> None:
        self.dataset.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def open_raster(path: str | os.PathLike, label: str | None = None, **open_kwargs) -> RasterReader:
    """Open an input raster for reading under the failure contract (see :class:`RasterReader`)."""
    return RasterReader(path, label, **open_kwargs)


# -- zip members ------------------------------------------------------------------------------

CRC_CHUNK = 4 << 20

ZIP_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError)  # zipfile's errors for damaged bytes
ZIP_UNREADABLE = (RuntimeError, NotImplementedError)  # and for encryption and unknown methods
ZIP_ERRORS = ZIP_DAMAGED + ZIP_UNREADABLE

# compression methods of the .zip specification that Python's zipfile does not read
_OTHER_METHODS = {6: "Implode", 9: "Deflate64, as Windows Explorer writes large archives",
                  10: "PKWARE DCL Implode", 93: "Zstandard", 95: "XZ", 98: "PPMd"}


def zip_failure(exc: BaseException, archive: str | os.PathLike, member: str | None = None,
                info: zipfile.ZipInfo | None = None) -> ServiceError:
    """The one line for ``exc``, one of :data:`ZIP_ERRORS`, raised reading ``member`` (as the
    message names it) of ``archive``; ``info``, the member's entry, says why it is unreadable."""
    name = Path(archive).name
    if isinstance(exc, ZIP_DAMAGED):
        why = " ".join(str(exc).split()) or type(exc).__name__
        if not member:
            return ServiceError(f"corrupt zip archive {name}: {why}")
        why = "its CRC-32 does not match" if "crc" in why.lower() else why
        return ServiceError(f"corrupt zip archive {name}: member {member} is damaged ({why})")
    subject = f"member {member}" if member else "it"
    encrypted = info.flag_bits & 0x1 if info is not None else isinstance(exc, RuntimeError)  # bit 0: encrypted
    if encrypted:
        why = "is password-protected: re-create the .zip without a password"
    else:
        method = f"compression method {info.compress_type} ({_OTHER_METHODS.get(info.compress_type, 'unknown')})" \
            if info is not None else "a compression method that zipfile lacks (Deflate64 or another)"
        why = f"uses {method}, which cannot be read: re-create the .zip with Deflate compression"
    return ServiceError(f"cannot read zip archive {name}: {subject} {why}, or give the unzipped folder")


def check_zip_member(archive: str | os.PathLike, member: str, label: str | None = None) -> None:
    """Stream ``member`` of ``archive`` once and compare its CRC-32 with the one the archive
    records: a :class:`ServiceError` naming the archive and the member when they differ, or when
    the member cannot be inflated."""
    archive = Path(archive)
    label = label or PurePosixPath(member).name
    info = None
    try:
        with zipfile.ZipFile(archive) as z:
            info = z.getinfo(member)
            with z.open(info) as fh:
                while fh.read(CRC_CHUNK):
                    pass
    except KeyError:
        raise ServiceError(f"{label}: missing from the zip archive {archive.name}") from None
    except ZIP_ERRORS as exc:
        raise zip_failure(exc, archive, label, info) from None
    except OSError as exc:
        raise from_os_error(exc, f"reading {label} in {archive.name}") from None


# -- classic netCDF ---------------------------------------------------------------------------

# netCDF classic formats (CDF-1 classic, CDF-2 64-bit offset, CDF-5 64-bit data): a reader given a
# file cut short returns fill values or zeros for the missing records, without any error. The
# header tells where each variable's data lie, so the size the file must have is known.
_NC_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
_NC_DIMENSION, _NC_VARIABLE, _NC_ATTRIBUTE = 0x0A, 0x0B, 0x0C
_STREAMING = 0xFFFFFFFF
NETCDF_HEADER_LIMIT = 64 << 20


class _Header:
    def __init__(self, data: bytes, version: int):
        self.data, self.pos, self.version = data, 4, version

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise EOFError
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int32(self) -> int:
        return int.from_bytes(self._take(4), "big")

    def int64(self) -> int:
        return int.from_bytes(self._take(8), "big")

    def count(self) -> int:  # NON_NEG: 8 bytes in CDF-5
        return self.int64() if self.version == 5 else self.int32()

    def offset(self) -> int:  # OFFSET: 4 bytes in CDF-1
        return self.int32() if self.version == 1 else self.int64()

    def skip_padded(self, n: int) -> None:
        self._take((n + 3) // 4 * 4)

    def name(self) -> None:
        self.skip_padded(self.count())

    def attributes(self) -> None:
        tag, n = self.int32(), self.count()
        if tag not in (0, _NC_ATTRIBUTE):
            raise ValueError("bad attribute list")
        for _ in range(n):
            self.name()
            nc_type = self.int32()
            self.skip_padded(self.count() * _NC_TYPE_SIZE.get(nc_type, 1))


def netcdf_classic_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(bytes the file has, bytes its classic netCDF header says it needs); None when the file is
    not classic netCDF or its header cannot be walked (the netCDF library then reports it)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        data = fh.read(min(size, NETCDF_HEADER_LIMIT))
    if data[:3] != b"CDF" or data[3:4] not in (b"\x01", b"\x02", b"\x05"):
        return None
    h = _Header(data, data[3])
    try:
        numrecs = h.count()
        tag, ndims = h.int32(), h.count()
        if tag not in (0, _NC_DIMENSION):
            return None
        dims = []
        for _ in range(ndims):
            h.name()
            dims.append(h.count())
        h.attributes()
        tag, nvars = h.int32(), h.count()
        if tag not in (0, _NC_VARIABLE):
            return None
        variables = []
        for _ in range(nvars):
            h.name()
            dimids = [h.count() for _ in range(h.count())]
            h.attributes()
            nc_type, _vsize, begin = h.int32(), h.count(), h.offset()
            shape = [dims[d] for d in dimids]
            record = bool(shape) and shape[0] == 0  # the unlimited dimension has length 0 here
            n = 1
            for d in shape[1:] if record else shape:
                n *= d
            variables.append((record, begin, n * _NC_TYPE_SIZE.get(nc_type, 1)))
    except (EOFError, ValueError, IndexError):
        return None
    if numrecs == _STREAMING:
        return None
    record_vars = [v for v in variables if v[0]]
    recsize = sum(b for _, _, b in record_vars) if len(record_vars) == 1 else \
        sum((b + 3) // 4 * 4 for _, _, b in record_vars)
    needed = 0
    for record, begin, nbytes in variables:
        if record:
            if numrecs:
                needed = max(needed, begin + (numrecs - 1) * recsize + nbytes)
        else:
            needed = max(needed, begin + nbytes)
    return size, needed


def check_netcdf_size(path: str | os.PathLike, label: str | None = None) -> None:
    """A ServiceError when a classic netCDF file is shorter than its header says."""
    sizes = netcdf_classic_size(path)
    if sizes is not None and sizes[0] < sizes[1]:
        raise ServiceError(f"{label or Path(path).name}: truncated netCDF file ({sizes[0]} bytes where its header "
                           f"describes {sizes[1]})")
