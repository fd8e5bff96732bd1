"""``S2-CD``: the seed's command line (section 2.2.5), flags and defaults of Table 6."""

from __future__ import annotations

import sys

from components.common.cli import run_cli

from .params import S2ChangeParams

INPUTS = [
    (("--input1",), "First (reference) acquisition: Sentinel-2 product (.SAFE folder or .zip), a stack "
                    "pre-processed by S2-preprocess (its GeoTIFF or output folder), or s3:// of either"),
    (("--input2",), "Second acquisition of the same tile, in the same forms; changes go from input1 to input2"),
    (("--output_path", "--outdir", "-o"), "Output folder or s3://bucket/prefix"),
]


def _run(input1: str, input2: str, output_path: str, params: S2ChangeParams):
    from .service import run  # imported late so that --help answers at once

    return run(input1, input2, params, output_path)


def main(argv: list[str] | None = None) -> int:
    return run_cli("S2-CD", "Sentinel-2 change detection by Change Vector Analysis: normalise one date to "
                   "the other, test the difference vector (chi-squared), classify the changes by K-means on "
                   "magnitude and angle; writes the change classes and the CVA as GeoTIFFs.",
                   S2ChangeParams, INPUTS, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
