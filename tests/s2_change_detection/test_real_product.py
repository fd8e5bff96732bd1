"""S2-CD on the real Level-2A sample (T29UNU, baseline 04.00; only its 60 m bands are in the
sample) compared with its own pixels under another date (S2-CD refuses one acquisition twice): no
change anywhere, NoData exactly where its own SCL (read here with rasterio, independently of the
service) says cloud or no data, outside the AoI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio

from components.s2_change_detection.params import S2ChangeParams
from components.s2_change_detection.service import run

AOI_WKT = "POLYGON((-8.8 53.1,-8.6 53.1,-8.6 52.95,-8.8 52.95,-8.8 53.1))"


def _a_day_later(product: Path, dest: Path) -> Path:
    """The product's files linked under a name and metadata one day later (the same pixels)."""
    name = product.name.replace("MSIL2A_20221005", "MSIL2A_20221006")
    copy = dest / name
    copy.mkdir()
    for item in product.iterdir():
        if item.name != "MTD_MSIL2A.xml":
            (copy / item.name).symlink_to(item)
    text = (product / "MTD_MSIL2A.xml").read_text()
    (copy / "MTD_MSIL2A.xml").write_text(text.replace("2022-10-05T", "2022-10-06T"))
    return copy


def test_a_product_compared_with_its_own_pixels_has_no_change(real_l2a, tmp_path):
    params = S2ChangeParams(resolution=60, bands=("B2", "B3", "B4", "B8A"), aoi=AOI_WKT, projection="UTM(Auto)")
    (tmp_path / "later").mkdir()
    result = run(str(real_l2a), str(_a_day_later(real_l2a, tmp_path / "later")), params, str(tmp_path / "out"))
    with rasterio.open(result.product) as ds:
        classes, transform, crs = ds.read(1), ds.transform, ds.crs
    assert set(np.unique(classes)) <= {0, 255} and (classes == 0).sum() > 1000
    # the cloud mask comes from the native 20 m SCL, one sample (the top-left) per 60 m pixel:
    # S2-preprocess's default flag downsampling "First"
    scl_path = next(Path(real_l2a).glob("GRANULE/*/IMG_DATA/R20m/*_SCL_20m.jp2"))
    with rasterio.open(scl_path) as ds:
        assert ds.crs == crs
        col0, row0 = ~ds.transform @ (transform.c, transform.f)
        window = rasterio.windows.Window(round(col0), round(row0), 3 * classes.shape[1], 3 * classes.shape[0])
        scl = ds.read(1, window=window)[::3, ::3]
    from components.common.aoi import aoi_mask, load_aoi

    inside = aoi_mask(load_aoi(AOI_WKT), crs, transform, classes.shape)
    nodata = ~inside | np.isin(scl, (0, 3, 8, 9, 10))
    np.testing.assert_array_equal(classes == 255, nodata)
    record = json.loads(Path(result.run_record).read_text())
    norm = record["outputs"]["method"]["normalisation"]
    np.testing.assert_allclose(norm["gain"], 1.0, atol=1e-9)
    np.testing.assert_allclose(norm["offset"], 0.0, atol=1e-9)
    assert result.metrics["changed_pixels"] == 0 and result.classes == []
