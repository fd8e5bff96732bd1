"""S1-CD end to end on a synthetic SLC pair, the pair checks, the SNAP graphs, bad inputs."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import rasterio
from PIL import Image

from components.s1_change_detection.cli import main
from tests.fixtures import s1_products
from tests.gdal_read import categories
from tests.stac_schema import validate_item

ROLES = ("coherence", "backscatter_date1", "backscatter_date2", "acd", "mtc", "change")


def test_change_products(slc_pair, tmp_path):
    a, b = slc_pair
    out = tmp_path / "out"
    assert main(["--input1", str(a), "--input2", str(b), "--outdir", str(out), "--resolution", "20"]) == 0
    record = json.loads((out / "run.json").read_text())
    products = record["outputs"]["products"]
    assert tuple(products) == ROLES
    metrics = record["outputs"]["metrics"]
    assert metrics["temporal_baseline_days"] == pytest.approx(12.0)
    shift = metrics["coregistration_shift"]["IW1"]
    assert shift["patches"] >= 1 and abs(shift["rows"]) < 0.1 and abs(shift["cols"]) < 0.1
    for role in ROLES:
        tif = out / products[role]
        item = json.loads((out / tif.name.replace(".tif", ".json")).read_text())
        validate_item(item)
        assert [link["rel"] for link in item["links"]] == ["self", "derived_from", "derived_from"]
        assert (out / tif.name.replace(".tif", "_quicklook.png")).exists()
    with rasterio.open(out / products["coherence"]) as ds:
        coh = ds.read(1, masked=True).compressed()
    assert np.median(coh) == pytest.approx(0.9, abs=0.05)  # the simulated coherence
    with rasterio.open(out / products["change"]) as ds:
        change = ds.read(1)
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255
    with rasterio.open(out / products["coherence"]) as ds:
        low = ds.read(1, masked=True)
    # the change patch (coherence 0.2, +6 dB) is what the mask finds
    flagged = change == 1
    assert 0.3 < 100 * flagged.sum() / (change != 255).sum() < 3
    assert np.ma.median(low[flagged]) < 0.4
    for role in ("acd", "mtc"):
        with rasterio.open(out / products[role]) as ds:
            assert (ds.count, ds.dtypes[0], ds.nodata) == (3, "uint8", 0)
            rgb = ds.read()
        valid = rgb[0] > 0
        assert rgb[0][valid].min() >= 1 and rgb[0][valid].max() == 255
    with rasterio.open(out / products["acd"]) as ds:
        acd = ds.read()
    assert np.array_equal(acd[1], acd[2])  # G and B are both date 2
    assert metrics["stretch_db_date1"][0] < metrics["stretch_db_date1"][1]
    # what GDAL and QGIS users see: units in GDAL's unit field, the change classes as categories,
    # a change quicklook with a legend
    with rasterio.open(out / products["backscatter_date1"]) as ds:
        assert ds.units == ("linear",) and "units" not in ds.tags(1)
    names, rows = categories(out / products["change"])
    assert names[:2] == ["no change", "change"] and names[255] == "no data"
    assert [r["Class_Name"] for r in rows] == ["no change", "change", "no data"]
    with Image.open(out / products["change"].replace(".tif", "_quicklook.png")) as im:
        px = np.asarray(im.convert("RGBA"))
    scale = max(change.shape) / 1024  # the map is drawn at most 1024 px
    qh, qw = round(change.shape[0] / scale), round(change.shape[1] / scale)
    with rasterio.open(out / products["change"]) as ds:
        small = ds.read(1, out_shape=(qh, qw), resampling=rasterio.enums.Resampling.nearest)
    assert px.shape[1] > qw
    legend = {tuple(p) for p in px[:, qw:].reshape(-1, 4)}
    shown = [{tuple(p) for p in px[:qh, :qw][small == v]} for v in (0, 1)]
    assert all(len(c) == 1 and c <= legend for c in shown) and shown[0] != shown[1]


def test_refinement_finds_a_shift_the_annotation_does_not_tell(shifted_pair, tmp_path):
    a, b = shifted_pair
    medians, shifts = {}, {}
    for refine in ("true", "false"):  # the default, and without
        out = tmp_path / refine
        assert main(["--input1", str(a), "--input2", str(b), "--outdir", str(out), "--resolution", "20",
                     "--refine_coregistration", refine]) == 0
        record = json.loads((out / "run.json").read_text())
        shift = record["outputs"]["metrics"]["coregistration_shift"]["IW1"]
        shifts[refine] = (shift["rows"], shift["cols"])
        with rasterio.open(out / record["outputs"]["products"]["coherence"]) as ds:
            medians[refine] = np.ma.median(ds.read(1, masked=True))
    assert shifts == {"true": (pytest.approx(2, abs=0.1), pytest.approx(3, abs=0.1)), "false": (0, 0)}
    assert medians["true"] == pytest.approx(0.9, abs=0.05)  # the simulated coherence, recovered
    assert medians["false"] < 0.5


def test_mismatched_pair_is_refused_before_any_work(real_slc, slc_pair, tmp_path, capsys):
    a, _ = slc_pair
    other_track = s1_products.write_slc(tmp_path / "t", source=real_slc, date=1, shift_days=12, relative_orbit=95)
    five_days = s1_products.write_slc(tmp_path / "f", source=real_slc, date=1, shift_days=5)
    for other, fragment in ((other_track, "not from the same track: relative orbits 168 and 95"),
                            (five_days, "5.00 days apart, not a multiple of 6 days")):
        out = tmp_path / "out"
        t0 = time.perf_counter()
        code = main(["--input1", str(a), "--input2", str(other), "--outdir", str(out)])
        elapsed = time.perf_counter() - t0
        err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert code == 2 and len(err) == 1 and err[0].startswith("S1-CD: error: ") and fragment in err[0]
        assert elapsed < 5 and not out.exists()


def test_bad_inputs(slc_pair, real_slc, tmp_path, capsys):
    a, b = slc_pair
    grd = s1_products.write_grd(tmp_path / "g", source=s1_products.real_safe(s1_products.GRD_SAMPLE,
                                                                             real_slc.parents[1]), pols=("VV",))
    cases = [
        (["--input1", str(a), "--input2", str(grd)], "S1-CD needs SLC products"),
        (["--input1", str(a), "--input2", str(b), "--polarization", "HH"], "polarization HH is not in"),
        (["--input1", str(a), "--input2", str(tmp_path / "none.zip")], "input not found"),
        (["--input1", str(a), "--input2", str(b), "--percentile_low", "98"], "parameter 'percentile_low'"),
        (["--input1", str(a), "--input2", str(b), "--coherence_window_rg", "0"], "parameter 'coherence_window_rg'"),
        (["--input1", str(a), "--input2", str(b), "--calibration", "SigmaDB"], "parameter 'calibration'"),
    ]
    for args, fragment in cases:
        out = tmp_path / "out"
        code = main(args + ["--outdir", str(out)])
        err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert code == 2 and len(err) == 1 and fragment in err[0], (args, err)
        assert not out.exists()


def test_snap_graphs_only(slc_pair, tmp_path):
    a, b = slc_pair
    out = tmp_path / "out"
    assert main(["--input1", str(a), "--input2", str(b), "--outdir", str(out), "--engine", "snap",
                 "--graph_only", "true", "--coherence_window_az", "3"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["backscatter_date1_graph.xml", "backscatter_date2_graph.xml", "coherence_IW1_graph.xml",
                     "run.json"]
    text = (out / "coherence_IW1_graph.xml").read_text()
    assert "<operator>Back-Geocoding</operator>" in text and "<cohWinAz>3</cohWinAz>" in text



def test_a_pair_given_latest_first_is_taken_in_date_order(slc_pair, tmp_path):
    a, b = slc_pair  # b is 12 days after a
    out = tmp_path / "out"
    assert main(["--input1", str(b), "--input2", str(a), "--outdir", str(out), "--engine", "snap",
                 "--graph_only", "true"]) == 0
    graph = (out / "backscatter_date1_graph.xml").read_text()
    assert str(a.resolve()) in graph and str(b.resolve()) not in graph
    record = json.loads((out / "run.json").read_text())
    assert [(i["uri"], i["role"]) for i in record["inputs"]] == [(str(a), "date 1"), (str(b), "date 2")]

def test_geocoding_without_a_dem_is_s1_slc_preprocess_range_doppler(real_slc, tmp_path):
    """Without a DEM both S1 services place a radar pixel at the same ground point: range-Doppler
    at the geolocation grid's heights, not the grid's interpolated lat/lon."""
    from components.common.aoi import load_aoi
    from components.s1_change_detection import service as cd
    from components.s1_preprocess import geocoding, radar
    from components.s1_preprocess import service as s1
    from components.s1_preprocess.params import S1SLCParams
    from components.s1_preprocess.product import open_product

    product = open_product(real_slc, tmp_path, expect="SLC")
    image = product.image("IW1", "VV")
    model, rows = s1.gcp_model(image)
    lon, lat, _ = (float(v[0]) for v in model.forward(np.array([rows / 2]), np.array([image.samples / 2])))
    aoi = load_aoi(f"POLYGON(({lon - .05} {lat - .05},{lon + .05} {lat - .05},{lon + .05} {lat + .05},"
                   f"{lon - .05} {lat + .05},{lon - .05} {lat - .05}))")
    grid = geocoding.make_grid(geocoding.target_crs("WGS84"), 20.0, s1.footprint([image]), aoi)
    plan = radar.plan_for(image)
    orbit = s1.load_orbit(product, image, None)[0]
    ours = cd._inverse_map(image, plan, orbit, grid, None, model)
    theirs = s1.inverse_map(product, image, S1SLCParams(), grid, radar.deburst_plan(image))
    for (r1, c1), (r2, c2) in zip(ours.maps, theirs.maps):
        ok = np.isfinite(r1) & np.isfinite(r2)
        assert ok.mean() > 0.9
        np.testing.assert_allclose(r1[ok], r2[ok], atol=1e-3)
        np.testing.assert_allclose(c1[ok], c2[ok], atol=1e-3)


def test_a_pair_across_the_antimeridian_is_the_pair_moved(slc_pair, tmp_path):
    """The pair turned about the Earth's axis until the antimeridian runs through it (ESA writes
    its longitudes in [-180, 180]): the same coherence, on a grid moved by the turn."""
    import re
    import shutil

    annotation = next(slc_pair[0].glob("annotation/s1*.xml")).read_text()
    turn = 180.0 - np.mean([float(v) for v in re.findall(r"<longitude>([^<]+)</longitude>", annotation)])
    turned = [s1_products.turn_about_axis(shutil.copytree(p, tmp_path / "inputs" / p.name), turn) for p in slc_pair]
    found = {}
    for name, (a, b) in (("plain", slc_pair), ("turned", turned)):
        out = tmp_path / name
        assert main(["--input1", str(a), "--input2", str(b), "--outdir", str(out), "--resolution", "20"]) == 0
        record = json.loads((out / "run.json").read_text())
        with rasterio.open(out / record["outputs"]["products"]["coherence"]) as ds:
            found[name] = ds.read(1, masked=True), ds.bounds
    (plain, bounds), (moved, moved_bounds) = found["plain"], found["turned"]
    assert moved_bounds.left < 180.0 < moved_bounds.right
    assert moved_bounds.left == pytest.approx(bounds.left + turn, abs=0.001)
    assert moved.count() == pytest.approx(plain.count(), rel=0.01)
    assert np.ma.median(moved) == pytest.approx(np.ma.median(plain), abs=0.01)
