"""Scores of a downscaled ensemble against the high-resolution truth, and the interpolation
baselines it must beat.

- CRPS of the ensemble: the standard estimator of the empirical ensemble distribution,
  ``mean|x_i - y| - 1/(2 N^2) sum_ij |x_i - x_j|`` (as ``properscoring.crps_ensemble``; a test
  checks the two agree), computed from the sorted members;
- RMSE and MAE of the ensemble mean; MAE (= CRPS of a single value) of the baselines;
- rank histogram (ties between members and truth broken at random) and its flatness, the largest
  relative deviation of a bin from the uniform frequency ``1/(N+1)``;
- spread/skill ratio ``sqrt((N+1)/N * mean ensemble variance) / RMSE(ensemble mean)`` (1 for a
  reliable ensemble; Fortin et al. 2014);
- radially averaged power spectra of truth, members, ensemble mean and baselines;
- baselines: bilinear and Lanczos (a = 3) interpolation of the low-resolution field to the
  high-resolution grid.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from .grid import Grid, interpolate


def crps_ensemble(obs: np.ndarray, ens: np.ndarray) -> np.ndarray:
    """CRPS per point; ``ens`` has the members on its last axis."""
    obs = np.asarray(obs, np.float64)
    x = np.sort(np.asarray(ens, np.float64), axis=-1)
    n = x.shape[-1]
    skill = np.abs(x - obs[..., None]).mean(-1)
    weights = 2 * np.arange(1, n + 1) - n - 1  # sum_ij |x_i - x_j| = 2 sum_i (2i - n - 1) x_(i)
    spread = (x * weights).sum(-1) * 2 / (2 * n * n)
    return skill - spread


def rank_histogram(obs: np.ndarray, ens: np.ndarray, seed: int = 0) -> np.ndarray:
    """Counts of the rank of the truth among the members (N+1 bins); ties broken at random."""
    rng = np.random.default_rng(seed)
    obs = np.asarray(obs, np.float64).ravel()
    ens = np.asarray(ens, np.float64).reshape(obs.size, -1)
    below = (ens < obs[:, None]).sum(1)
    ties = (ens == obs[:, None]).sum(1)
    ranks = below + np.floor(rng.random(obs.size) * (ties + 1)).astype(int)
    return np.bincount(ranks, minlength=ens.shape[1] + 1)


def flatness(counts: np.ndarray) -> float:
    freq = counts / counts.sum()
    return float(np.max(np.abs(freq * counts.size - 1)))


def radial_psd(fields: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of (..., H, W) fields, averaged over the leading axes.
    Returns (wavenumber in cycles per grid cell, power)."""
    f = np.asarray(fields, np.float64)
    h, w = f.shape[-2:]
    f = f.reshape(-1, h, w)
    f = f - f.mean(axis=(1, 2), keepdims=True)
    power = (np.abs(np.fft.fft2(f)) ** 2).mean(0) / (h * w)
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.fftfreq(w)[None, :]
    k = np.sqrt(ky ** 2 + kx ** 2)
    step = 1.0 / max(h, w)
    bins = np.round(k / step).astype(int)
    nbin = min(h, w) // 2 + 1
    sums = np.bincount(bins.ravel(), power.ravel(), minlength=nbin)[:nbin]
    counts = np.bincount(bins.ravel(), minlength=nbin)[:nbin]
    valid = counts > 0
    return (np.arange(nbin) * step)[valid][1:], (sums[valid] / counts[valid])[1:]


def baselines(lr_field: np.ndarray, lr_grid: Grid, hr_grid: Grid) -> dict[str, np.ndarray]:
    """Bilinear and Lanczos interpolation of (T, h, w) low-resolution fields to ``hr_grid``."""
    return {"bilinear": np.clip(interpolate(lr_field, lr_grid, hr_grid, "bilinear"), 0, None),
            "lanczos": np.clip(interpolate(lr_field, lr_grid, hr_grid, "lanczos"), 0, None)}


def evaluate(truth: np.ndarray, ens: np.ndarray, lr_field: np.ndarray, lr_grid: Grid, hr_grid: Grid,
             seed: int = 0) -> dict:
    """Scores of ``ens`` (T, N, H, W) against ``truth`` (T, H, W) and of the baselines from the
    low-resolution ``lr_field`` (T, h, w), all in physical units."""
    members = np.moveaxis(ens, 1, -1)  # (T, H, W, N)
    n = members.shape[-1]
    mean = members.mean(-1)
    crps = float(crps_ensemble(truth, members).mean())
    rmse = float(np.sqrt(((mean - truth) ** 2).mean()))
    var = members.var(-1, ddof=1).mean() if n > 1 else 0.0
    spread = float(np.sqrt((n + 1) / n * var))
    counts = rank_histogram(truth, members, seed)
    base = baselines(lr_field, lr_grid, hr_grid)
    scores = {
        "members": n, "time_steps": int(truth.shape[0]), "points": int(truth.size),
        "crps": crps, "ensemble_mean_rmse": rmse, "ensemble_mean_mae": float(np.abs(mean - truth).mean()),
        "spread": spread, "spread_skill": spread / rmse if rmse > 0 else float("nan"),
        "rank_histogram": counts.tolist(), "rank_flatness": flatness(counts),
        "truth_mean": float(truth.mean()),
    }
    for name, field in base.items():
        scores[f"{name}_mae"] = float(np.abs(field - truth).mean())
        scores[f"{name}_rmse"] = float(np.sqrt(((field - truth) ** 2).mean()))
    scores["crps_vs_bilinear_mae"] = crps / scores["bilinear_mae"] if scores["bilinear_mae"] > 0 else float("nan")
    k, p_truth = radial_psd(truth)
    spectra = {"wavenumber": k.tolist(), "truth": p_truth.tolist(), "members": radial_psd(ens)[1].tolist(),
               "ensemble_mean": radial_psd(mean)[1].tolist()}
    for name, field in base.items():
        spectra[name] = radial_psd(field)[1].tolist()
    scores["spectra"] = spectra
    return scores


