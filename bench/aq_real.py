"""Evaluation of the aqgan downscaling on a real CAMS European PM2.5 forecast (issue #19),
against bilinear and Lanczos interpolation.

Data: ``../shared/data/cams-europe-pm25-forecast-grib/example.grib`` (see SOURCES.md): the CAMS
regional ENSEMBLE forecast of PM2.5 of 2020-06-08 00 UTC, GRIB2, 73 hourly steps on the 0.1° grid
over southern England and the Channel. There is no matching CAMS global field, so the
low-resolution input is the real 0.1° field degraded by an area-weighted block mean of
``--factor`` x ``--factor`` cells (0.8° by default, the service's factor), written as an EAC4-layout
netCDF (``components/aq_downscaling/degrade.py``). The one static field is the land fraction at
0.1° from the GLOBE land mask (``global-land-mask``): no urban fraction or orography map covers
this AoI offline, and weather (ERA5) for these days is not in ``../shared/data``, so the only
low-resolution input is PM2.5 itself.

The real services run on it: ``aqgan-preproc`` and ``aqgan-train`` on the first
``--train-steps`` steps, ``aqgan-generate`` and the evaluation on the last ``--test-steps`` (the
GRIB file is read directly as the CAMS European truth). Prints one JSON object: scores of the
ensemble (CRPS, MAE/RMSE of its mean, rank histogram, spread/skill), of the bilinear and Lanczos
baselines, the same on the training steps (in-sample), and diagnostics of why the scores are what
they are (share of the truth's variance below the low-resolution scale, change of the field
between the two periods). Asserts nothing.

    python bench/aq_real.py --threads 1                # defaults: factor 8 (0.8°)
    python bench/aq_real.py --threads 1 --factor 4     # 0.4° input
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

from bench.aq_eval import gan_arguments  # noqa: E402

DEFAULT_GRIB = REPO.parent / "shared" / "data" / "cams-europe-pm25-forecast-grib" / "example.grib"
# 64 x 96 cells of 0.1° inside the 65 x 98 file (edges on multiples of 0.1°, divisible by 4 and 8)
AOI = (48.7, 55.1, -6.3, 3.3)
POINTS = [{"name": "London", "lat": 51.507, "lon": -0.128}, {"name": "Birmingham", "lat": 52.486, "lon": -1.89},
          {"name": "Paris-north", "lat": 49.2, "lon": 2.35}]


def _fmt(t) -> str:
    return str(t.astype("datetime64[h]")).replace("-", "").replace("T", "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grib", default=str(DEFAULT_GRIB), help="CAMS European PM2.5 GRIB2 file")
    ap.add_argument("--factor", type=int, default=8, choices=(4, 8),
                    help="block size of the degradation: 8 (0.8°) or 4 (0.4°)")
    ap.add_argument("--train-steps", type=int, default=49, help="first steps for training")
    ap.add_argument("--test-steps", type=int, default=24, help="last steps held out")
    ap.add_argument("--epochs", type=int, default=12)
    gan_arguments(ap)
    ap.add_argument("--tile-stride", type=int, default=0,
                    help="low-resolution cells between training tiles (0: half the input frame)")
    ap.add_argument("--no-static", action="store_true", help="train without the land fraction")
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="keep the run folder here instead of a temporary one")
    args = ap.parse_args(argv)

    from components.common.logs import setup_logging

    setup_logging()
    import numpy as np
    import yaml

    from components.aq_downscaling.config import load_config
    from components.aq_downscaling.degrade import write_degraded, write_land_fraction
    from components.aq_downscaling.evaluation import crps_ensemble, flatness, rank_histogram
    from components.aq_downscaling.grid import aoi_grids, interpolate
    from components.aq_downscaling.readers import open_gridded
    from components.aq_downscaling.service import run_evaluate, run_generate, run_preproc, run_train

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    grib = Path(args.grib)
    run_dir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="aq-real-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    lr_grid, hr_grid = aoi_grids(*AOI, 0.1, args.factor)
    timings = {}
    t = time.perf_counter()
    src = open_gridded(grib, "cams_europe")
    if args.train_steps + args.test_steps > src.times.size:
        ap.error(f"--train-steps + --test-steps exceed the {src.times.size} steps of {grib.name}")
    degraded = write_degraded(grib, run_dir / "low_res" / "pm2p5_degraded.nc", hr_grid, args.factor)
    land_mean = write_land_fraction(run_dir / "static" / "land_frac.tif", hr_grid)
    timings["inputs"] = round(time.perf_counter() - t, 1)

    frame = 32 // args.factor  # 32 x 32 high-resolution cells per training tile
    stride = args.tile_stride or max(1, frame // 2)
    static = [] if args.no_static else ["land_frac"]
    cfg_dict = {
        "model": {"input_frame": [frame, frame], "output_frame": [32, 32],
                  "generator_filters": args.generator_filters, "discriminator_filters": args.discriminator_filters,
                  "residual_blocks": args.residual_blocks, "noise_channels": 8},
        "aoi": dict(zip(("lat_min", "lat_max", "lon_min", "lon_max"), AOI)),
        "inputs": {"low_res": ["pm2p5"], "high_res_static": static},
        "outputs": {"high_res": ["pm2p5"], "ensemble_size": args.members, "points": POINTS},
        "training": {"learning_rate": args.learning_rate, "batch_size": args.batch_size, "epochs": args.epochs,
                     "critic_steps": args.critic_steps, "content_loss": args.content_loss,
                     "content_weight": args.content_weight, "content_members": args.content_members,
                     "seed": args.seed, "device": "cpu", "keep_checkpoints": 1},
        "preproc": {"tile_stride": stride},
        "paths": {"tiles": str(run_dir / "tiles"), "models": str(run_dir / "models"),
                  "output": str(run_dir / "output"),
                  "datasets": {"cams-europe-real": {
                      "cams_global": [str(run_dir / "low_res" / "pm2p5_degraded.nc")],
                      "cams_europe": [str(grib.resolve())],
                      "static": {"land_frac": {"path": str(run_dir / "static" / "land_frac.tif"),
                                               "transform": "none"}} if static else {}}}},
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg_dict, sort_keys=False))
    cfg = load_config(run_dir / "config.yaml")
    times = src.times
    train = (_fmt(times[0]), _fmt(times[args.train_steps - 1]))
    test = (_fmt(times[-args.test_steps]), _fmt(times[-1]))

    t = time.perf_counter()
    pre = run_preproc(cfg, None, *train)
    timings["preproc"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    trained = run_train(cfg, None, *train)
    timings["train"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    gen = run_generate(cfg, None, *test, outdir=str(run_dir / "output" / "test"))
    gen_in = run_generate(cfg, None, *train, outdir=str(run_dir / "output" / "train"))
    timings["generate"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    ev = run_evaluate(cfg, None, gen.product, str(run_dir / "evaluation" / "test"))
    ev_in = run_evaluate(cfg, None, gen_in.product, str(run_dir / "evaluation" / "train"))
    timings["evaluate"] = round(time.perf_counter() - t, 1)

    # Diagnostics: how much of the truth lies below the low-resolution scale, and how different
    # the held-out period is from the training one.
    rg_rows, rg_cols = _window(src, hr_grid)
    truth = np.stack([src.read("pm2p5", i, rg_rows, rg_cols) for i in range(times.size)])
    blocks = truth.reshape(times.size, lr_grid.rows, args.factor, lr_grid.cols, args.factor).mean(axis=(2, 4))
    bilinear = np.clip(interpolate(blocks, lr_grid, hr_grid, "bilinear"), 0, None)
    sub = truth - np.repeat(np.repeat(blocks, args.factor, 1), args.factor, 2)
    tr, te = slice(0, args.train_steps), slice(times.size - args.test_steps, times.size)

    # A probabilistic baseline from the training steps alone: Lanczos plus the Lanczos residual
    # (truth - Lanczos) of the same cell at a random training step, one draw per member.
    lanczos = np.clip(interpolate(blocks, lr_grid, hr_grid, "lanczos"), 0, None)
    resid = truth[tr] - lanczos[tr]
    rng = np.random.default_rng(args.seed)
    draws = rng.integers(0, args.train_steps, size=(args.test_steps, args.members))
    boot = np.clip(lanczos[te][:, None] + resid[draws], 0, None)  # (T, N, H, W)
    boot_members = np.moveaxis(boot, 1, -1)
    boot_mean = boot_members.mean(-1)
    boot_rmse = float(np.sqrt(((boot_mean - truth[te]) ** 2).mean()))
    n = args.members
    residual_bootstrap = {
        "crps": round(float(crps_ensemble(truth[te], boot_members).mean()), 4),
        "ensemble_mean_mae": round(float(np.abs(boot_mean - truth[te]).mean()), 4),
        "ensemble_mean_rmse": round(boot_rmse, 4),
        "spread_skill": round(float(np.sqrt((n + 1) / n * boot_members.var(-1, ddof=1).mean())) / boot_rmse, 4),
        "rank_flatness": round(flatness(rank_histogram(truth[te], boot_members, args.seed)), 4)}

    # What a fixed correction learnt from the training steps gives: Lanczos plus the mean residual
    # of each cell (the stationary part of the fine structure: coasts, cities).
    corrected = np.clip(lanczos[te] + resid.mean(0), 0, None)
    mean_residual = {"mae": round(float(np.abs(corrected - truth[te]).mean()), 4),
                     "rmse": round(float(np.sqrt(((corrected - truth[te]) ** 2).mean())), 4)}

    # How long the fine structure (truth - Lanczos, domain mean removed) stays correlated
    fine = truth - lanczos
    fine = fine - fine.mean(axis=(1, 2), keepdims=True)
    lag_corr = {f"{lag}h": round(float(np.corrcoef(fine[:-lag].ravel(), fine[lag:].ravel())[0, 1]), 3)
                for lag in (1, 3, 6, 12, 24)}
    map_corr = round(float(np.corrcoef(resid.mean(0).ravel(), (truth[te] - lanczos[te]).mean(0).ravel())[0, 1]), 3)

    def period(s):
        return {"truth_mean": round(float(truth[s].mean()), 3), "truth_std": round(float(truth[s].std()), 3),
                "subgrid_variance_share": round(float(sub[s].var() / truth[s].var()), 4),
                "bilinear_residual_std": round(float((truth[s] - bilinear[s]).std()), 3)}

    def scores(s):
        keys = ("crps", "ensemble_mean_mae", "ensemble_mean_rmse", "bilinear_mae", "bilinear_rmse", "lanczos_mae",
                "lanczos_rmse", "spread", "spread_skill", "truth_mean")
        out = {k: round(s[k], 4) for k in keys}
        out.update({"crps_vs_bilinear_mae": round(s["crps_vs_bilinear_mae"], 4),
                    "crps_vs_lanczos_mae": round(s["crps"] / s["lanczos_mae"], 4),
                    "rank_histogram": s["rank_histogram"], "rank_flatness": round(s["rank_flatness"], 4),
                    "time_steps": s["time_steps"]})
        return out

    s = ev.metrics
    result = {
        "data": {"file": grib.name, "reference_time": str(src.reference_time), "steps_in_file": int(times.size),
                 "members_in_file": len(src.members) or 1, "train": list(train), "held_out": list(test),
                 "aoi": AOI, "grid_hr": hr_grid.as_dict(), "grid_lr": lr_grid.as_dict(),
                 "low_res_input": degraded["method"] + f" = {lr_grid.res:g}°",
                 "static": {"land_frac": round(land_mean, 4)} if static else {},
                 "train_tiles": pre.metrics["tiles"]},
        "model": {k: getattr(cfg.model, k) for k in ("input_frame", "output_frame", "generator_filters",
                                                     "discriminator_filters", "residual_blocks", "noise_channels")},
        "training": {k: getattr(cfg.training, k) for k in ("learning_rate", "batch_size", "epochs", "critic_steps",
                                                           "content_loss", "content_weight", "content_members")},
        "held_out_ug_m3": scores(s),
        "held_out_lanczos_residual_bootstrap_ug_m3": residual_bootstrap,
        "held_out_lanczos_plus_mean_training_residual_ug_m3": mean_residual,
        "training_steps_ug_m3": scores(ev_in.metrics),
        "spectra_held_out": {k: [float(f"{x:.4g}") for x in v] for k, v in s["spectra"].items()},
        "diagnostics": {"train": period(tr), "held_out": period(te),
                        "lanczos_residual_autocorrelation": lag_corr,
                        "mean_lanczos_residual_map_correlation_train_vs_held_out": map_corr},
        "gan_beats": {"bilinear_mae": s["crps"] < s["bilinear_mae"], "lanczos_mae": s["crps"] < s["lanczos_mae"],
                      "lanczos_residual_bootstrap_crps": s["crps"] < residual_bootstrap["crps"],
                      "lanczos_mae_with_its_mean": s["ensemble_mean_mae"] < s["lanczos_mae"]},
        "final_losses": trained.metrics["final"],
        "timings_s": timings, "run_dir": str(run_dir),
    }
    print(json.dumps(result, indent=1))
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


def _window(src, grid):
    """Rows and columns of ``src`` (ascending) covering ``grid`` cell for cell."""
    import numpy as np

    r0 = int(np.argmin(np.abs(src.lat - grid.lat[0])))
    c0 = int(np.argmin(np.abs(src.lon - grid.lon[0])))
    return slice(r0, r0 + grid.rows), slice(c0, c0 + grid.cols)


if __name__ == "__main__":
    sys.exit(main())
