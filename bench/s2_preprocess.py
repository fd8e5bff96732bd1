"""Benchmark of S2-preprocess against the floor of the job: decoding the JPEG 2000 bands.

Generates once (and caches) a full-size synthetic Level-2A tile written like ESA's products
(10980 x 10980 B02/B03/B04/B08 at 10 m, lossless JPEG 2000 with 1024 x 1024 tiles, SCL at 20 m),
then measures, each in a fresh child process whose own peak RSS is read (``bench/harness.py``):

(a) GDAL decoding the four 10 m bands fully (``GDAL_NUM_THREADS=ALL_CPUS``);
(b) ``S2-preprocess --input <product> --outdir <tmp> --cloudmask L2A --landseamask Sea``.

Prints one JSON object with the figures, the targets and whether each is met; asserts nothing.

    python bench/s2_preprocess.py                 # full size (first run generates the tile)
    python bench/s2_preprocess.py --size 1200     # quick try

The cache lives in ``$EO_BENCH_CACHE`` or ``~/.cache/eo-kfp-bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import cache_dir, child_env, measure  # noqa: E402

TARGETS = {"max_s": 60, "max_peak_mib": 2048, "max_ratio": 1.5}
BANDS_10M = ("B02", "B03", "B04", "B08")
# Bump when the writer's output for the benchmark tile changes, so that old caches are not reused.
TILE_VERSION = 1

_DECODE_CHILD = r"""
import sys, time
import numpy as np
import rasterio
t0 = time.perf_counter()
buf = None
with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
    for path in sys.argv[1:]:
        with rasterio.open(path) as ds:
            if buf is None or buf.shape != ds.shape or buf.dtype != np.dtype(ds.dtypes[0]):
                buf = np.empty(ds.shape, dtype=ds.dtypes[0])
            ds.read(1, out=buf)
print(f"decoded {len(sys.argv) - 1} bands in {time.perf_counter() - t0:.2f} s", flush=True)
"""


def bench_spec(size: int):
    """The benchmark tile: four 10 m bands (ESA's 1024 x 1024 JPEG 2000 tiles) and SCL at 20 m."""
    from tests.fixtures.s2_products import S2ProductSpec

    return S2ProductSpec(size_10m=size, bands_10m=BANDS_10M, include_20m=True, bands_20m=("SCL",),
                         include_60m=False)


def ensure_tile(size: int, *, regenerate: bool = False) -> tuple[Path, float | None]:
    """The cached synthetic tile of ``size`` 10 m pixels; generated (and timed) when absent."""
    spec = bench_spec(size)
    folder = cache_dir() / f"s2-l2a-{size}-v{TILE_VERSION}"
    product = folder / spec.name
    if product.is_dir() and (product / "manifest.safe").is_file() and not regenerate:
        return product, None
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    print(f"generating a {size} x {size} L2A tile in {folder} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    product = spec.write(folder)
    elapsed = time.perf_counter() - t0
    print(f"generated in {elapsed:.1f} s", file=sys.stderr, flush=True)
    return product, elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=10980, help="tile side in 10 m pixels, a multiple of 6 (default 10980)")
    ap.add_argument("--keep-output", action="store_true", help="keep the S2-preprocess output folder and say where")
    ap.add_argument("--regenerate", action="store_true", help="rewrite the cached tile")
    args = ap.parse_args(argv)
    if args.size % 6:
        ap.error("--size must be a multiple of 6")

    product, generate_s = ensure_tile(args.size, regenerate=args.regenerate)
    spec = bench_spec(args.size)
    band_files = [str(spec.band_path(product, b, 10)) for b in BANDS_10M]

    work = Path(tempfile.mkdtemp(prefix="s2-preprocess-bench-"))
    outdir = work / "out"
    outdir.mkdir()
    decode = measure([sys.executable, "-c", _DECODE_CHILD, *band_files],
                     env=child_env(GDAL_NUM_THREADS="ALL_CPUS"), log=work / "decode.log")
    pre = measure([sys.executable, "-m", "components.s2_preprocess.cli", "--input", str(product),
                   "--outdir", str(outdir), "--cloudmask", "L2A", "--landseamask", "Sea"],
                  log=work / "preprocess.log")

    ok_decode, ok_pre = decode["rc"] == 0, pre["rc"] == 0
    ratio = round(pre["seconds"] / decode["seconds"], 2) if ok_decode and ok_pre else None
    result = {
        "size": args.size,
        "product": str(product),
        "cpus": os.cpu_count(),
        "generate_s": None if generate_s is None else round(generate_s, 1),
        "decode_s": decode["seconds"] if ok_decode else None,
        "decode_peak_mib": decode["peak_mib"] if ok_decode else None,
        "preprocess_s": pre["seconds"] if ok_pre else None,
        "preprocess_peak_mib": pre["peak_mib"] if ok_pre else None,
        "ratio": ratio,
        # CPU seconds of each child (user + system): less sensitive than wall time to other load
        "decode_cpu_s": decode["cpu_s"] if ok_decode else None,
        "preprocess_cpu_s": pre["cpu_s"] if ok_pre else None,
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "targets": TARGETS,
        "pass": {
            "max_s": ok_pre and pre["seconds"] <= TARGETS["max_s"],
            "max_peak_mib": ok_pre and pre["peak_mib"] <= TARGETS["max_peak_mib"],
            "max_ratio": ratio is not None and ratio <= TARGETS["max_ratio"],
        },
    }
    if ok_decode:
        result["decode_detail"] = decode["tail"].strip().splitlines()[-1] if decode["tail"].strip() else ""
    else:
        result["decode_error"] = {"rc": decode["rc"], "output_tail": decode["tail"]}
    if not ok_pre:
        result["preprocess_error"] = {"rc": pre["rc"], "seconds": pre["seconds"], "output_tail": pre["tail"]}
    if args.keep_output:
        result["output_dir"] = str(outdir)
        result["outputs"] = sorted(p.name for p in outdir.iterdir())
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
