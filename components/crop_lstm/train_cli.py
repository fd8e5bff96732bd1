"""``train_lstm``: the seed's command line (section 3.2.4, Table 10)."""

from __future__ import annotations

import sys

from components.common.cli import run_cli

from .params import TrainParams

INPUTS = [
    (("--input_dir", "-i"), "Folder (or s3://bucket/prefix) holding train.npy [N, timesteps, bands] and "
                            "y_train.npy [N]"),
    (("--output_dir", "-o"), "Output folder or s3://bucket/prefix"),
]


def _run(input_dir: str, output_dir: str, params: TrainParams):
    from .train_service import run  # imported late so that --help answers at once

    return run(input_dir, params, output_dir)


PROG = "train_lstm"
DESCRIPTION = ("Train a Long Short-Term Memory network from scratch on Sentinel-2 time series samples; writes a .h5 "
               "model (weights, configuration, normalisation, class names) and its ONNX export.")


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, TrainParams, INPUTS, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
