"""``S1-GRD-preprocess`` and ``S1-SLC-preprocess``: the seed's command lines (sections 2.2.1 and
2.2.2), flags and defaults of Tables 2 and 3."""

from __future__ import annotations

import sys

from components.common.cli import run_cli

from .params import S1GRDParams, S1SLCParams

INPUTS = [
    (("--input", "-i"), "Sentinel-1 product: .SAFE folder, .zip, or s3://bucket/key of either"),
    (("--outdir", "--output_path", "-o"), "Output folder or s3://bucket/prefix"),
]


def _grd(input_uri: str, outdir: str, params: S1GRDParams):
    from .service import run_grd  # imported late so that --help answers at once

    return run_grd(input_uri, params, outdir)


def _slc(input_uri: str, outdir: str, params: S1SLCParams):
    from .service import run_slc

    return run_slc(input_uri, params, outdir)


def main_grd(argv: list[str] | None = None) -> int:
    return run_cli("S1-GRD-preprocess", "Sentinel-1 GRD pre-processing: thermal and border noise removal, "
                   "calibration, speckle filter, geocoding (ellipsoid, or terrain with --dem), Cloud Optimized "
                   "GeoTIFF. --engine snap writes/runs the SNAP graph instead.", S1GRDParams, INPUTS, _grd, argv)


def main_slc(argv: list[str] | None = None) -> int:
    return run_cli("S1-SLC-preprocess", "Sentinel-1 SLC pre-processing: thermal noise removal, TOPS deburst, "
                   "calibration, multilook, speckle filter, geocoding, Cloud Optimized GeoTIFF. --engine snap "
                   "writes/runs the SNAP graph instead.", S1SLCParams, INPUTS, _slc, argv)


main = main_grd

if __name__ == "__main__":
    sys.exit(main_slc() if len(sys.argv) > 1 and sys.argv[1] == "slc" and sys.argv.pop(1) else main_grd())
