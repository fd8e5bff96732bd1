"""S1-SLC-preprocess bounded by the AoI: only the bursts, lines and samples the output grid needs
are read and processed, and the pixels are those of the whole sub-swath processed at once."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.windows import from_bounds

from components.s1_preprocess import radar
from components.s1_preprocess.cli import main_slc
from components.s1_preprocess.params import S1SLCParams
from components.s1_preprocess.product import open_product
from components.s1_preprocess.service import gcp_model

FILTERS = ["Lee Sigma", "Refined Lee", "Boxcar", "Lee", "Frost", "Gamma Map", "Median", "None"]


@pytest.fixture(scope="module")
def image(slc_product, tmp_path_factory):
    return open_product(slc_product, tmp_path_factory.mktemp("open")).image("IW1", "VV")


def _raster(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


@pytest.mark.parametrize("name", FILTERS)
def test_bounded_window_equals_the_whole_subswath(image, name, tmp_path):
    """A window of the debursted image, processed alone, gives the pixels of the whole sub-swath
    processed at once, away from the window's cut edges by the filter's margin."""
    params = S1SLCParams(speckle=name)
    looks = (1, 4)
    plan = radar.deburst_plan(image)
    whole = radar.process_slc(image.product, image, params, looks, str(tmp_path / "whole.tif"), plan=plan)
    bounds = (1700, 2300, 101, 331)  # not whole looks: widened to them
    part = radar.process_slc(image.product, image, params, looks, str(tmp_path / "part.tif"), plan=plan,
                             bounds=bounds)
    assert (part.row0, part.col0) == (1700, 100 + 1.5) and part.t_first == pytest.approx(
        whole.t_first + 1700 * plan.interval)
    assert (part.rows, part.cols) == (600, 58)
    a, b = _raster(whole.path), _raster(part.path)
    h = params.filter_spec().halo()
    inner = np.s_[h:part.rows - h, h:part.cols - h]
    same = a[1700:2300, 25:83][inner]
    assert np.isfinite(same).mean() > 0.9
    np.testing.assert_array_equal(b[inner], same)


def test_bounded_window_reads_only_its_lines_and_samples(image, tmp_path):
    image.windows_read.clear()
    plan = radar.deburst_plan(image)
    radar.process_slc(image.product, image, S1SLCParams(), (1, 4), str(tmp_path / "r.tif"), plan=plan,
                      bounds=(1700, 2300, 100, 332))
    w = np.array(image.windows_read)
    lpb = image.lines_per_burst
    first, last = plan.source_line[1700], plan.source_line[2299]  # the caller's bounds carry the filter margin
    assert w[:, 0].min() == first and (w[:, 0] + w[:, 2]).max() == last + 1
    assert first // lpb == last // lpb == 1  # one burst
    assert set(w[:, 1]) == {100} and set(w[:, 3]) == {232}


def _aoi_in_burst(image, burst: int, lines=200, cols=(170, 230)) -> str:
    """A lon/lat polygon of ``lines`` debursted lines in the middle of the part that ``burst``
    owns, between samples ``cols``."""
    plan = radar.deburst_plan(image)
    rows = np.flatnonzero(plan.source_line // image.lines_per_burst == burst)
    r0 = (rows[0] + rows[-1] - lines) // 2
    r1 = r0 + lines
    model, _ = gcp_model(image)
    rr = np.array([r0, r0, r1, r1, r0], float)
    cc = np.array([cols[0], cols[1], cols[1], cols[0], cols[0]], float)
    lon, lat, _ = model.forward(rr, cc)
    return "POLYGON((" + ", ".join(f"{x:.6f} {y:.6f}" for x, y in zip(lon, lat)) + "))"


def _run(product, out, *args):
    assert main_slc(["--input", str(product), "--outdir", str(out), "--resolution", "20", *args]) == 0
    record = json.loads((out / "run.json").read_text())
    return out / record["outputs"]["product"], record


def test_aoi_in_one_burst_reads_only_that_burst(slc_product, image, tmp_path):
    aoi = _aoi_in_burst(image, 1)
    tif, record = _run(slc_product, tmp_path / "aoi", "--AoI", aoi)
    read = record["outputs"]["metrics"]["radar_read"]["IW1"]
    lpb = image.lines_per_burst
    assert read["bursts"] == [1]
    assert lpb <= read["lines"][0] and read["lines"][1] <= 2 * lpb
    assert read["lines"][1] - read["lines"][0] < 0.5 * lpb
    assert 0 < read["samples"][0] and read["samples"][1] < image.samples
    assert record["outputs"]["metrics"]["calibration_source"] == "calibration annotation"
    full_tif, full_record = _run(slc_product, tmp_path / "full")
    plan = radar.deburst_plan(image)
    whole = {"lines": [int(plan.source_line[0]), int(plan.source_line[-1]) + 1], "samples": [0, 400], "bursts": [0, 1]}
    assert full_record["outputs"]["metrics"]["radar_read"]["IW1"] == whole
    # the full run's grid is larger: its coarse inverse-map nodes differ, and with them the
    # sub-pixel sampling positions (< 0.01 px); the same grid gives the same pixels (below)
    with rasterio.open(tif) as ds, rasterio.open(full_tif) as full:
        part = ds.read(1, masked=True)
        window = from_bounds(*ds.bounds, transform=full.transform).round_offsets().round_lengths()
        same = full.read(1, window=window, masked=True)
    valid = ~part.mask
    assert part.count() > 1000 and not same.mask[valid].any()
    assert np.median(np.abs(part.data[valid] / same.data[valid] - 1)) < 1e-4


def test_aoi_grid_from_the_bounded_radar_work_equals_the_whole_subswath(image, tmp_path):
    """On one output grid, geocoding what the AoI run processes gives exactly what geocoding the
    whole sub-swath gives."""
    from components.common.aoi import load_aoi
    from components.s1_preprocess import geocoding, service

    wkt = _aoi_in_burst(image, 1)
    aoi = load_aoi(wkt)
    params = S1SLCParams(aoi=wkt, resolution=20)
    grid = geocoding.make_grid(geocoding.target_crs("WGS84"), 20.0, service.footprint([image]), aoi)
    (tmp_path / "a").mkdir()
    image.windows_read.clear()
    bounded = service.radar_source(image.product, image, params, grid, 20.0, tmp_path / "a", "SLC")
    lines_read = sum(h for _, _, h, _ in image.windows_read)
    assert lines_read < image.lines_per_burst / 2
    ay, ax = bounded.raster.looks
    whole = radar.process_slc(image.product, image, params, (ay, ax), str(tmp_path / "whole.tif"))
    inverse = geocoding.InverseMap(grid, gcp_model(image)[0])
    inverse.maps = [((r - whole.row0) / ay, (c - whole.col0) / ax) for r, c in inverse.maps]
    out = []
    for name, source in (("a.tif", bounded), ("b.tif", service.Source(whole, inverse))):
        service.geocode([source], grid, tmp_path / name, db=False, aoi=aoi, landsea=None, dem=None,
                        dem_geoid_height=0.0, band="Sigma_VV")
        out.append(_raster(tmp_path / name))
    assert (out[0] != service.NODATA).sum() > 1000
    np.testing.assert_array_equal(out[0], out[1])
