"""``monthlycomposite``: the seed's command line (section 3.2.3, Table 9)."""

from __future__ import annotations

import sys

from components.common.cli import run_cli

from .params import MonthlyCompositeParams

INPUTS = [
    (("--input_dir", "-i"), "Folder (or s3://bucket/prefix) holding REFBOA/ and LAI/ GeoTIFFs; the first "
                            "YYYYMMDD in each file name is its acquisition date"),
    (("--output_dir", "-o"), "Output folder or s3://bucket/prefix"),
]


def _run(input_dir: str, output_dir: str, params: MonthlyCompositeParams):
    from .service import run  # imported late so that --help answers at once

    return run(input_dir, params, output_dir)


def main(argv: list[str] | None = None) -> int:
    return run_cli("monthlycomposite", "Harmonisation of a pre-processed Sentinel-2 time series: 12 monthly "
                   "median composites (September to August) of the BOA bands, cloudy samples (LAI = 0) left out.",
                   MonthlyCompositeParams, INPUTS, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
