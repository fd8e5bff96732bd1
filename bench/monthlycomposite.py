"""Speed and peak memory of monthlycomposite.

Writes (and caches) a synthetic REFBOA/LAI time series of one tile (``--size`` px square, an
acquisition every ``--step-days`` days over the agronomic year, clouds marked by LAI = 0, nine
bands uint16 and LAI float32, tiled DEFLATE GeoTIFFs), then runs ``monthlycomposite`` on it in a
child process of its own and reports wall and CPU seconds, peak resident memory, the input read
per second, and the time extrapolated to a full 10980 x 10980 tile by pixel count.

The service works block by block, so its peak memory depends on ``--block_size`` and the number of
acquisitions in a month, not on the tile size: a small tile with as many acquisitions per month
as a real one gives the real peak.

    python bench/monthlycomposite.py                        # 1024 px, an acquisition every 5 days
    python bench/monthlycomposite.py --size 2048 --step-days 10

Prints one JSON object; asserts nothing. The cache lives in ``$EO_BENCH_CACHE`` or
``~/.cache/eo-kfp-bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import cache_dir, measure  # noqa: E402

FULL_TILE_PX = 10980 * 10980


def prepare(size: int, step_days: int) -> Path:
    from tests.fixtures.timesen2crop_archive import write_time_series

    folder = cache_dir() / f"monthlycomposite-{size}-{step_days}d"
    if not (folder / "READY").exists():
        write_time_series(folder / "series", size=size, step_days=step_days, seed=5)
        (folder / "READY").write_text("ok\n")
    return folder / "series"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1024, help="tile side in pixels")
    ap.add_argument("--step-days", type=int, default=5, help="days between acquisitions (5: one satellite pair)")
    ap.add_argument("--block-size", type=int, default=512)
    args = ap.parse_args(argv)

    series = prepare(args.size, args.step_days)
    boa = sorted((series / "REFBOA").glob("*.tif"))
    input_mb = sum(p.stat().st_size for d in ("REFBOA", "LAI") for p in (series / d).glob("*.tif")) / 1e6
    with tempfile.TemporaryDirectory(prefix="mc-bench-") as tmp:
        out = Path(tmp) / "out"
        child = measure([sys.executable, "-m", "components.s2_harmonization.cli", "--input_dir", str(series),
                         "--output_dir", str(out), "--block_size", str(args.block_size)], log=Path(tmp) / "log")
        if child["rc"] != 0:
            raise SystemExit(f"monthlycomposite failed:\n{child['tail']}")
        record = json.loads((out / "run.json").read_text())
    per_month = [m["acquisitions"] for m in record["outputs"]["months"]]
    pixels = args.size * args.size
    print(json.dumps({
        "size": args.size, "acquisitions": len(boa),
        "acquisitions_per_month_max": max(per_month),
        "block_size": args.block_size, "input_mb": round(input_mb, 1),
        "seconds": child["seconds"], "cpu_seconds": child["cpu_s"], "peak_mib": child["peak_mib"],
        "input_mb_per_second": round(input_mb / child["seconds"], 1),
        "full_tile_estimate_seconds": round(child["seconds"] * FULL_TILE_PX / pixels),
        "timings_s": record["timings_s"], "cpus": len(os.sched_getaffinity(0)),
        "load_avg_1min": round(os.getloadavg()[0], 2)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
