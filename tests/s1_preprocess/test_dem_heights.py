"""DEM heights are read in metres whatever the DEM stores (feet by its band unit or its vertical
CRS, decimetres by its scale, SRTM's -32768 voids without a NoData tag), and their vertical datum
is never guessed: a DEM that declares heights above a geoid needs --dem_geoid_height (PROJ here has
no geoid grid), one that declares ellipsoidal heights refuses it (it would count twice) and cannot
give a land/sea mask. Each refusal is one line, exit status 2, no output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS

from components.common.errors import ServiceError
from components.common.landmask import LandSeaMask
from components.s1_preprocess.cli import main_grd

# inside the synthetic GRD crop (12.4645-12.5320 E, 41.9768-42.0198 N) and the Rome DEM
AOI = "POLYGON((12.47 41.98, 12.525 41.98, 12.525 42.015, 12.47 42.015, 12.47 41.98))"
GEOID = 47.0  # EGM96 over Rome
FOOT, US_FOOT = 0.3048, 1200 / 3937


def _write(dst, heights, crs, dtype="float32", nodata=-32767.0, units=None, scale=None, offset=None, like=None):
    with rasterio.open(like) as ds:
        profile = ds.profile
    profile.update(dtype=dtype, nodata=nodata, crs=CRS.from_user_input(crs), compress="deflate")
    with rasterio.open(dst, "w", **profile) as ds:
        ds.write(np.asarray(heights).astype(dtype), 1)
        if units:
            ds.units = (units,)
        if scale is not None:
            ds.scales = (scale,)
        if offset is not None:
            ds.offsets = (offset,)
    return dst


@pytest.fixture(scope="module")
def rome(dem_rome):
    with rasterio.open(dem_rome) as ds:
        return ds.read(1).astype(np.float64)


@pytest.fixture(scope="module")
def metres(dem_rome, rome, tmp_path_factory):
    """The Rome DEM as float32 metres, no vertical datum declared: the reference."""
    return _write(tmp_path_factory.mktemp("ref") / "metres.tif", rome, "EPSG:4326", like=dem_rome)


def _run(grd, out, dem, *args):
    return main_grd(["--input", str(grd), "--outdir", str(out), "--AoI", AOI, "--resolution", "40",
                     "--speckle", "None", "--calibration", "SigmaDB", "--dem", str(dem), *map(str, args)])


def _product(out):
    record = json.loads((out / "run.json").read_text())
    with rasterio.open(out / record["outputs"]["product"]) as ds:
        return ds.read(1, masked=True).filled(np.nan), record["outputs"]["metrics"]


def _error(capsys):
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("S1-GRD-preprocess: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def reference(grd_product, metres, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "out"
    assert _run(grd_product, out, metres, "--dem_geoid_height", GEOID) == 0
    return _product(out)[0]


VARIANTS = {
    # name: (heights from metres, CRS, write options)
    "band unit ft": (lambda z: z / FOOT, "EPSG:4326", {"units": "ft"}),
    "band unit US survey foot": (lambda z: z / US_FOOT, "EPSG:4326", {"units": "US survey foot"}),
    "vertical CRS in feet (NAVD88 ft)": (lambda z: z / FOOT, "EPSG:4326+8228", {}),
    "int16 decimetres, scale 0.1": (lambda z: np.rint(z * 10), "EPSG:4326",
                                    {"dtype": "int16", "nodata": -32768, "scale": 0.1, "offset": 0.0}),
    "uint16 half metres from -100 m": (lambda z: np.rint((z + 100) * 2), "EPSG:4326",
                                       {"dtype": "uint16", "nodata": 65535, "scale": 0.5, "offset": -100.0}),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_heights_stored_in_other_units_give_the_product_of_metres(name, grd_product, dem_rome, rome, reference,
                                                                 tmp_path):
    convert, crs, options = VARIANTS[name]
    dem = _write(tmp_path / "dem.tif", convert(rome), crs, like=dem_rome, **options)
    out = tmp_path / "out"
    assert _run(grd_product, out, dem, "--dem_geoid_height", GEOID) == 0
    got, _ = _product(out)
    assert np.array_equal(np.isnan(got), np.isnan(reference))
    ok = np.isfinite(got)
    assert ok.mean() > 0.9
    # int16 decimetres round the heights by 5 cm at most: far below a pixel
    assert np.abs(got[ok] - reference[ok]).max() < 0.05, np.abs(got[ok] - reference[ok]).max()


@pytest.mark.parametrize("unit", ["furlong", "dB", "degree"])
def test_an_unknown_height_unit_is_refused(unit, grd_product, dem_rome, rome, tmp_path, capsys):
    dem = _write(tmp_path / "dem.tif", rome, "EPSG:4326", like=dem_rome, units=unit)
    out = tmp_path / "out"
    assert _run(grd_product, out, dem, "--dem_geoid_height", GEOID) == 2
    line = _error(capsys)
    assert f"DEM file dem.tif: height unit '{unit}' is not one known here" in line and "US survey foot" in line
    assert not out.exists()


def test_int16_voids_without_a_nodata_tag_are_voids(grd_product, dem_rome, tmp_path, capsys):
    """SRTM's convention: -32768 in an int16 DEM without NoData value is a void, refused or
    filled like NoData, never a height of -32768 m (pixels thrown far off the grid)."""
    with rasterio.open(dem_rome) as ds:
        z = ds.read(1)
        rows, cols = rasterio.transform.rowcol(ds.transform, [12.49, 12.50], [42.0, 41.99])
    z[rows[0]:rows[1], cols[0]:cols[1]] = -32768
    dem = _write(tmp_path / "srtm.tif", z, "EPSG:4326", dtype="int16", nodata=None, like=dem_rome)
    with rasterio.open(dem) as ds:
        assert ds.nodata is None
    out = tmp_path / "out"
    assert _run(grd_product, out, dem, "--dem_geoid_height", GEOID) == 2
    line = _error(capsys)
    assert "DEM file srtm.tif does not cover" in line and "--dem_outside" in line
    assert not out.exists()
    assert _run(grd_product, out, dem, "--dem_geoid_height", GEOID, "--dem_outside", "geoid") == 0
    _, metrics = _product(out)
    assert 2 < metrics["dem_filled_percent"] < 10  # the 0.01 x 0.01 degree void in a 0.055 x 0.035 AoI


@pytest.mark.parametrize("crs, datum", [(None, "EGM96 height"), ("EPSG:4326+3855", "EGM2008 height"),
                                        ("EPSG:4326+5773", "EGM96 height")])
def test_a_dem_declaring_geoid_heights_needs_the_geoid_height(crs, datum, grd_product, dem_rome, rome, tmp_path,
                                                              capsys):
    """The project's Rome DEM declares EPSG:9707 (WGS 84 + EGM96 height): at the default 0 its
    heights would be taken as ellipsoidal, 47 m low, without a word."""
    dem = dem_rome if crs is None else _write(tmp_path / "dem.tif", rome, crs, like=dem_rome)
    out = tmp_path / "out"
    assert _run(grd_product, out, dem) == 2
    line = _error(capsys)
    assert f"declares heights above the geoid ({datum}): give --dem_geoid_height" in line
    assert not out.exists()


def test_an_ellipsoidal_dem_refuses_a_geoid_height(grd_product, dem_rome, rome, reference, tmp_path, capsys):
    dem = _write(tmp_path / "ellipsoidal.tif", rome + GEOID, "EPSG:4979", like=dem_rome)
    out = tmp_path / "out"
    assert _run(grd_product, out, dem, "--dem_geoid_height", GEOID) == 2
    line = _error(capsys)
    assert "DEM file ellipsoidal.tif declares ellipsoidal heights" in line and "count the geoid twice" in line
    assert not out.exists()
    # at 0 its heights are used as they are: the product of the geoid DEM + 47 m
    assert _run(grd_product, out, dem) == 0
    got, _ = _product(out)
    ok = np.isfinite(got) & np.isfinite(reference)
    assert ok.mean() > 0.9 and np.abs(got[ok] - reference[ok]).max() < 1e-3


def test_an_ellipsoidal_dem_gives_no_land_sea_mask(grd_product, dem_rome, rome, tmp_path, capsys):
    """The sea is at the geoid (~47 m above the ellipsoid over Rome): elevation <= 0 of
    ellipsoidal heights would call all of it land."""
    dem = _write(tmp_path / "ellipsoidal.tif", rome + GEOID, "EPSG:4979", like=dem_rome)
    for extra in (["--landseamask", "Sea"], ["--dem_outside", "geoid"]):
        out = tmp_path / "out"
        assert _run(grd_product, out, dem, *extra) == 2
        line = _error(capsys)
        assert "DEM file ellipsoidal.tif" in line and "declares ellipsoidal heights" in line, line
        assert not out.exists()


def test_land_sea_mask_uses_heights_above_the_geoid(dem_rome, rome, tmp_path):
    """A coast (the DEM's western third at sea level): the same sea from geoid heights and from
    ellipsoidal heights with the geoid height given; refused with ellipsoidal heights alone."""
    z = rome.copy()
    z[:, :120] = 0.0
    geoid = _write(tmp_path / "geoid.tif", z, "EPSG:4326+5773", like=dem_rome)
    ellipsoidal = _write(tmp_path / "ellipsoidal.tif", z + GEOID, "EPSG:4979", like=dem_rome)
    with rasterio.open(dem_rome) as ds:
        grid = (CRS.from_epsg(4326), ds.transform, ds.shape)
    sea = LandSeaMask(*grid, "Sea", dem_path=str(geoid), working_spacing_m=30)
    assert sea.removed_fraction == pytest.approx(1 / 3, abs=0.01)
    same = LandSeaMask(*grid, "Sea", dem_path=str(ellipsoidal), working_spacing_m=30, dem_geoid_height=GEOID)
    # the same cells but for float rounding on the coast's column (0 m against 47 - 47 m)
    assert np.mean(same.remove(0, 0, *grid[2]) != sea.remove(0, 0, *grid[2])) < 0.005
    with pytest.raises(ServiceError, match="declares ellipsoidal heights .* no geoid height known"):
        LandSeaMask(*grid, "Sea", dem_path=str(ellipsoidal), working_spacing_m=30)


def test_geoid_height_help_says_what_0_means(capsys):
    with pytest.raises(SystemExit):
        main_grd(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "declares no vertical datum, 0 takes its heights as ellipsoidal" in text.replace("- ", "-")
