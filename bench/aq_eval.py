"""Evaluation of the aqgan downscaling on held-out synthetic data, against bilinear and Lanczos
interpolation (issue #7, item 6).

Writes (once, cached) a synthetic scene in the real product layouts (CAMS global EAC4 0.75°
3-hourly, ERA5 0.25° hourly, CAMS European analysis 0.1° hourly, static urban fraction netCDF
and orography GeoTIFF; see ``tests/fixtures/cams_products.py``), then runs the real services:
``aqgan-preproc`` on the training days, ``aqgan-train``, ``aqgan-generate`` on the held-out
days that follow, and scores the ensemble against the CAMS European truth (CRPS, RMSE of the
ensemble mean, rank histogram, spread/skill, power spectra; bilinear and Lanczos MAE/RMSE).

Prints one JSON object with the figures, the targets (CRPS at least 20 % below the bilinear MAE;
rank histogram flat within 10 %) and whether each is met; asserts nothing.

    python bench/aq_eval.py --threads 1      # defaults below (measured: 21 min of training
                                                    # on a 2-core machine shared with other jobs)
    python bench/aq_eval.py --days 12 --epochs 2   # quick try

Defaults: 24 days (20 for training, the following 4 held out), AoI 42.0-49.2 N, 3.0-10.2 E (9 x 9
cells of 0.8°, 72 x 72 of 0.1°), training tiles of 4 x 4 -> 32 x 32 every 2 cells (1440 tiles),
generation over the whole AoI, 10 members. The model is smaller than the Table 15 defaults
(32/16 filters, 4 residual blocks: CPU time), the learning rate larger (5e-4, 12 epochs), one
critic update per generator update, content term = fair CRPS of 2 draws with weight 100; all
are printed with the results. The cache lives in ``$EO_BENCH_CACHE`` or ``~/.cache/eo-kfp-bench``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import cache_dir  # noqa: E402

TARGETS = {"crps_vs_bilinear_mae_max": 0.8, "rank_flatness_max": 0.10}
SCENE_VERSION = 1


def gan_arguments(ap: argparse.ArgumentParser) -> None:
    """The GAN's size and training options, shared by this bench and ``bench/aq_real.py``."""
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--generator-filters", type=int, default=32)
    ap.add_argument("--discriminator-filters", type=int, default=16)
    ap.add_argument("--residual-blocks", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--learning-rate", type=float, default=5e-4)
    ap.add_argument("--critic-steps", type=int, default=1)
    ap.add_argument("--content-loss", default="crps")
    ap.add_argument("--content-weight", type=float, default=100.0)
    ap.add_argument("--content-members", type=int, default=2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=24, help="days of data (the last --test-days are held out)")
    ap.add_argument("--test-days", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--input-frame", type=int, default=4, help="training tile size in low-resolution cells "
                    "(the output frame is 8 times this; generation runs on the whole AoI either way)")
    gan_arguments(ap)
    ap.add_argument("--tile-stride", type=int, default=2, help="low-resolution cells between training tiles")
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="keep the run folder here instead of a temporary one")
    args = ap.parse_args(argv)

    from components.common.logs import setup_logging

    setup_logging()
    import numpy as np

    from components.aq_downscaling.config import load_config
    from components.aq_downscaling.service import run_evaluate, run_generate, run_preproc, run_train
    from tests.fixtures.cams_products import make_scene, scene_config, write_scene

    cache = cache_dir()
    scene_dir = cache / f"aq-scene-v{SCENE_VERSION}-d{args.days}-s{args.seed}"
    t_start = time.perf_counter()
    if not (scene_dir / "done").exists():
        shutil.rmtree(scene_dir, ignore_errors=True)
        scene = make_scene(start="2021-01-01T00", hours=args.days * 24, eac4_lat0=42.0, eac4_lon0=3.0,
                           eac4_rows=12, eac4_cols=12, seed=args.seed)
        write_scene(scene, scene_dir)
        (scene_dir / "done").write_text("ok")
    t_scene = time.perf_counter() - t_start

    run_dir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="aq-bench-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    aoi = (42.0, 49.2, 3.0, 10.2)  # 9 x 9 low-resolution cells of 0.8°, 72 x 72 at 0.1°
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    f = args.input_frame
    text = scene_config(scene_dir, aoi, input_frame=(f, f), output_frame=(8 * f, 8 * f), ensemble_size=args.members,
                        extra={
        "model.generator_filters": args.generator_filters, "model.discriminator_filters": args.discriminator_filters,
        "model.residual_blocks": args.residual_blocks, "model.noise_channels": 8,
        "training.batch_size": args.batch_size, "training.learning_rate": args.learning_rate,
        "training.epochs": args.epochs, "training.critic_steps": args.critic_steps,
        "training.content_loss": args.content_loss, "training.content_weight": args.content_weight,
        "training.content_members": args.content_members, "training.seed": args.seed,
        "preproc.tile_stride": args.tile_stride,
        "paths.tiles": str(run_dir / "tiles"), "paths.models": str(run_dir / "models"),
        "paths.output": str(run_dir / "output")})
    (run_dir / "config.yaml").write_text(text)
    cfg = load_config(run_dir / "config.yaml")
    day0 = np.datetime64("2021-01-01")
    train_end = day0 + np.timedelta64(args.days - args.test_days, "D") - np.timedelta64(1, "h")
    test_start = train_end + np.timedelta64(1, "h")
    test_end = day0 + np.timedelta64(args.days, "D") - np.timedelta64(1, "h")
    fmt = lambda t: str(t.astype("datetime64[h]")).replace("-", "").replace("T", "")  # noqa: E731

    timings = {"scene": round(t_scene, 1)}
    t = time.perf_counter()
    pre = run_preproc(cfg, None, fmt(day0), fmt(train_end))
    timings["preproc"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    trained = run_train(cfg, None, fmt(day0), fmt(train_end))
    timings["train"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    gen = run_generate(cfg, None, fmt(test_start), fmt(test_end))
    timings["generate"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    ev = run_evaluate(cfg, None, gen.product, str(run_dir / "evaluation"))
    timings["evaluate"] = round(time.perf_counter() - t, 1)

    s = ev.metrics
    result = {
        "data": {"kind": "synthetic (tests/fixtures/cams_products.py), real CAMS/ERA5 layouts",
                 "train": [fmt(day0), fmt(train_end)], "held_out": [fmt(test_start), fmt(test_end)],
                 "train_tiles": pre.metrics["tiles"], "held_out_time_steps": s["time_steps"],
                 "aoi": aoi, "grid_hr": gen.metrics["grid"]},
        "model": {k: getattr(cfg.model, k) for k in ("input_frame", "output_frame", "generator_filters",
                                                     "discriminator_filters", "residual_blocks", "noise_channels")},
        "training": {k: getattr(cfg.training, k) for k in ("learning_rate", "batch_size", "epochs", "critic_steps",
                                                           "content_loss", "content_weight", "content_members")},
        "scores_ug_m3": {k: round(s[k], 4) for k in ("crps", "bilinear_mae", "lanczos_mae", "ensemble_mean_mae",
                                                     "ensemble_mean_rmse", "bilinear_rmse", "lanczos_rmse", "spread",
                                                     "spread_skill", "truth_mean")},
        "crps_vs_bilinear_mae": round(s["crps_vs_bilinear_mae"], 4),
        "rank_histogram": s["rank_histogram"], "rank_flatness": round(s["rank_flatness"], 4),
        "spectra": {k: [float(f"{x:.4g}") for x in v] for k, v in s["spectra"].items()},
        "final_losses": trained.metrics["final"],
        "targets": TARGETS,
        "met": {"crps_20pct_below_bilinear_mae": s["crps_vs_bilinear_mae"] <= TARGETS["crps_vs_bilinear_mae_max"],
                "rank_histogram_flat_within_10pct": s["rank_flatness"] <= TARGETS["rank_flatness_max"]},
        "timings_s": timings, "run_dir": str(run_dir),
    }
    print(json.dumps(result, indent=1))
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
