"""S2-preprocess on the real sample products of ../shared/data.

T29UNU (L2A, baseline 04.00) has its 60 m bands and SCL but not its 10/20 m reflectance bands:
at 60 m it runs, at 10 m it must stop naming the missing file. The golden values come straight
from the product's own JP2 files, read with rasterio, independently of the service."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.features import geometry_mask
from shapely.geometry import Polygon, mapping

from components.common.errors import ServiceError
from components.common.sentinel2 import open_product
from components.s2_preprocess.params import S2PreprocessParams
from components.s2_preprocess.service import run

AOI = [(-8.9, 53.2), (-8.3, 53.2), (-8.3, 52.8), (-8.9, 52.8), (-8.9, 53.2)]
AOI_WKT = "POLYGON((" + ",".join(f"{x} {y}" for x, y in AOI) + "))"
CLOUD_CLASSES = (3, 8, 9, 10)
BANDS = ("B2", "B3", "B4", "B8A")


@pytest.fixture(scope="module")
def t29unu_60m(real_l2a, tmp_path_factory):
    out = tmp_path_factory.mktemp("t29unu")
    params = S2PreprocessParams(resolution=60, bands=BANDS, cloudmask="L2A", aoi=AOI_WKT)
    return run(str(real_l2a), params, str(out)), real_l2a


def _img(safe: Path, pattern: str) -> Path:
    return next(safe.glob(f"GRANULE/*/IMG_DATA/{pattern}"))


def test_metadata_of_the_real_l2a(real_l2a):
    p = open_product(real_l2a)
    assert (p.level, p.baseline, p.tile, p.crs) == ("L2A", "04.00", "T29UNU", "EPSG:32629")
    assert p.quantification == 10000 and p.offsets["B2"] == -1000 and p.offsets["B12"] == -1000
    assert p.scale_offset("B4") == (1e-4, -0.1)
    assert p.grids[60].rows == 1830 and p.grids[10].ulx == 499980


def test_metadata_of_the_real_l1c(real_l1c_metadata):
    p = open_product(real_l1c_metadata)
    assert (p.level, p.baseline, p.tile, p.crs) == ("L1C", "03.01", "T46RER", "EPSG:32646")
    assert p.offsets == {} and not p.has_offset
    assert p.mask_files["MSK_CLOUDS"].endswith("QI_DATA/MSK_CLOUDS_B00.gml")
    assert ("B10", 60) in p.band_files


def test_product_is_a_valid_cog_with_scale_offset(t29unu_60m):
    from rio_cogeo.cogeo import cog_validate

    result, _ = t29unu_60m
    valid, errors, _warnings = cog_validate(result.product)
    assert valid, errors
    with rasterio.open(result.product) as ds:
        assert ds.count == 4 and ds.dtypes[0] == "uint16" and ds.nodata == 0
        assert ds.descriptions == BANDS
        assert ds.scales == (1e-4,) * 4 and ds.offsets == pytest.approx((-0.1,) * 4)
        assert ds.crs.to_epsg() == 32629 and ds.res == (60.0, 60.0)
        assert ds.overviews(1), "COG without overviews"


def test_nodata_is_exactly_clouds_plus_outside_aoi(t29unu_60m):
    result, safe = t29unu_60m
    with rasterio.open(result.product) as ds:
        out = ds.read()
        transform, shape = ds.transform, (ds.height, ds.width)
        col0 = round((transform.c - 499980) / 60)
        row0 = round((5900040 - transform.f) / 60)
    # SCL at its native 20 m, "First" flag downsampling: the top-left sample of each 3x3 block.
    with rasterio.open(_img(safe, "R20m/*_SCL_20m.jp2")) as scl:
        scl20 = scl.read(1)
    scl_first = scl20[row0 * 3::3, col0 * 3::3][: shape[0], : shape[1]]
    cloudy = np.isin(scl_first, CLOUD_CLASSES)
    to_utm = Transformer.from_crs(4326, 32629, always_xy=True)
    ring = Polygon(AOI).segmentize(0.01).exterior.coords
    poly = Polygon([to_utm.transform(x, y) for x, y in ring])
    outside = geometry_mask([mapping(poly)], out_shape=shape, transform=transform)
    source = []
    for band in ("B02", "B03", "B04", "B8A"):
        with rasterio.open(_img(safe, f"R60m/*_{band}_60m.jp2")) as src:
            source.append(src.read(1, window=((row0, row0 + shape[0]), (col0, col0 + shape[1]))))
    source = np.stack(source)
    expected_nodata = cloudy | outside
    assert expected_nodata.any() and (~expected_nodata).any()
    for b in range(4):
        np.testing.assert_array_equal(out[b] == 0, expected_nodata | (source[b] == 0))
        keep = ~expected_nodata
        np.testing.assert_array_equal(out[b][keep], source[b][keep])


def test_sidecars(t29unu_60m):
    result, _ = t29unu_60m
    record = json.loads(Path(result.run_record).read_text())
    assert record["service"] == "S2-preprocess"
    assert record["params"]["cloudmask"] == "L2A" and record["params"]["bands"] == list(BANDS)
    assert record["inputs"][0]["id"].startswith("S2A_MSIL2A_20221005T115411")
    assert {"open product", "resample and mask bands", "write COG"} <= set(record["timings_s"])
    item = json.loads(Path(result.stac).read_text())
    assert item["properties"]["proj:code"] == "EPSG:32629"
    assert item["assets"]["data"]["href"] == Path(result.product).name
    assert [b["name"] for b in item["assets"]["data"]["bands"]] == list(BANDS)
    assert 0 < result.metrics["valid_percent"] < 100 and 0 < result.metrics["cloud_percent"] < 100
    from PIL import Image
    with Image.open(result.quicklook) as im:
        assert im.mode == "RGBA" and max(im.size) <= 1024


def test_stac_item_validates_against_the_core_schema(t29unu_60m):
    from tests.stac_schema import validate_item

    validate_item(json.loads(Path(t29unu_60m[0].stac).read_text()))


def test_10m_stops_naming_the_missing_file(real_l2a, tmp_path):
    with pytest.raises(ServiceError, match=r"band file missing .*T29UNU_20221005T115411_B02_10m\.jp2"):
        run(str(real_l2a), S2PreprocessParams(resolution=10, cloudmask="L2A"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_default_bands_at_60m_stop_on_b8(real_l2a, tmp_path):
    # B8 exists only at 10 m in an L2A product: its file is absent from this sample.
    with pytest.raises(ServiceError, match=r"T29UNU_20221005T115411_B08_10m\.jp2"):
        run(str(real_l2a), S2PreprocessParams(resolution=60), str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_real_l1c_needs_sen2cor_or_toa(real_l1c_metadata, tmp_path):
    with pytest.raises(ServiceError, match="Level-1C and Sen2Cor .* not installed.*--toa"):
        run(str(real_l1c_metadata), S2PreprocessParams(resolution=60), str(tmp_path))
    # with --toa it goes on, and stops at the first band file this metadata-only sample lacks
    with pytest.raises(ServiceError, match=r"band file missing .*T46RER_20210908T042701_B02\.jp2"):
        run(str(real_l1c_metadata), S2PreprocessParams(resolution=60, toa=True), str(tmp_path))
    assert list(tmp_path.iterdir()) == []
