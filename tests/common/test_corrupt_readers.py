"""The size check of classic netCDF files (the netCDF library reads the missing part of a file cut
short as fill values, without an error): intact files of every classic flavour, with and without
records, and the genuine sample files, have the size their header describes (up to the padding of
the last variable); a file cut short is reported."""

from __future__ import annotations

import numpy as np
import pytest

from components.common.errors import ServiceError
from components.common.readers import check_netcdf_size, netcdf_classic_size
from tests.conftest import SAMPLE_DATA


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"])
@pytest.mark.parametrize("records", [0, 1, 3])
def test_intact_files_have_the_size_their_header_says(fmt, records, tmp_path):
    import netCDF4

    path = tmp_path / "f.nc"
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.title = "size check"
        ds.createDimension("time", None)
        ds.createDimension("lat", 3)
        ds.createDimension("lon", 5)
        ds.createVariable("lat", "f4", ("lat",))[:] = np.arange(3)
        ds.createVariable("code", "i2", ("lon",))[:] = np.arange(5)
        if records:
            ds.createVariable("t2m", "i2", ("time", "lat", "lon"))[:] = np.ones((records, 3, 5))
            if records > 1:
                ds.createVariable("flag", "i1", ("time",))[:] = np.ones(records)
    size, needed = netcdf_classic_size(path)
    assert needed <= size <= needed + 3  # the last variable may be padded to 4 bytes
    check_netcdf_size(path)
    path.write_bytes(path.read_bytes()[: needed - 2])
    with pytest.raises(ServiceError, match=r"f.nc: truncated netCDF file \(\d+ bytes where its header describes"):
        check_netcdf_size(path)


def test_netcdf4_and_other_files_are_left_to_their_readers(tmp_path):
    import netCDF4

    path = tmp_path / "h5.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("x", 2)
        ds.createVariable("v", "f4", ("x",))[:] = [1, 2]
    assert netcdf_classic_size(path) is None
    text = tmp_path / "t.nc"
    text.write_text("CDF but not really")
    assert netcdf_classic_size(text) is None


def test_genuine_classic_files_pass():
    files = [p for p in sorted(SAMPLE_DATA.glob("*/**/*.nc")) if netcdf_classic_size(p) is not None]
    if not files:
        pytest.skip(f"no classic netCDF sample under {SAMPLE_DATA}")
    for path in files:
        size, needed = netcdf_classic_size(path)
        assert needed <= size <= needed + 3, path
