"""Run the ``s2_ard`` pipeline locally (no cluster) on a sample product and say where the
product and its quicklook are: ``python -m pipelines.demo [PRODUCT ...]``.

Without arguments it uses the real Level-2A sample of ``../shared/data`` (only its 60 m bands
are present, so it runs at 60 m with the L2A cloud mask); when that folder is absent it writes a
small synthetic product in the real SAFE layout first.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path(os.environ.get("EO_SAMPLE_DATA", REPO.parent / "shared" / "data")) / "s2-l2a-safe-t29unu"


def default_products(workdir: Path) -> list[str]:
    real = sorted(SAMPLE.glob("*.SAFE"))
    if real:
        return [str(real[0])]
    from tests.fixtures.s2_products import write_s2_product

    print(f"sample data not found at {SAMPLE}: writing a synthetic L2A product", file=sys.stderr)
    return [str(write_s2_product(workdir, size_10m=600))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("products", nargs="*", help="product paths or s3:// URIs (default: the sample)")
    ap.add_argument("--outdir", default=str(REPO / "demo_outputs"), help="pipeline root for the outputs")
    ap.add_argument("--resolution", type=float, default=60.0)
    ap.add_argument("--cloudmask", default="L2A")
    ap.add_argument("--bands", default="B2,B3,B4,B8A", help="B8A: the sample has no 10 m B8 file")
    args = ap.parse_args(argv)

    import kfp.local

    from components.common.logs import setup_logging
    from pipelines.local_print import print_restored
    from pipelines.s2_ard import s2_ard

    setup_logging()
    outdir = Path(args.outdir).resolve()
    with tempfile.TemporaryDirectory() as tmp, print_restored():
        products = args.products or default_products(Path(tmp))
        kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(outdir),
                       workspace_root=str(Path(tmp) / "workspace"))
        s2_ard(products=products, resolution=args.resolution, cloudmask=args.cloudmask, bands=args.bands)
    runs = sorted(outdir.glob("s2-ard-*"), key=lambda p: p.stat().st_mtime)
    found = sorted(runs[-1].glob("**/run.json")) if runs else []
    if not found:
        print("no product was written", file=sys.stderr)
        return 1
    for record in found:
        folder = record.parent
        product = next(p for p in folder.iterdir() if p.suffix == ".tif")
        print(f"product:   {product}")
        print(f"quicklook: {next(folder.glob('*_quicklook.png'))}")
        print(f"stac item: {next(folder.glob(product.stem + '.json'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
