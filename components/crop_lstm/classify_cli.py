"""``tile_classifier``: the seed's command line (section 3.2.5)."""

from __future__ import annotations

import sys

from components.common.cli import run_cli

from .params import ClassifyParams

INPUTS = [
    (("--input_dir", "-i"), "Folder (or s3://bucket/prefix) holding the .h5 model of train_lstm and, optionally, "
                            "the crop-mask GeoTIFF (0 = classify, other values ignored; none = whole image)"),
    (("--output_dir", "-o"), "Output folder or s3://bucket/prefix"),
    (("--mc_dir",), "Folder (or s3://bucket/prefix) holding the monthly composites of monthlycomposite"),
]


def _run(input_dir: str, output_dir: str, mc_dir: str, params: ClassifyParams):
    from .classify_service import run  # imported late so that --help answers at once

    return run(input_dir, mc_dir, params, output_dir)


def main(argv: list[str] | None = None) -> int:
    return run_cli("tile_classifier", "Crop-type map of a tile: a trained LSTM classifies the monthly composites "
                   "block by block where the crop mask is 0, then morphological post-processing; uint8 GeoTIFF with "
                   "the TimeSen2Crop legend.", ClassifyParams, INPUTS, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
