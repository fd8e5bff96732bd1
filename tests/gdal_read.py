"""What GDAL itself reads from a raster, through the GDAL library rasterio is built on (rasterio
has no call for category names or attribute tables): what gdalinfo and QGIS show."""

from __future__ import annotations

import ctypes
from pathlib import Path

import rasterio

_lib = None


def _gdal():
    global _lib
    if _lib is None:
        libs = sorted((Path(rasterio.__file__).parent.parent / "rasterio.libs").glob("libgdal-*.so*"))
        lib = ctypes.CDLL(str(libs[0])) if libs else ctypes.CDLL("libgdal.so")
        vp, cp = ctypes.c_void_p, ctypes.c_char_p
        for name, res, args in (("GDALOpen", vp, [cp, ctypes.c_int]), ("GDALClose", None, [vp]),
                                ("GDALGetRasterBand", vp, [vp, ctypes.c_int]),
                                ("GDALGetRasterCategoryNames", ctypes.POINTER(cp), [vp]),
                                ("GDALGetDefaultRAT", vp, [vp]), ("GDALRATGetRowCount", ctypes.c_int, [vp]),
                                ("GDALRATGetColumnCount", ctypes.c_int, [vp]),
                                ("GDALRATGetNameOfCol", cp, [vp, ctypes.c_int]),
                                ("GDALRATGetValueAsString", cp, [vp, ctypes.c_int, ctypes.c_int])):
            getattr(lib, name).restype = res
            getattr(lib, name).argtypes = args
        lib.GDALAllRegister()
        _lib = lib
    return _lib


def categories(path: Path, band: int = 1) -> tuple[list[str], list[dict]]:
    """GDAL's category names of ``band`` (indexed by value) and its attribute table's rows."""
    lib = _gdal()
    ds = lib.GDALOpen(str(path).encode(), 0)
    assert ds, f"GDAL cannot open {path}"
    try:
        b = lib.GDALGetRasterBand(ds, band)
        rat = lib.GDALGetDefaultRAT(b)  # also loads the PAM sidecar, as gdalinfo does first
        rows = []
        if rat:
            cols = [lib.GDALRATGetNameOfCol(rat, j).decode() for j in range(lib.GDALRATGetColumnCount(rat))]
            rows = [{c: lib.GDALRATGetValueAsString(rat, i, j).decode() for j, c in enumerate(cols)}
                    for i in range(lib.GDALRATGetRowCount(rat))]
        names, found = lib.GDALGetRasterCategoryNames(b), []
        while names and names[len(found)] is not None:
            found.append(names[len(found)].decode())
        return found, rows
    finally:
        lib.GDALClose(ds)
