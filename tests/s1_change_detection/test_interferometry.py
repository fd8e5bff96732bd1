"""TOPS interferometry of S1-CD on simulated IW pairs with the real annotation (timing, Doppler
centroid and FM rate, steering rate): coherence of a coherent pair on every 10-line row, ESD,
flat-earth and topographic phase, and the same steps as the SNAP graph."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from components.s1_change_detection import interferometry, kernels, tops
from components.s1_change_detection.cli import main
from components.s1_change_detection.params import S1CDParams
from components.s1_preprocess import geocoding, radar, snap_graphs
from components.s1_preprocess import service as s1
from components.s1_preprocess.product import open_product


def _pair(a, b, tmp_path, dem=None):
    p1 = open_product(a, tmp_path / "u1", expect="SLC")
    p2 = open_product(b, tmp_path / "u2", expect="SLC")
    im1, im2 = p1.image("IW1", "VV"), p2.image("IW1", "VV")
    orbit1, orbit2 = s1.load_orbit(p1, im1, None)[0], s1.load_orbit(p2, im2, None)[0]
    model, _ = s1.gcp_model(im1)
    heights = interferometry.DemHeights(str(dem), p1.footprint_lonlat) if dem else None
    return interferometry.PairSwath(im1, im2, orbit1, orbit2, model, radar.plan_for(im1), heights)


def _row_means(coh: np.ndarray) -> np.ndarray:
    rows = [coh[i:i + 10] for i in range(0, coh.shape[0] - 9, 10)]
    assert all(np.isfinite(r).mean() > 0.5 for r in rows)  # every row has data
    return np.array([np.nanmean(r) for r in rows])


def test_tops_pair_is_coherent_on_every_row(tops_pair, tmp_path):
    a, b, _ = tops_pair
    pair = _pair(a, b, tmp_path)
    pair.estimate_esd()
    rows = _row_means(interferometry.full_coherence(pair))
    assert rows.min() >= 0.95, rows.min()
    # the co-registration found the 0.4-line offset the annotation gives
    node = pair.nodes(0)
    assert np.mean(node.sec_line - node.rows[:, None]) == pytest.approx(0.4, abs=0.002)
    # the same pair resampled as before (complex bilinear on the raw, ramped burst) is not
    sec_line, sec_col = node.sec_line, node.sec_col
    lines = np.arange(200, 1200)
    cols = np.arange(pair.im1.samples)
    ref = pair.im1.read(int(lines[0]), 0, lines.size, cols.size).astype(complex)
    raw = pair.im2.read(0, 0, pair.lpb2, pair.im2.samples).astype(complex)
    rr = tops.node_interp(sec_line, node.rows, node.cols, lines, cols)
    cc = tops.node_interp(sec_col, node.rows, node.cols, lines, cols)
    naive = geocoding.sample_bilinear(raw.real, rr, cc) + 1j * geocoding.sample_bilinear(raw.imag, rr, cc)
    naive_rows = _row_means(kernels.coherence(ref, naive, (10, 10))[:, 10:-10])
    assert naive_rows.min() < 0.5


def test_baseline_over_terrain_and_esd(baseline_pair, tmp_path):
    a, b, dem = baseline_pair
    pair = _pair(a, b, tmp_path, dem)
    report = pair.estimate_esd()
    # the 0.02 line the annotation does not tell, found in the burst overlap
    assert [o["shift_lines"] for o in report["overlaps"]] == [pytest.approx(0.02, abs=0.002)]
    assert report["burst_shift_lines"] == [pytest.approx(0.02, abs=0.002)] * 2
    rows = _row_means(interferometry.full_coherence(pair))
    assert rows.min() >= 0.95, rows.min()
    # the range difference of the two orbits is what the phase removal takes out: without it
    # the flat-earth and topographic fringes decorrelate a 10 x 10 window
    for k in range(2):
        pair.nodes(k).d_range[:] = 0.0
    assert _row_means(interferometry.full_coherence(pair)).min() < 0.93


def test_native_run_and_snap_graph_describe_the_same_steps(baseline_pair, tmp_path):
    a, b, dem = baseline_pair
    out = tmp_path / "native"
    assert main(["--input1", str(a), "--input2", str(b), "--outdir", str(out), "--resolution", "20",
                 "--dem", str(dem), "--speckle", "None"]) == 0
    record = json.loads((out / "run.json").read_text())
    metrics = record["outputs"]["metrics"]
    insar = metrics["interferometry"]
    assert insar["heights"].startswith(f"DEM {dem.name}")
    assert metrics["geocoding"] == f"terrain (DEM {dem.name})"
    assert insar["esd"]["IW1"]["burst_shift_lines"] == [pytest.approx(0.02, abs=0.003)] * 2
    with rasterio.open(out / record["outputs"]["products"]["coherence"]) as ds:
        coh = ds.read(1, masked=True).compressed()
    assert np.median(coh) >= 0.97 and np.percentile(coh, 1) >= 0.9
    snap = tmp_path / "snap"
    assert main(["--input1", str(a), "--input2", str(b), "--outdir", str(snap), "--engine", "snap",
                 "--graph_only", "true", "--dem", str(dem)]) == 0
    graph_ops = json.loads((snap / "run.json").read_text())["outputs"]["graphs"]["coherence_IW1_graph.xml"]
    steps = [op for i, op in enumerate(graph_ops) if op in insar["steps"] and op not in graph_ops[:i]]
    assert steps == insar["steps"]
    text = (snap / "coherence_IW1_graph.xml").read_text()
    assert "<subtractFlatEarthPhase>true</subtractFlatEarthPhase>" in text
    assert "<subtractTopographicPhase>true</subtractTopographicPhase>" in text
    assert text.count(f"<externalDEMFile>{dem}</externalDEMFile>") >= 2  # Back-Geocoding and Coherence


def test_coherence_graph_without_dem_says_where_the_engines_differ(tmp_path):
    g = snap_graphs.coherence_graph(S1CDParams(), "a.SAFE", "b.SAFE", str(tmp_path / "c"), 20.0, "IW", "IW1")
    ops = g.operators()
    assert ops.index("Back-Geocoding") < ops.index("Enhanced-Spectral-Diversity") < ops.index("Coherence") \
        < ops.index("TOPSAR-Deburst") < ops.index("Terrain-Correction")
    assert "the native engine geocodes on the ellipsoid" in g.to_xml()


def test_dem_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines at hyphens
    assert "co-registration(Back-Geocoding)" in text and "topographicphaseremovedbeforethecoherence" in text


def test_unusable_dem_is_one_line(slc_pair, tmp_path, capsys):
    a, b = slc_pair
    (tmp_path / "text.tif").write_text("not a raster")
    for dem, fragment in ((tmp_path / "absent.tif", "DEM file does not exist"),
                          (tmp_path / "text.tif", "DEM file cannot be read as a raster")):
        out = tmp_path / "out"
        code = main(["--input1", str(a), "--input2", str(b), "--outdir", str(out), "--dem", str(dem)])
        err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert code == 2 and len(err) == 1 and fragment in err[0], err
        assert not out.exists()
