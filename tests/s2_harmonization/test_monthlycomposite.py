"""monthlycomposite on a synthetic REFBOA/LAI series: the 12 composites against a pixel-by-pixel
re-computation from the input files, baseline offsets, block independence, sidecars, and every bad
input (one line, exit status 2, nothing written)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio

from components.s2_harmonization.cli import main
from components.s2_harmonization.params import MonthlyCompositeParams
from components.timesen2crop.legend import BANDS, season_months
from tests.fixtures.timesen2crop_archive import write_time_series
from tests.stac_schema import validate_item

SIZE = 40


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    root = tmp_path_factory.mktemp("mc")
    info = write_time_series(root / "plain", size=SIZE, seed=4)
    write_time_series(root / "offset", size=SIZE, seed=4, baseline_offset=True, name_style="s2")
    out = root / "out"
    assert main(["--input_dir", str(root / "plain"), "--output_dir", str(out), "--tile", "T33UVP"]) == 0
    return root, info, out


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, ds.tags(), ds.descriptions


def test_seed_defaults():
    p = MonthlyCompositeParams()
    assert (p.tile, p.season_start, p.empty_months) == (None, 2017, "error")


def test_twelve_uint16_composites_match_a_recomputation(series):
    root, info, out = series
    months = season_months(2017)
    tifs = [out / f"33UVP_MC_{m}.tif" for m in months]
    assert all(t.exists() for t in tifs)
    boa_files = sorted((root / "plain" / "REFBOA").glob("*.tif"))
    lai_files = sorted((root / "plain" / "LAI").glob("*.tif"))
    rng = np.random.default_rng(0)
    pixels = [(int(r), int(c)) for r, c in rng.integers(0, SIZE, (12, 2))]
    for m, tif in zip(months, tifs):
        comp, profile, tags, desc = _read(tif)
        assert profile["dtype"] == "uint16" and profile["count"] == 9 and profile["nodata"] == 0
        assert desc == BANDS and tags["COMPOSITE_MONTH"] == m
        month_files = [(b, la) for b, la in zip(boa_files, lai_files) if f"_{m.replace('-', '')}" in b.name]
        assert int(tags["ACQUISITIONS"]) == len(month_files) > 0
        stacks = [(_read(b)[0], _read(la)[0][0]) for b, la in month_files]
        for r, c in pixels:
            clear = [boa[:, r, c] for boa, lai in stacks if lai[r, c] != 0]
            if clear:
                expected = np.floor(np.median(np.array(clear, np.float64), axis=0) + 0.5)
            else:
                expected = np.zeros(9)
            np.testing.assert_array_equal(comp[:, r, c], expected, err_msg=f"{m} pixel {r},{c}")


def test_baseline_offset_and_s2_names_give_the_same_composites(series, tmp_path):
    root, _, out = series
    assert main(["--input_dir", str(root / "offset"), "--output_dir", str(tmp_path / "o"), "--block_size", "64"]) == 0
    for m in season_months(2017):
        name = f"33UVP_MC_{m}.tif"
        np.testing.assert_array_equal(_read(out / name)[0], _read(tmp_path / "o" / name)[0])


def test_boa_tags_of_s2_preprocess_pass(series, tmp_path):
    """The tags S2-preprocess writes on an L2A stack (QUANTITY=BOA reflectance) change nothing."""
    root, _, out = series
    folder = tmp_path / "in"
    shutil.copytree(root / "plain", folder)
    for f in (folder / "REFBOA").glob("*.tif"):
        with rasterio.open(f, "r+") as ds:
            ds.update_tags(QUANTITY="BOA reflectance",
                           PRODUCT="S2A_MSIL2A_20171005T101401_N0400_R022_T33UVP_20171005T121301")
    assert main(["--input_dir", str(folder), "--output_dir", str(tmp_path / "o")]) == 0
    name = "33UVP_MC_2018-05.tif"
    np.testing.assert_array_equal(_read(out / name)[0], _read(tmp_path / "o" / name)[0])


def test_the_command_prints_every_composite_it_wrote(series, tmp_path, capsys):
    root, _, _ = series
    capsys.readouterr()
    assert main(["--input_dir", str(root / "plain"), "--output_dir", str(tmp_path / "o"), "--tile", "T33UVP"]) == 0
    printed = [line.split(": ", 1)[1] for line in capsys.readouterr().out.splitlines() if line.startswith("composites: ")]
    assert printed == [str(tmp_path / "o" / f"33UVP_MC_{m}.tif") for m in season_months(2017)]

def test_sidecars(series):
    _, _, out = series
    stem = "33UVP_MC_2017-09_2018-08"
    item = json.loads((out / f"{stem}.json").read_text())
    validate_item(item)
    assert set(season_months(2017)) <= set(item["assets"])
    assert item["properties"]["start_datetime"] == "2017-09-01T00:00:00Z" and item["properties"]["gsd"] == 10
    assert (out / f"{stem}_quicklook.png").stat().st_size > 0
    record = json.loads((out / "run.json").read_text())
    assert record["service"] == "monthlycomposite" and len(record["outputs"]["composites"]) == 12
    # each band's spectral position in GDAL's standard IMAGERY metadata, as in the STAC item
    with rasterio.open(out / "33UVP_MC_2017-09.tif") as ds:
        imagery = [ds.tags(i, ns="IMAGERY") for i in range(1, ds.count + 1)]
        assert not any("wavelength_nm" in ds.tags(i) for i in range(1, ds.count + 1))
    stac_bands = item["assets"]["2017-09"]["bands"]
    assert [float(t["CENTRAL_WAVELENGTH_UM"]) for t in imagery] == [b["eo:center_wavelength"] for b in stac_bands]
    assert float(imagery[BANDS.index("B4")]["FWHM_UM"]) == pytest.approx(0.031)


def test_empty_months_zero(series, tmp_path):
    root, _, _ = series
    src = tmp_path / "in"
    write_time_series(src, size=16, seed=5, skip_months=("2018-01",))
    assert main(["--input_dir", str(src), "--output_dir", str(tmp_path / "o"), "--empty_months", "zero"]) == 0
    comp, _, tags, _ = _read(tmp_path / "o" / "33UVP_MC_2018-01.tif")
    assert not comp.any() and tags["ACQUISITIONS"] == "0"


@pytest.fixture(scope="module")
def bad_inputs(series, tmp_path_factory):
    root, _, _ = series
    base = tmp_path_factory.mktemp("mc_bad")

    def copy(name):
        dst = base / name
        shutil.copytree(root / "plain", dst)
        return dst

    missing = base / "missing_month"
    write_time_series(missing, size=16, seed=6, skip_months=("2018-01", "2018-02"))
    no_lai = copy("no_lai")
    sorted((no_lai / "LAI").glob("*.tif"))[6].unlink()  # 2 November 2017
    grid = copy("grid")
    lai = sorted((grid / "LAI").glob("*.tif"))[12]
    with rasterio.open(lai) as ds:
        prof = ds.profile
    prof.update(width=20, height=20)
    with rasterio.open(lai, "w", **prof) as ds:
        ds.write(np.ones((1, 20, 20), np.float32))
    bands = copy("bands")
    boa = sorted((bands / "REFBOA").glob("*.tif"))[12]
    with rasterio.open(boa) as ds:
        prof, data = ds.profile, ds.read([1, 2, 3])
    prof.update(count=3)
    with rasterio.open(boa, "w", **prof) as ds:
        ds.write(data)
    no_date = copy("no_date")
    next((no_date / "REFBOA").glob("*.tif")).rename(no_date / "REFBOA" / "image.tif")
    no_refboa = base / "no_refboa"
    (no_refboa / "LAI").mkdir(parents=True)
    two_tiles = copy("two_tiles")
    first = next((two_tiles / "REFBOA").glob("*.tif"))
    first.rename(first.with_name(first.name.replace("T33UVP", "T33UWP")))
    text = copy("text")
    next((text / "LAI").glob("*.tif")).write_text("not a raster")
    # tagged as S2-preprocess tags a stack of an L1C product (--toa): top of atmosphere, not BOA
    toa = copy("toa")
    with rasterio.open(sorted((toa / "REFBOA").glob("*.tif"))[12], "r+") as ds:
        ds.update_tags(QUANTITY="TOA reflectance")
    l1c = copy("l1c")
    with rasterio.open(sorted((l1c / "REFBOA").glob("*.tif"))[3], "r+") as ds:
        ds.update_tags(PRODUCT="S2A_MSIL1C_20171005T101401_N0400_R022_T33UVP_20171005T121301")
    return {k: str(v) for k, v in locals().items() if k in (
        "missing", "no_lai", "grid", "bands", "no_date", "no_refboa", "two_tiles", "text", "toa", "l1c")} | {
        "base": str(base)}


CASES = [
    ("missing months", "missing", [], "no acquisition in 2018-01, 2018-02"),
    ("REFBOA without LAI", "no_lai", [], "no LAI image for REFBOA/T33UVP_20171102"),
    ("LAI of another size", "grid", [], "is on another grid (20x20 px"),
    ("three bands", "bands", [], "has 3 bands"),
    ("name without date", "no_date", [], "REFBOA/image.tif: no acquisition date in the file name"),
    ("no REFBOA folder", "no_refboa", [], "has no REFBOA/ sub-folder"),
    ("two tiles", "two_tiles", [], "several tiles (33UVP, 33UWP): choose one with --tile"),
    ("tile absent", "two_tiles", ["--tile", "32TNT"], "holds no image of tile 32TNT"),
    ("not a GeoTIFF", "text", [], "truncated or corrupt GeoTIFF"),
    ("bad tile code", "grid", ["--tile", "Vienna"], "invalid value 'Vienna' for parameter 'tile'"),
    ("season without images", "grid", ["--season_start", "2020"], "no REFBOA image in the agronomic year 2020-09"),
    ("bad block size", "grid", ["--block_size", "10"], "parameter 'block_size': allowed a number >= 64"),
    ("TOA reflectance", "toa", [], "_REFBOA.tif: tagged QUANTITY=TOA reflectance: top-of-atmosphere reflectance, but "
                                   "monthlycomposite composites surface reflectance (BOA, Sentinel-2 L2A)"),
    ("L1C product tag", "l1c", [], "tagged PRODUCT=S2A_MSIL1C_20171005T101401_N0400_R022_T33UVP_20171005T121301 "
                                   "(an L1C product): top-of-atmosphere reflectance"),
]


@pytest.mark.parametrize("case_id, key, extra, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, key, extra, fragment, bad_inputs, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["--input_dir", bad_inputs[key], "--output_dir", str(out), *extra])
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("monthlycomposite: error: "), lines
    assert fragment in lines[0]
    assert not out.exists()


def test_a_season_without_a_clear_pixel_is_written_with_a_warning(tmp_path, caplog):
    write_time_series(tmp_path / "in", size=16)
    for lai in (tmp_path / "in" / "LAI").glob("*.tif"):  # LAI 0: the acquisition's pixel is cloudy
        with rasterio.open(lai, "r+") as ds:
            ds.write(np.zeros((ds.count, ds.height, ds.width), ds.dtypes[0]))
    with caplog.at_level("WARNING"):
        assert main(["--input_dir", str(tmp_path / "in"), "--output_dir", str(tmp_path / "o")]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("no clear pixel in any month"), warnings



def test_the_stac_gsd_is_the_grids_pixel_size(tmp_path):
    from affine import Affine

    write_time_series(tmp_path / "in", size=16)
    for tif in (tmp_path / "in").rglob("*.tif"):  # the same series on a 20 m grid
        with rasterio.open(tif, "r+") as ds:
            t = ds.transform
            ds.transform = Affine(20.0, 0.0, t.c, 0.0, -20.0, t.f)
    assert main(["--input_dir", str(tmp_path / "in"), "--output_dir", str(tmp_path / "o")]) == 0
    (item,) = [json.loads(p.read_text()) for p in (tmp_path / "o").glob("*_MC_*.json")]
    assert item["properties"]["gsd"] == 20
