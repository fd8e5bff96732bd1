"""The raster metadata GDAL users see, written by components.common.outputs: category names and
attribute table in the PAM sidecar (read back by GDAL), band fields through a format copy, and
quicklooks that tell the reasons for a missing value apart."""

from __future__ import annotations

import numpy as np
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from components.common import outputs
from components.common.stac import Band, Class
from tests.gdal_read import categories

CLASSES = [Class(0, "bare_soil", "no vegetation", (200, 180, 120)), Class(2, "forest", "trees", (20, 120, 40)),
           Class(255, "no_data", "no data", nodata=True)]


def _class_map(path, shape=(40, 60)):
    data = np.zeros(shape, np.uint8)
    data[:, 30:] = 2
    data[:10, :10] = 255
    with rasterio.open(path, "w", driver="GTiff", width=shape[1], height=shape[0], count=1, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10), nodata=255) as ds:
        ds.write(data, 1)
    return data


def test_cog_with_bands_and_classes_as_gdal_reads_them(tmp_path):
    _class_map(tmp_path / "src.tif")
    band = Band("landcover", "land cover class", 255, unit="1", center_wavelength=0.665)
    (tmp_path / "out").mkdir()
    dst = outputs.write_product(tmp_path / "src.tif", tmp_path / "out" / "map.tif", "COG", bands=[band],
                                classes=CLASSES, fwhm_um={"landcover": 0.031})
    assert sorted(p.name for p in dst.parent.iterdir()) == ["map.tif", "map.tif.aux.xml"]
    with rasterio.open(dst) as ds:
        assert ds.descriptions == ("landcover",) and ds.units == ("1",)
        assert ds.tags(1, ns="IMAGERY") == {"CENTRAL_WAVELENGTH_UM": "0.665", "FWHM_UM": "0.031"}
    names, rows = categories(dst)
    assert names[0] == "bare soil" and names[1] == "" and names[2] == "forest" and names[255] == "no data"
    assert [(r["Value"], r["Class_Name"], r["Description"]) for r in rows] == [
        ("0", "bare soil", "no vegetation"), ("2", "forest", "trees"), ("255", "no data", "no data")]
    assert [(r["Red"], r["Green"], r["Blue"], r["Alpha"]) for r in rows] == [
        ("200", "180", "120", "255"), ("20", "120", "40", "255"), ("0", "0", "0", "0")]


def test_categories_keep_what_the_sidecar_held(tmp_path):
    path = tmp_path / "map.tif"
    _class_map(path)
    with rasterio.open(path) as ds:  # GDAL writes its statistics into the PAM sidecar
        ds.stats(approx=False)
    assert (tmp_path / "map.tif.aux.xml").is_file()
    outputs.write_categories(path, CLASSES)
    outputs.write_categories(path, CLASSES[1:])  # written again: replaced, not doubled
    with rasterio.open(path) as ds:
        assert "STATISTICS_MAXIMUM" in ds.tags(1)
    names, rows = categories(path)
    assert names[0] == "" and names[2] == "forest" and len(rows) == 2


def test_class_quicklook_legend_and_masks(tmp_path):
    data = _class_map(tmp_path / "map.tif")
    reasons = tmp_path / "why.tif"
    why = np.zeros(data.shape, np.uint8)
    why[:10, :5] = outputs.CLOUD  # half of the NoData corner is cloud
    with rasterio.open(reasons, "w", driver="GTiff", width=60, height=40, count=1, dtype="uint8", crs="EPSG:32633",
                       transform=from_origin(500000, 5000000, 10, 10)) as ds:
        ds.write(why, 1)
    png = outputs.class_quicklook(tmp_path / "map.tif", tmp_path / "q.png", CLASSES, reasons=reasons)
    px = np.asarray(Image.open(png))
    assert px.shape[0] >= 40 and px.shape[1] > 60
    grid, legend = px[:40, :60], {tuple(p) for p in px[:, 60:].reshape(-1, 4)}
    assert tuple(grid[20, 0]) == (200, 180, 120, 255) and tuple(grid[20, 40]) == (20, 120, 40, 255)
    assert tuple(grid[0, 0]) == outputs.MASK_STYLES[outputs.CLOUD][1]
    assert tuple(grid[0, 7]) == outputs.MASK_STYLES[outputs.NO_DATA][1]
    assert {(200, 180, 120, 255), (20, 120, 40, 255), outputs.MASK_STYLES[outputs.CLOUD][1],
            outputs.MASK_STYLES[outputs.NO_DATA][1]} <= legend


def test_quicklook_of_a_nan_nodata_product(tmp_path):
    data = np.linspace(0, 1, 40 * 60, dtype=np.float32).reshape(40, 60)
    data[:, :20] = np.nan
    with rasterio.open(tmp_path / "f.tif", "w", driver="GTiff", width=60, height=40, count=1, dtype="float32",
                       crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10), nodata=np.nan) as ds:
        ds.write(data, 1)
    px = np.asarray(Image.open(outputs.quicklook(tmp_path / "f.tif", tmp_path / "q.png")))
    assert (px[:40, :20] == outputs.MASK_STYLES[outputs.NO_DATA][1]).all()
    values = px[:40, 20:60, 0].astype(int)
    assert values.min() == 0 and values.max() == 255 and px[:40, 20:60, 3].min() == 255


def test_large_maps_are_drawn_at_most_1024_px(tmp_path):
    _class_map(tmp_path / "big.tif", (3000, 500))
    px = np.asarray(Image.open(outputs.class_quicklook(tmp_path / "big.tif", tmp_path / "q.png", CLASSES)))
    assert px.shape[0] == 1024 and px.shape[1] > 171  # the map 1024 x 171 px, and its legend
