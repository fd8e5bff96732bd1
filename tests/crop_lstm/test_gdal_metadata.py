"""What a GDAL or QGIS user sees of a crop map: the crop names as GDAL's category names and raster
attribute table (read back by GDAL itself, from the sidecar that travels with the COG) and a
quicklook with a legend entry per crop and for NoData."""

from __future__ import annotations

import numpy as np
import rasterio
from PIL import Image

from components.common.outputs import MASK_STYLES, NO_DATA
from components.crop_lstm.classify_cli import main
from tests.gdal_read import categories


def test_crop_names_are_gdal_categories_and_in_the_quicklook_legend(chain, tmp_path):
    out = tmp_path / "map"
    inputs = chain.input_dir(tmp_path / "in", mask=True)
    assert main(["--input_dir", str(inputs), "--output_dir", str(out), "--mc_dir", str(chain.composites)]) == 0
    tif = next(out.glob("*_crop_map_*.tif"))
    assert (out / f"{tif.name}.aux.xml").is_file()
    names, rows = categories(tif)
    with rasterio.open(tif) as ds:
        labels, palette = ds.read(1), ds.colormap(1)
        assert ds.descriptions == ("crop_type",)
    item = (out / f"{tif.stem}.json").read_text()
    present = sorted(set(np.unique(labels).tolist()) - {255})
    assert present and all(names[v] and names[v] in item for v in present)
    assert names[255] == "no data"
    assert {int(r["Value"]): r["Class_Name"] for r in rows}[present[0]] == names[present[0]]
    with Image.open(out / f"{tif.stem}_quicklook.png") as im:
        px = np.asarray(im.convert("RGBA"))
    h, w = labels.shape
    assert px.shape[1] > w  # the map and its legend
    grid, legend = px[:h, :w], px[:, w:]
    assert (grid[labels == 255] == MASK_STYLES[NO_DATA][1]).all()
    swatches = {tuple(p) for p in legend.reshape(-1, 4)}
    assert all(palette[v] in swatches for v in present) and MASK_STYLES[NO_DATA][1] in swatches
