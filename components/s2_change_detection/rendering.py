"""Colours, quicklook and report of the change-class map."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

from components.common.outputs import atomic_path

from .engine import NO_CHANGE, NODATA_CLASS

NO_CHANGE_RGBA = (40, 40, 40, 255)
NODATA_RGBA = (0, 0, 0, 0)
# Well separated colours for the first classes; more are spread around the hue circle.
CLASS_RGB = ((230, 25, 75), (0, 130, 200), (255, 225, 25), (60, 180, 75), (245, 130, 48), (145, 30, 180),
             (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))


def class_colour(j: int) -> tuple[int, int, int, int]:
    """RGBA of change class ``j`` (1-based)."""
    if j <= len(CLASS_RGB):
        return CLASS_RGB[j - 1] + (255,)
    r, g, b = colorsys.hsv_to_rgb(((j - 1) * 0.618034) % 1.0, 0.85, 0.95)
    return (round(r * 255), round(g * 255), round(b * 255), 255)


def colour_table(k: int) -> dict[int, tuple[int, int, int, int]]:
    """The palette of a class map with ``k`` change classes."""
    table = {NO_CHANGE: NO_CHANGE_RGBA, NODATA_CLASS: NODATA_RGBA}
    table.update({j: class_colour(j) for j in range(1, k + 1)})
    return table


def class_quicklook(src: Path, png: Path, k: int, max_size: int = 1024) -> Path:
    """An RGBA PNG of the class map in its palette (NoData transparent), at most ``max_size`` px."""
    import rasterio
    from PIL import Image

    with rasterio.open(src) as ds:
        scale = max(ds.width, ds.height) / max_size
        shape = (max(1, round(ds.height / max(scale, 1))), max(1, round(ds.width / max(scale, 1))))
        data = ds.read(1, out_shape=shape, resampling=rasterio.enums.Resampling.nearest)
    lut = np.zeros((256, 4), np.uint8)
    for value, rgba in colour_table(k).items():
        lut[value] = rgba
    with atomic_path(png) as tmp:
        Image.fromarray(lut[data], "RGBA").save(tmp, format="PNG")
    return png


def report_markdown(title: str, summary: dict, classes: list[dict]) -> str:
    """A short Markdown report: the pair, the test, and one row per change class."""
    lines = [f"# {title}", ""]
    lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in summary.items()]
    lines += ["", "| class | colour | pixels | % of valid | mean magnitude | mean angle (deg) |",
              "|---|---|---|---|---|---|"]
    for c in classes:
        r, g, b, _ = class_colour(c["class"])
        mag = "" if c["mean_magnitude"] is None else f"{c['mean_magnitude']:.4f}"
        ang = "" if c["mean_angle_deg"] is None else f"{c['mean_angle_deg']:.1f}"
        lines.append(f"| {c['class']} | #{r:02x}{g:02x}{b:02x} | {c['pixels']} | {c['percent_of_valid']:.3f} | "
                     f"{mag} | {ang} |")
    if not classes:
        lines.append("| (no change detected) | | 0 | 0 | | |")
    return "\n".join(lines) + "\n"
