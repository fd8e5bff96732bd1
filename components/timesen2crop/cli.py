"""``timesen2crop``: the TimeSen2Crop archive (seed section 3.2.2) to train.npy / y_train.npy."""

from __future__ import annotations

import sys

from components.common.cli import run_cli

from .params import TimeSen2CropParams

INPUTS = [
    (("--input_dir", "-i"), "TimeSen2Crop archive: folder (or .zip) with one folder per tile, or s3://bucket/key"),
    (("--output_dir", "-o"), "Output folder or s3://bucket/prefix"),
]


def _run(input_dir: str, output_dir: str, params: TimeSen2CropParams):
    from .service import run  # imported late so that --help answers at once

    return run(input_dir, params, output_dir)


def main(argv: list[str] | None = None) -> int:
    return run_cli("timesen2crop", "TimeSen2Crop crop-type dataset: read the per-tile, per-class CSV archive "
                   "into train.npy [N, timesteps, bands] and y_train.npy, with monthly steps aligned to "
                   "monthlycomposite and tile-out validation/test sets.",
                   TimeSen2CropParams, INPUTS, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