# ------------------------------------------------------------------------------------------------
# Report (HTML with inline SVG: shown by the Kubeflow UI, no plotting library needed)


def _svg_bars(counts: list, width=360, height=160) -> str:
    c = np.asarray(counts, np.float64)
    freq = c / c.sum() * c.size
    top = max(1.5, float(freq.max()) * 1.1)
    bw = (width - 40) / c.size
    bars = "".join(f"<rect x='{30 + i * bw:.1f}' y='{height - 20 - f / top * (height - 30):.1f}' width='{bw * 0.9:.1f}' "
                   f"height='{f / top * (height - 30):.1f}' fill='#3b528b'/>" for i, f in enumerate(freq))
    y1 = height - 20 - 1 / top * (height - 30)
    return (f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>{bars}"
            f"<line x1='30' x2='{width - 10}' y1='{y1:.1f}' y2='{y1:.1f}' stroke='#c00' stroke-dasharray='4'/>"
            f"<text x='30' y='{height - 4}' font-size='11'>rank of the truth (1..{c.size}); red: uniform</text></svg>")


def _svg_spectra(spectra: dict, width=420, height=220) -> str:
    k = np.asarray(spectra["wavenumber"])
    colours = {"truth": "#000", "members": "#21918c", "ensemble_mean": "#5ec962", "bilinear": "#c00",
               "lanczos": "#e08000"}
    curves = {n: np.asarray(spectra[n]) for n in colours if n in spectra}
    allp = np.concatenate([v[v > 0] for v in curves.values()])
    lo, hi = np.log10(allp.min()), np.log10(allp.max())
    lx0, lx1 = np.log10(k.min()), np.log10(k.max())

    def xy(kk, pp):
        x = 40 + (np.log10(kk) - lx0) / max(lx1 - lx0, 1e-9) * (width - 60)
        y = height - 30 - (np.log10(np.maximum(pp, 10 ** lo)) - lo) / max(hi - lo, 1e-9) * (height - 50)
        return x, y

    paths, legend = [], []
    for i, (n, p) in enumerate(curves.items()):
        x, y = xy(k, p)
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y))
        paths.append(f"<polyline points='{pts}' fill='none' stroke='{colours[n]}' stroke-width='1.5'/>")
        legend.append(f"<text x='{width - 110}' y='{16 + 13 * i}' font-size='11' fill='{colours[n]}'>{n}</text>")
    return (f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>{''.join(paths)}"
            f"{''.join(legend)}<text x='40' y='{height - 8}' font-size='11'>wavenumber (log), power (log)</text></svg>")


def report_html(scores: dict, title: str, quicklook_png: bytes | None = None) -> str:
    rows = [("CRPS of the ensemble", scores["crps"]), ("MAE bilinear", scores["bilinear_mae"]),
            ("MAE Lanczos", scores["lanczos_mae"]), ("CRPS / MAE bilinear", scores["crps_vs_bilinear_mae"]),
            ("RMSE ensemble mean", scores["ensemble_mean_rmse"]), ("RMSE bilinear", scores["bilinear_rmse"]),
            ("RMSE Lanczos", scores["lanczos_rmse"]), ("spread/skill", scores["spread_skill"]),
            ("rank histogram flatness (max rel. deviation)", scores["rank_flatness"])]
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in rows)
    img = ""
    if quicklook_png:
        img = f"<p><img src='data:image/png;base64,{base64.b64encode(quicklook_png).decode()}'/></p>"
    return (f"<html><body><h3>{html.escape(title)}</h3><p>{scores['members']} members, {scores['time_steps']} time "
            f"steps; concentrations in ug m-3</p><table border='1' cellpadding='3'>{table}</table>"
            f"<h4>Rank histogram</h4>{_svg_bars(scores['rank_histogram'])}"
            f"<h4>Radially averaged power spectra</h4>{_svg_spectra(scores['spectra'])}{img}</body></html>")


def png_bytes(path) -> bytes:
    from PIL import Image

    img = Image.open(path)
    img.thumbnail((512, 256))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
