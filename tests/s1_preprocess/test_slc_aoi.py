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


def _same_as_whole(image, params, looks, bounds, tmp_path):
    """Process ``bounds`` alone and the whole image; assert the window's pixels (away from its
    cut edges by the filter's margin) are the same. Returns the bounded raster."""
    ay, ax = looks
    plan = radar.deburst_plan(image)
    whole = radar.process_slc(image.product, image, params, looks, str(tmp_path / "whole.tif"), plan=plan,
                              bounds=radar.data_bounds(image, plan))
    part = radar.process_slc(image.product, image, params, looks, str(tmp_path / "part.tif"), plan=plan,
                             bounds=bounds)
    assert part.t_first == pytest.approx(whole.t_first + (part.row0 - whole.row0) * plan.interval)
    a, b = _raster(whole.path), _raster(part.path)
    h = params.filter_spec().halo()
    # the requested window in multilooked pixels of each raster
    r0, r1 = bounds[0] // ay + h, -(-bounds[1] // ay) - h
    c0, c1 = bounds[2] // ax + h, -(-bounds[3] // ax) - h
    pr, pc = int((part.row0 - (ay - 1) / 2) // ay), int((part.col0 - (ax - 1) / 2) // ax)
    wr, wc = int((whole.row0 - (ay - 1) / 2) // ay), int((whole.col0 - (ax - 1) / 2) // ax)
    got = b[r0 - pr:r1 - pr, c0 - pc:c1 - pc]
    want = a[r0 - wr:r1 - wr, c0 - wc:c1 - wc]
    assert got.shape == (r1 - r0, c1 - c0) and np.isfinite(want).mean() > 0.9
    # window sums (scipy's running sums) round differently on a block of another size
    np.testing.assert_allclose(got, want, rtol=1e-6)
    return part


@pytest.mark.parametrize("name", FILTERS + ["Gamma Map estimated ENL"])
def test_bounded_window_equals_the_whole_subswath(image, name, tmp_path):
    """A window of the debursted image, processed alone, gives the pixels of the whole sub-swath
    processed at once, away from the window's cut edges by the filter's margin."""
    params = S1SLCParams(speckle=name.replace(" estimated ENL", ""), estimate_enl=name.endswith("ENL"))
    part = _same_as_whole(image, params, (1, 4), (1700, 2300, 101, 331), tmp_path)  # not whole looks: widened
    if name == "None":
        assert (part.row0, part.col0, part.rows, part.cols) == (1700, 100 + 1.5, 600, 58)


@pytest.mark.parametrize("looks", [(1, 1), (1, 5)])
def test_bounded_window_equals_the_whole_crop_on_real_speckle(looks, tmp_path):
    """Real speckle (Terceira crop: land, coast, sea, bright targets): Lee Sigma's point-target
    threshold, a percentile of a block, is taken on fixed tiles, so a window alone still gives
    the whole crop's pixels."""
    from tests.conftest import sample
    from components.s1_preprocess.product import open_pieces

    crop = open_pieces(sample("s1-iw-slc-crop-real-terceira"), calibration_constant=237.0).image("IW3", "VV")
    plan = radar.deburst_plan(crop)
    first = radar.data_bounds(crop, plan)[0]
    params = S1SLCParams(calibration="Beta", thermal_noise_removal=False)
    _same_as_whole(crop, params, looks, (first + 100, first + 400, 11300, 12000), tmp_path)


def test_bounded_window_reads_only_its_lines_and_samples(image, tmp_path):
    image.windows_read.clear()
    plan = radar.deburst_plan(image)
    radar.process_slc(image.product, image, S1SLCParams(speckle="Boxcar"), (1, 4), str(tmp_path / "r.tif"),
                      plan=plan, bounds=(1700, 2300, 100, 332))
    w = np.array(image.windows_read)
    lpb = image.lines_per_burst
    first, last = plan.source_line[1700], plan.source_line[2299]  # the caller's bounds carry the filter margin
    assert w[:, 0].min() == first and (w[:, 0] + w[:, 2]).max() == last + 1
    assert first // lpb == last // lpb == 1  # one burst
    assert set(w[:, 1]) == {100} and set(w[:, 3]) == {232}
    # Lee Sigma: widened to whole tiles of its point-target statistics
    image.windows_read.clear()
    radar.process_slc(image.product, image, S1SLCParams(), (1, 4), str(tmp_path / "s.tif"), plan=plan,
                      bounds=(1700, 2300, 100, 332))
    w = np.array(image.windows_read)
    t = radar.STATS_TILE
    assert w[:, 0].min() == plan.source_line[1700 // t * t] and (w[:, 0] + w[:, 2]).max() == plan.source_line[-(-2300 // t) * t - 1] + 1
    assert set(w[:, 1]) == {0} and set(w[:, 3]) == {400}  # 100 looked columns: one tile


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
    tif, record = _run(slc_product, tmp_path / "aoi", "--AoI", aoi, "--speckle", "Refined Lee")
    read = record["outputs"]["metrics"]["radar_read"]["IW1"]
    lpb = image.lines_per_burst
    assert read["bursts"] == [1]
    assert lpb <= read["lines"][0] and read["lines"][1] <= 2 * lpb
    assert read["lines"][1] - read["lines"][0] < 0.5 * lpb
    assert 0 < read["samples"][0] and read["samples"][1] < image.samples
    assert record["outputs"]["metrics"]["calibration_source"] == "calibration annotation"
    full_tif, full_record = _run(slc_product, tmp_path / "full", "--speckle", "Refined Lee")
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
    lpb = image.lines_per_burst
    assert all(r // lpb == (r + h - 1) // lpb == 1 for r, _, h, _ in image.windows_read)  # burst 1 only
    ay, ax = bounded.raster.looks
    whole = radar.process_slc(image.product, image, params, (ay, ax), str(tmp_path / "whole.tif"))
    inverse = service.inverse_map(image.product, image, params, grid, radar.deburst_plan(image))
    inverse.maps = [((r - whole.row0) / ay, (c - whole.col0) / ax) for r, c in inverse.maps]
    out = []
    for name, source in (("a.tif", bounded), ("b.tif", service.Source(whole, inverse))):
        service.geocode([source], grid, tmp_path / name, db=False, aoi=aoi, landsea=None, dem=None,
                        dem_geoid_height=0.0, band="Sigma_VV")
        out.append(_raster(tmp_path / name))
    assert (out[0] != service.NODATA).sum() > 1000
    np.testing.assert_array_equal(out[0], out[1])
