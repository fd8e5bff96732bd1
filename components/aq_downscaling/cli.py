"""The four commands of the seed (D5.2 §5.2.1.4, Table 14) plus ``aqgan-predict``::

    aqgan-preproc  --start-date YYYYMMDDHH --end-date YYYYMMDDHH --dataset NAME --config config.yaml
    aqgan-train    --model srgan --start-date YYYYMMDDHH --end-date YYYYMMDDHH --config config.yaml
    aqgan-generate --model srgan --start-date YYYYMMDDHH --end-date YYYYMMDDHH --config config.yaml
    aqgan-predict  FILE --model-file model.pt [--output out.nc]

Every configuration key can be overridden with ``--set KEY=VALUE``; ``--help`` lists them all with
their defaults. A failure is printed as one line with its exit status: 2 for a problem the user can
fix, 3 for the machine (disk full), 128 + signal when stopped by SIGTERM/SIGINT (the contract of
``components.common.contract``).
"""

from __future__ import annotations

import argparse
import logging
import sys

from components.common.contract import run_guarded
from components.common.logs import setup_logging

MODELS = ("srgan",)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _parser(prog: str, description: str, dates: bool = True, model: bool = True) -> argparse.ArgumentParser:
    from .config import describe

    p = _Parser(prog=prog, description=description, epilog=describe(),
                formatter_class=argparse.RawDescriptionHelpFormatter)
    if model:
        p.add_argument("--model", default="srgan", choices=MODELS, help="type of super-resolution model "
                       "(default: srgan)")
    if dates:
        p.add_argument("--start-date", "--start_date", dest="start_date", required=True, metavar="YYYYMMDDHH",
                       help="first time step (UTC)")
        p.add_argument("--end-date", "--end_date", dest="end_date", required=True, metavar="YYYYMMDDHH",
                       help="last time step (UTC)")
    p.add_argument("--config", "-c", required=True, help="YAML configuration file (see the keys below)")
    p.add_argument("--dataset", default="", metavar="NAME",
                   help="dataset of paths.datasets (default: the only one configured)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration key, e.g. --set training.epochs=5 (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _run(prog: str, parser: argparse.ArgumentParser, argv, body) -> int:
    args = parser.parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    status, result = run_guarded(prog, lambda: body(args))
    if status:
        return status
    print(f"product: {result.product}")
    for name, value in result.files.items():
        if isinstance(value, str):
            print(f"{name}: {value}")
    return 0


def _config(args):
    from .config import load_config

    return load_config(args.config, args.overrides)


def preproc_main(argv: list[str] | None = None) -> int:
    p = _parser("aqgan-preproc", "Read CAMS (global EAC4, European 0.1°), ERA5 and static high-resolution fields, "
                "regrid them onto the AoI grids and write normalised low/high-resolution training tiles with their "
                "statistics (netCDF).", model=False)
    p.add_argument("--outdir", "--output_path", dest="outdir", default=None,
                   help="output folder or s3://bucket/prefix (default: paths.tiles/<dataset>/<start>-<end>)")

    def body(a):
        from .service import run_preproc

        return run_preproc(_config(a), a.dataset, a.start_date, a.end_date, a.outdir)

    return _run("aqgan-preproc", p, argv, body)


def train_main(argv: list[str] | None = None) -> int:
    p = _parser("aqgan-train", "Train the super-resolution GAN (generator with a noise input, Wasserstein critic "
                "with gradient penalty, optional content term) on the tiles of a time range; GPU when present.")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in "
                   "paths.models/checkpoints")
    p.add_argument("--tiles", default=None, help="tiles folder or file (default: paths.tiles/<dataset>)")
    p.add_argument("--models", default=None, help="output folder (default: paths.models)")

    def body(a):
        from .service import run_train

        return run_train(_config(a), a.dataset, a.start_date, a.end_date, a.resume, a.tiles, a.models)

    return _run("aqgan-train", p, argv, body)


def generate_main(argv: list[str] | None = None) -> int:
    p = _parser("aqgan-generate", "Generate an ensemble of high-resolution fields per time step with a trained "
                "model: CF netCDF (members, mean, standard deviation, quantiles) and a CSV at the configured points.")
    p.add_argument("--model-file", default=None, help="trained model (default: paths.models/model.pt)")
    p.add_argument("--members", type=_members, default=None, help="ensemble size, 1..1000 (default: "
                   "outputs.ensemble_size)")
    p.add_argument("--seed", type=_seed, default=None, help="noise seed, 0..2^63-1 (default: training.seed)")
    p.add_argument("--outdir", "--output_path", dest="outdir", default=None, help="output folder (default: "
                   "paths.output)")

    def body(a):
        from .service import run_generate

        return run_generate(_config(a), a.dataset, a.start_date, a.end_date, a.model_file, a.outdir, a.members, a.seed)

    return _run("aqgan-generate", p, argv, body)


def predict_main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="aqgan-predict", description="Downscale one low-resolution netCDF (CAMS global / ERA5 layout "
                "holding the model's low-resolution inputs) with a trained model: an ensemble netCDF over the model's "
                "AoI, every time step of the file.")
    p.add_argument("file", metavar="FILE", help="low-resolution netCDF (local path or s3://bucket/key)")
    p.add_argument("--model-file", "--weights", "-m", dest="model_file", required=True,
                   help="trained model file (model.pt of aqgan-train)")
    p.add_argument("--output", "-o", default=None, help="output netCDF (default: <FILE stem>_aqgan.nc here)")
    p.add_argument("--members", type=_members, default=None, help="ensemble size, 1..1000 (default: the model's)")
    p.add_argument("--seed", type=_seed, default=0, help="noise seed, 0..2^63-1")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    def body(a):
        from .service import run_predict

        return run_predict(a.file, a.model_file, a.output, a.members, a.seed)

    return _run("aqgan-predict", p, argv, body)


def _integer_in(text: str, lowest: int, highest: int, allowed: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: allowed {allowed}") from None
    if not lowest <= value <= highest:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: allowed {allowed}")
    return value


def _members(text: str) -> int:
    """The ensemble size: at most what outputs.ensemble_size allows (every member is held in memory)."""
    from .config import MAX_ENSEMBLE

    return _integer_in(text, 1, MAX_ENSEMBLE, f"an integer 1..{MAX_ENSEMBLE}")


def _seed(text: str) -> int:
    """A seed as training.seed takes it: beyond 64 bits torch cannot use it."""
    from .config import MAX_SEED

    return _integer_in(text, 0, MAX_SEED, f"an integer 0..{MAX_SEED} (2^63 - 1)")


if __name__ == "__main__":
    commands = {"preproc": preproc_main, "train": train_main, "generate": generate_main, "predict": predict_main}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.stderr.write("usage: python -m components.aq_downscaling.cli {preproc|train|generate|predict} ...\n")
        sys.exit(2)
    sys.exit(commands[sys.argv[1]](sys.argv[2:]))
