"""Benchmarks of the Sentinel-1 services (issue 4). Prints figures; asserts nothing.

1. A full-size synthetic IW GRD on the real Rome annotation geometry (26102 x 16705, simulated
   speckle, real calibration and noise LUTs) through default ``S1-GRD-preprocess`` (Lee Sigma,
   ellipsoid geocoding to WGS84 at 10 m, COG). Targets on a 2-core machine: <= 180 s, <= 4 GiB.
2. ``S1-CD`` on a synthetic pair of one full IW sub-swath (IW1 of the sample SLC: 9 bursts x
   21632 samples), reported as the whole run and its co-registration + coherence step.
   Target: coherence <= 120 s per sub-swath.
3. The radar work of ``S1-SLC-preprocess`` (read, deburst, calibration, multilook, Lee Sigma;
   10 m) on the shared IW SLC (IW1 VV: 9 bursts, 13509 x 21632, constant pixels) for square
   AoIs of growing side around the sub-swath's centre and for the whole sub-swath, measured in
   this process as CPU seconds of that step: it is bounded by the AoI, so it grows with the
   area read (CPU seconds per Mpx read about constant).
4. Side by side with sarsen 0.9.6 on the same input, AoI, DEM and grid: the full-size Rome GRD
   (real annotation, a constant DN 100 as pixels, so that the ratio of the two outputs compares
   geometry and flattening rather than speckle) onto the grid of the Rome DEM (360 x 360 at 1 arcsecond, its origin moved half a pixel onto
   whole arcseconds so that both processors' grids are the DEM's), beta0 terrain correction
   (sarsen GTC; ``--calibration Beta --dem``) and gamma0 terrain flattening (sarsen
   ``correct_radiometry="gamma_bilinear"``; ``--calibration GammaRTC``), both without thermal
   noise removal or speckle filter (sarsen has neither), DEM heights taken as ellipsoidal (as
   sarsen reads them). sarsen runs in its own interpreter, ``$SARSEN_PYTHON`` (default
   ``/tmp/sarsen-venv/bin/python``; ``python3 -m venv /tmp/sarsen-venv &&
   /tmp/sarsen-venv/bin/pip install sarsen==0.9.6``); without it its figures are "not measured".
5. The S1-CD interferometric chain alone (geometry on the ellipsoid, ESD, deramp / sinc
   resampling / reramp, phase removal, coherence; no backscatter, no geocoding) on ``--bursts``
   bursts x 21632 samples of the same pair (default 9: one full IW1 sub-swath), in this
   process. Target: <= 240 s per sub-swath on 2 cores.

Each service runs in a child process, so the peak resident memory reported is its own
(``bench/harness.py``). The inputs are written to a temporary folder (about 1 GB and
2.5 GB) that is removed at the end; ``--keep DIR`` writes them there and reuses them.

    .venv/bin/python bench/s1.py [--only grd|cd|coh|slc-aoi|sarsen] [--bursts N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import measure  # noqa: E402
import numpy as np  # noqa: E402

from tests.fixtures import s1_products  # noqa: E402
from tests.fixtures.s1_markers import write_marked_grd  # noqa: E402


def _child(cmd: list[str]) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS GiB of the child, exit status). CPU seconds do not
    depend on what else the machine runs: on an idle 2-core machine the wall time is between
    CPU/2 and CPU."""
    m = measure(cmd)
    return m["seconds"], m["cpu_s"], m["peak_mib"] / 1024, m["rc"]


def bench_grd(root: Path) -> dict:
    product = full_grd(root)
    out = root / "grd_out"
    shutil.rmtree(out, ignore_errors=True)
    wall, cpu, rss, code = _child([sys.executable, "-m", "components.s1_preprocess.cli", "--input", str(product),
                                   "--outdir", str(out)])
    record = json.loads((out / "run.json").read_text()) if code == 0 else {}
    tif = out / record.get("outputs", {}).get("product", "missing")
    return {"case": "S1-GRD-preprocess, full IW GRD 26102x16705, defaults", "exit": code, "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "peak_rss_gib": round(rss, 2), "steps_s": record.get("timings_s"),
            "output_mb": round(tif.stat().st_size / 1e6, 1) if tif.exists() else None,
            "valid_percent": record.get("outputs", {}).get("metrics", {}).get("valid_percent")}


SARSEN_PYTHON = os.environ.get("SARSEN_PYTHON", "/tmp/sarsen-venv/bin/python")
ARCSECOND_M = 111320.0 / 3600  # 1 arcsecond in the services' metres-per-degree convention


