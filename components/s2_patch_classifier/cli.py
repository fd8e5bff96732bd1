"""``s2-patch-classifier``: the seed's command line (section 3.2.1, Table 7), with its flag
spellings (``-action``, ``-b/--batch-size``, ``-patch_size``, ...) and defaults."""

from __future__ import annotations

import sys

from components.common.cli import run_cli

from .params import S2PatchClassifierParams

INPUTS = [
    (("--input", "-i"), "Folder of Sentinel-2 tiles with labels (train, extract_data, full), of tiles "
                        "(predict, pretrain), or a patch folder from extract_data; local path or s3:// URI"),
    (("--outdir", "--output_path", "-o"), "Output folder or s3://bucket/prefix"),
]


def _run(input_uri: str, outdir: str, params: S2PatchClassifierParams):
    from .service import run  # imported late so that --help answers at once

    return run(input_uri, params, outdir)


def main(argv: list[str] | None = None) -> int:
    return run_cli("s2-patch-classifier", "Pixel-level classification of Sentinel-2 patches: a U-Net with a "
                   "ResNet-50 encoder, self-supervised pre-training, training and sliding-window prediction.",
                   S2PatchClassifierParams, INPUTS, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
