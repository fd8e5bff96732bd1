"""The pixel size of a resolution given in metres, in the units of the output CRS."""

import pytest
from pyproj import CRS as ProjCRS
from rasterio.crs import CRS

from components.common.output_grid import METRES_PER_DEGREE, pixel_size


@pytest.mark.parametrize("crs, expected", [
    ("EPSG:32633", 10.0),                                   # UTM, metres
    ("EPSG:4326", 10.0 / METRES_PER_DEGREE),                # degrees, the project's convention
    ("EPSG:2263", 10.0 / 0.3048006096012192),               # New York State Plane, US survey feet
])
def test_pixel_size_is_in_the_units_of_the_crs(crs, expected):
    for given in (CRS.from_user_input(crs), ProjCRS.from_user_input(crs)):  # rasterio's and pyproj's
        assert pixel_size(10.0, given) == pytest.approx(expected, rel=1e-12)