def full_grd(root: Path) -> Path:
    source = s1_products.real_safe(s1_products.GRD_SAMPLE)
    product = root / "grd" / source.name
    if not product.exists():
        t0 = time.perf_counter()
        s1_products.write_grd(root / "grd", source=source, pols=("VV",), full_size=True)
        print(f"synthetic full GRD written in {time.perf_counter() - t0:.0f} s: {product}", flush=True)
    return product


def bench_sarsen(root: Path) -> list[dict]:
    """Our terrain correction and flattening against sarsen's on the Rome DEM's grid."""
    import numpy as np
    import rasterio
    from affine import Affine

    # the full-size Rome GRD with a constant DN 100: pixel ratios then compare the geometry and the
    # flattening, not two interpolations of speckle
    product = root / "constant" / s1_products.real_safe(s1_products.GRD_SAMPLE).name
    if not product.exists():
        write_marked_grd(root / "constant", s1_products.real_safe(s1_products.GRD_SAMPLE), [], background=100)
    dem_src = next((s1_products.SHARED / "dem-rome-30m").glob("*.tif"))
    dem = root / "rome-dem-arcsec.tif"
    with rasterio.open(dem_src) as ds:
        profile, data, t = ds.profile, ds.read(1), ds.transform
    # horizontal CRS only: sarsen takes the heights as ellipsoidal, and so do we when the DEM
    # declares no vertical datum (with EPSG:9707's EGM96 heights we ask for --dem_geoid_height)
    profile.update(transform=Affine(t.a, t.b, t.c + t.a / 2, t.d, t.e, t.f + t.e / 2), crs="EPSG:4326")
    with rasterio.open(dem, "w", **profile) as ds:
        ds.write(data, 1)
        t, w, h = ds.transform, ds.width, ds.height
    q = t.a / 4  # the AoI a quarter pixel inside the DEM: the output grid is the DEM's grid
    x0, x1, y0, y1 = t.c + q, t.c + w * t.a - q, t.f + h * t.e + q, t.f - q
    aoi = f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"
    results = []
    for case, calibration, radiometry in (("beta0 terrain correction", "Beta", None),
                                          ("gamma0 terrain flattening", "GammaRTC", "gamma_bilinear")):
        out = root / f"ours_{calibration}"
        shutil.rmtree(out, ignore_errors=True)
        wall, cpu, rss, code = _child([sys.executable, "-m", "components.s1_preprocess.cli", "--input", str(product),
                                       "--outdir", str(out), "--dem", str(dem), "--AoI", aoi, "--resolution",
                                       repr(ARCSECOND_M), "--calibration", calibration, "--speckle", "None",
                                       "--thermal_noise_removal", "false", "--border_noise_removal", "false"])
        row = {"case": f"{case}, full GRD onto the Rome DEM grid ({h}x{w} at 1 arcsecond)",
               "ours": {"exit": code, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_gib": round(rss, 2)}}
        if Path(SARSEN_PYTHON).exists():
            ref = root / f"sarsen_{calibration}.tif"
            cmd = [SARSEN_PYTHON, str(REPO / "bench" / "sarsen_tc.py"), str(product), str(dem), str(ref)]
            s_wall, s_cpu, s_rss, s_code = _child(cmd + ([radiometry] if radiometry else []))
            row["sarsen"] = {"exit": s_code, "wall_s": round(s_wall, 1), "cpu_s": round(s_cpu, 1),
                             "peak_rss_gib": round(s_rss, 2)}
            row["sarsen_over_ours_wall"] = round(s_wall / wall, 2) if wall else None
            row["sarsen_over_ours_cpu"] = round(s_cpu / cpu, 2) if cpu else None
            if code == 0 and s_code == 0:
                record = json.loads((out / "run.json").read_text())
                with rasterio.open(out / record["outputs"]["product"]) as a, rasterio.open(ref) as b:
                    ours = a.read(1, masked=True).filled(np.nan)
                    theirs = b.read(1)[::-1] if b.transform.e > 0 else b.read(1)  # sarsen writes south-up
                ok = np.isfinite(ours) & np.isfinite(theirs) & (theirs > 0)
                ratio = ours[ok] / theirs[ok]
                row["ratio_ours_to_sarsen"] = {"median": round(float(np.median(ratio)), 4),
                                               "within_2_percent": round(float(np.mean(np.abs(ratio - 1) <= 0.02)), 4),
                                               "pixels": int(ok.sum())}
        else:
            row["sarsen"] = f"not measured ({SARSEN_PYTHON} absent)"
        results.append(row)
    return results


def bench_cd(root: Path) -> dict:
    source = s1_products.real_safe(s1_products.SLC_SAMPLE)
    pair = []
    for i, (date, days) in enumerate(((0, 0), (1, 12))):
        folder = root / f"slc{i}"
        existing = list(folder.glob("*.SAFE"))
        if existing:
            pair.append(existing[0])
            continue
        t0 = time.perf_counter()
        pair.append(s1_products.write_slc(folder, source=source, bursts=(0, 9), samples=(0, 21632), date=date,
                                          shift_days=days))
        print(f"synthetic full IW1 SLC written in {time.perf_counter() - t0:.0f} s: {pair[-1]}", flush=True)
    out = root / "cd_out"
    shutil.rmtree(out, ignore_errors=True)
    wall, cpu, rss, code = _child([sys.executable, "-m", "components.s1_change_detection.cli", "--input1",
                                   str(pair[0]), "--input2", str(pair[1]), "--outdir", str(out)])
    record = json.loads((out / "run.json").read_text()) if code == 0 else {}
    timings = record.get("timings_s", {})
    return {"case": "S1-CD, one full IW sub-swath pair (IW1, 9 bursts x 21632), defaults", "exit": code,
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_gib": round(rss, 2),
            "coregistration_and_coherence_s": timings.get("co-register and estimate IW1"), "steps_s": timings,
            "change_percent": record.get("outputs", {}).get("metrics", {}).get("change_percent")}


def bench_slc_aoi(root: Path) -> list[dict]:
    """The radar work of S1-SLC-preprocess (read, deburst, calibration, multilook, Lee Sigma) for
    square AoIs of growing side around IW1's centre, and for the whole sub-swath, in this
    process: CPU seconds of that step alone (the machine is shared: wall time is also printed).
    A first small run warms up the compiled kernels and the parsed annotations."""
    import numpy as np

    from components.common.aoi import load_aoi
    from components.s1_preprocess import geocoding, service
    from components.s1_preprocess.params import S1SLCParams
    from components.s1_preprocess.product import open_product

    safe = s1_products.real_safe(s1_products.SLC_SAMPLE)
    image = open_product(safe, root).image("IW1", "VV")
    model, rows = service.gcp_model(image)
    lon, lat, _ = (float(v[0]) for v in model.forward(np.array([rows / 2]), np.array([image.samples / 2])))
    crs = geocoding.target_crs("WGS84")
    results = []
    for side in (0.01, 0.025, 0.05, 0.1, 0.2, None):
        h = (side or 0) / 2
        wkt = f"POLYGON(({lon - h} {lat - h},{lon + h} {lat - h},{lon + h} {lat + h},{lon - h} {lat + h},{lon - h} {lat - h}))"
        aoi = load_aoi(wkt) if side else None
        params = S1SLCParams(aoi=wkt if side else None)
        grid = geocoding.make_grid(crs, 10.0, service.footprint([image]), aoi)
        work = root / f"slc_aoi_{side}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        image.windows_read.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        service.radar_source(image.product, image, params, grid, 10.0, work, "SLC")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        w = np.array(image.windows_read)
        mpx = float((w[:, 2] * w[:, 3]).sum()) / 1e6
        shutil.rmtree(work, ignore_errors=True)
        if side == 0.01:
            continue  # warm-up
        results.append({"aoi_side_deg": side, "radar_cpu_s": round(cpu, 2), "radar_wall_s": round(wall, 2),
                        "mpx_read": round(mpx, 2), "cpu_s_per_mpx": round(cpu / mpx, 3),
                        "bursts": sorted({int(r // image.lines_per_burst) for r in w[:, 0]} |
                                         {int((r + n - 1) // image.lines_per_burst) for r, n in w[:, [0, 2]]})})
        print(json.dumps(results[-1]), flush=True)
    return results


def _full_pair(root: Path, bursts: int) -> list[Path]:
    source = s1_products.real_safe(s1_products.SLC_SAMPLE)
    pair = []
    for i, (date, days) in enumerate(((0, 0), (1, 12))):
        folder = root / f"slc{i}" if bursts == 9 else root / f"slc{i}_{bursts}"
        existing = list(folder.glob("*.SAFE"))
        if existing:
            pair.append(existing[0])
            continue
        t0 = time.perf_counter()
        pair.append(s1_products.write_slc(folder, source=source, bursts=(0, bursts), samples=(0, 21632), date=date,
                                          shift_days=days))
        print(f"synthetic IW1 SLC ({bursts} bursts) written in {time.perf_counter() - t0:.0f} s", flush=True)
    return pair


def bench_coherence(root: Path, bursts: int) -> dict:
    from components.s1_change_detection import interferometry
    from components.s1_preprocess import radar
    from components.s1_preprocess import service as s1
    from components.s1_preprocess.product import open_product

    a, b = _full_pair(root, bursts)
    t0, c0 = time.perf_counter(), time.process_time()
    p1, p2 = open_product(a, root / "u1", expect="SLC"), open_product(b, root / "u2", expect="SLC")
    im1, im2 = p1.image("IW1", "VV"), p2.image("IW1", "VV")
    model, _ = s1.gcp_model(im1)
    pair = interferometry.PairSwath(im1, im2, s1.load_orbit(p1, im1, None)[0], s1.load_orbit(p2, im2, None)[0],
                                    model, radar.plan_for(im1))
    esd = pair.estimate_esd()
    t_esd = time.perf_counter() - t0
    total = valid = 0.0
    for _, _, coh, _, _ in pair.swath((10, 10), backscatter=False):
        ok = np.isfinite(coh)
        total += float(coh[ok].sum())
        valid += float(ok.sum())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"case": f"S1-CD interferometry, IW1 {bursts} bursts x 21632 samples ({im1.lines} lines)",
            "exit": 0, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2),
            "geometry_and_esd_s": round(t_esd, 1), "mean_coherence": round(total / max(valid, 1), 3),
            "esd_burst_shift_lines": esd["burst_shift_lines"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("grd", "cd", "coh", "slc-aoi", "sarsen"))
    parser.add_argument("--bursts", type=int, default=9, help="bursts of the interferometry case (1-9)")
    parser.add_argument("--keep", help="folder for the synthetic inputs (kept and reused)")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="s1-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        with open("/proc/loadavg") as fh:
            print(f"machine: {os.cpu_count()} CPUs, load average {fh.read().split()[0]} at start", flush=True)
        results = []
        if args.only in (None, "grd"):
            results.append(bench_grd(root))
            print(json.dumps(results[-1], indent=1), flush=True)
        if args.only in (None, "cd"):
            results.append(bench_cd(root))
            print(json.dumps(results[-1], indent=1), flush=True)
        if args.only in (None, "coh"):
            results.append(bench_coherence(root, args.bursts))
            print(json.dumps(results[-1], indent=1), flush=True)
        slc_rows = bench_slc_aoi(root) if args.only in (None, "slc-aoi") else []
        side_by_side = []
        if args.only in (None, "sarsen"):
            side_by_side = bench_sarsen(root)
            for r in side_by_side:
                print(json.dumps(r, indent=1), flush=True)
        print("\nsummary")
        for r in side_by_side:
            o, s = r["ours"], r["sarsen"]
            versus = (f"sarsen {s['wall_s']} s wall, {s['cpu_s']} s CPU, peak {s['peak_rss_gib']} GiB (exit {s['exit']}): "
                      f"sarsen/ours {r['sarsen_over_ours_wall']} wall, {r['sarsen_over_ours_cpu']} CPU"
                      if isinstance(s, dict) else f"sarsen {s}")
            agree = r.get("ratio_ours_to_sarsen")
            print(f"  {r['case']}: ours {o['wall_s']} s wall, {o['cpu_s']} s CPU, peak {o['peak_rss_gib']} GiB "
                  f"(exit {o['exit']}); {versus}" + (f"; ours/sarsen median {agree['median']}, "
                                                     f"{100 * agree['within_2_percent']:.1f} % of pixels within 2 %"
                                                     if agree else ""))
        for r in results:
            step = r.get("coregistration_and_coherence_s")
            extra = f", coherence step {step} s" if step is not None else ""
            print(f"  {r['case']}: {r['wall_s']} s wall, {r['cpu_s']} s CPU, peak {r['peak_rss_gib']} GiB{extra} "
                  f"(exit {r['exit']})")
        for r in slc_rows:
            side = f"AoI {r['aoi_side_deg']} deg" if r["aoi_side_deg"] else "no AoI (whole IW1)"
            print(f"  S1-SLC-preprocess IW1 radar work, {side}: {r['mpx_read']} Mpx read (bursts {r['bursts']}), "
                  f"{r['radar_cpu_s']} s CPU ({r['cpu_s_per_mpx']} s/Mpx), {r['radar_wall_s']} s wall")
        with open("/proc/loadavg") as fh:
            print(f"load average {fh.read().split()[0]} at the end (other processes share the 2 cores)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
