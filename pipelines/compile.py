"""Compile every pipeline into pipelines/compiled/<name>.yaml: ``python -m pipelines.compile``."""

from __future__ import annotations

import sys
from pathlib import Path

from kfp import compiler

from pipelines.osm_features import osm_features
from pipelines.s2_ard import s2_ard

PIPELINES = {"s2_ard": s2_ard, "osm_features": osm_features}
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
