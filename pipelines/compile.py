"""Compile every pipeline into pipelines/compiled/<name>.yaml: ``python -m pipelines.compile``."""

from __future__ import annotations

import sys
from pathlib import Path

from kfp import compiler

from pipelines.aq_downscaling import aq_downscaling
from pipelines.crop_type_mapping import crop_type_mapping
from pipelines.crop_type_training import crop_type_training
from pipelines.osm_features import osm_features
from pipelines.s1_ard import s1_ard
from pipelines.s1_change import s1_change
from pipelines.s2_ard import s2_ard
from pipelines.s2_segmentation import s2_segmentation
from pipelines.s2_change import s2_change

PIPELINES = {"s2_ard": s2_ard, "s1_ard": s1_ard, "s1_change": s1_change, "osm_features": osm_features, "s2_change": s2_change, "aq_downscaling": aq_downscaling,
             "crop_type_training": crop_type_training, "crop_type_mapping": crop_type_mapping,
             "s2_segmentation": s2_segmentation}
COMPILED = Path(__file__).parent / "compiled"


def compile_all(outdir: Path = COMPILED) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, func in PIPELINES.items():
        path = outdir / f"{name}.yaml"
        compiler.Compiler().compile(func, str(path))
        written.append(path)
    return written


if __name__ == "__main__":
    for p in compile_all(Path(sys.argv[1]) if len(sys.argv) > 1 else COMPILED):
        print(p)
