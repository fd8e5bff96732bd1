"""Benchmarks of the Sentinel-1 services (issue 4). Prints figures; asserts nothing.

1. A full-size synthetic IW GRD on the real Rome annotation geometry (26102 x 16705, simulated
   speckle, real calibration and noise LUTs) through default ``S1-GRD-preprocess`` (Lee Sigma,
   ellipsoid geocoding to WGS84 at 10 m, COG). Targets on a 2-core machine: <= 180 s, <= 4 GiB.
2. ``S1-CD`` on a synthetic pair of one full IW sub-swath (IW1 of the sample SLC: 9 bursts x
   21632 samples), reported as the whole run and its co-registration + coherence step.
   Target: coherence <= 120 s per sub-swath.
3. The S1-CD interferometric chain alone (geometry on the ellipsoid, ESD, deramp / sinc
   resampling / reramp, phase removal, coherence; no backscatter, no geocoding) on ``--bursts``
   bursts x 21632 samples of the same pair (default 9: one full IW1 sub-swath), in this
   process. Target: <= 240 s per sub-swath on 2 cores.

Each service runs in a child process, so the peak resident memory reported is its own
(``bench/harness.py``). The inputs are written to a temporary folder (about 1 GB and
2.5 GB) that is removed at the end; ``--keep DIR`` writes them there and reuses them.

    .venv/bin/python bench/s1.py [--only grd|cd|coh] [--bursts N] [--keep DIR]
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


def _child(cmd: list[str]) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS GiB of the child, exit status). CPU seconds do not
    depend on what else the machine runs: on an idle 2-core machine the wall time is between
    CPU/2 and CPU."""
    m = measure(cmd)
    return m["seconds"], m["cpu_s"], m["peak_mib"] / 1024, m["rc"]


def bench_grd(root: Path) -> dict:
    source = s1_products.real_safe(s1_products.GRD_SAMPLE)
    product = root / "grd" / source.name
    if not product.exists():
        t0 = time.perf_counter()
        s1_products.write_grd(root / "grd", source=source, pols=("VV",), full_size=True)
        print(f"synthetic full GRD written in {time.perf_counter() - t0:.0f} s: {product}", flush=True)
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
    parser.add_argument("--only", choices=("grd", "cd", "coh"))
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
        print("\nsummary")
        for r in results:
            step = r.get("coregistration_and_coherence_s")
            extra = f", coherence step {step} s" if step is not None else ""
            print(f"  {r['case']}: {r['wall_s']} s wall, {r['cpu_s']} s CPU, peak {r['peak_rss_gib']} GiB{extra} "
                  f"(exit {r['exit']})")
        with open("/proc/loadavg") as fh:
            print(f"load average {fh.read().split()[0]} at the end (other processes share the 2 cores)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
