"""``S1-CD``: the seed's command line (section 2.2.4), flags and defaults of Table 5."""

from __future__ import annotations

import sys

from components.common.cli import run_cli

from .params import S1CDParams

INPUTS = [
    (("--input1",), "Sentinel-1 SLC of date 1 (reference): .SAFE folder, .zip, or s3:// URI"),
    (("--input2",), "Sentinel-1 SLC of date 2 (same track, 6 x n days apart)"),
    (("--outdir", "--output_path", "-o"), "Output folder or s3://bucket/prefix"),
]


def _run(input1: str, input2: str, outdir: str, params: S1CDParams):
    from .service import run  # imported late so that --help answers at once

    return run(input1, input2, params, outdir)


def main(argv: list[str] | None = None) -> int:
    return run_cli("S1-CD", "Sentinel-1 change detection of an SLC pair: coherence, backscatter of both dates, "
                   "ACD and MTC RGB composites and a change mask, as Cloud Optimized GeoTIFFs.",
                   S1CDParams, INPUTS, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
