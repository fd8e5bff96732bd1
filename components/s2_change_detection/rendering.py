"""Colours, quicklook and report of the change-class map."""

from __future__ import annotations

import colorsys
from pathlib import Path

from components.common import outputs

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


def class_quicklook(src: Path, png: Path, classes, max_size: int = 1024, *, aoi=None, reasons=None) -> Path:
    """An RGBA PNG of the class map in its palette with a legend (outputs.class_quicklook)."""
    return outputs.class_quicklook(src, png, classes, max_size, aoi=aoi, reasons=reasons)


def cloud_reasons(products, grid, cloud_classes: tuple[int, ...], path: Path, max_size: int = 1024) -> Path:
    """A raster of mask codes (outputs.CLOUD where the scene classification of either date is a
    cloud class) about the quicklook's size, so that the quicklook tells cloud from NoData."""
    import dataclasses
    import math

    import numpy as np
    import rasterio

    from .sources import SclReader, grid_transform

    f = max(1, math.ceil(max(grid.rows, grid.cols) / max_size))
    coarse = dataclasses.replace(grid, resolution=grid.resolution * f, rows=math.ceil(grid.rows / f),
                                 cols=math.ceil(grid.cols / f))
    cloudy = np.zeros((coarse.rows, coarse.cols), bool)
    for product in products:
        reader = SclReader(product, coarse)
        try:
            cloudy |= np.isin(reader.read(0, coarse.rows), cloud_classes)
        finally:
            reader.close()
    with rasterio.open(path, "w", driver="GTiff", width=coarse.cols, height=coarse.rows, count=1, dtype="uint8",
                       crs=coarse.crs, transform=grid_transform(coarse)) as ds:
        ds.write(np.where(cloudy, outputs.CLOUD, 0).astype(np.uint8), 1)
    return path


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
