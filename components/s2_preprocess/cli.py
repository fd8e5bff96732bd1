"""``S2-preprocess``: the seed's command line (section 2.2.3), flags and defaults of Table 4."""

from __future__ import annotations

import sys

from components.common.cli import run_cli

from .params import S2PreprocessParams

INPUTS = [
    (("--input", "-i"), "Sentinel-2 product: .SAFE folder, .zip, or s3://bucket/key of either"),
    (("--outdir", "--output_path", "-o"), "Output folder or s3://bucket/prefix"),
]


def _run(input_uri: str, outdir: str, params: S2PreprocessParams):
    from .service import run  # imported late so that --help answers at once

    return run(input_uri, params, outdir)


def main(argv: list[str] | None = None) -> int:
    return run_cli("S2-preprocess", "Sentinel-2 pre-processing: resample bands to one grid, mask clouds "
                   "and land or sea, crop to an AoI, reproject, write a Cloud Optimized GeoTIFF.",
                   S2PreprocessParams, INPUTS, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
