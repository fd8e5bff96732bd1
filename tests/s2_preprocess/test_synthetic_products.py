"""S2-preprocess on small synthetic products in the real SAFE layout (both levels, baselines
before and from 04.00, folder and zip). Expected values are computed here from the product's
JP2 files with rasterio and NumPy, independently of the service's code paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from components.s2_preprocess.params import S2PreprocessParams
from components.s2_preprocess.service import run
from tests.fixtures.s2_products import cloud_regions, expected_scl, nodata_mask, write_s2_product
from tests.stac_schema import validate_item

SIZE = 120  # 10 m pixels: 60 at 20 m, 20 at 60 m
CLOUDS = (3, 8, 9, 10)


@pytest.fixture(scope="module")
def l2a(tmp_path_factory):
    return write_s2_product(tmp_path_factory.mktemp("l2a"), size_10m=SIZE)


def jp2(safe: Path, pattern: str) -> np.ndarray:
    with rasterio.open(next(safe.glob(f"GRANULE/*/IMG_DATA/{pattern}"))) as ds:
        return ds.read(1)


def process(product, tmp_path, **params) -> tuple[np.ndarray, dict]:
    result = run(str(product), S2PreprocessParams(**params), str(tmp_path / "out"))
    with rasterio.open(result.product) as ds:
        return ds.read(), {"profile": ds.profile, "scales": ds.scales, "offsets": ds.offsets,
                           "result": result, "descriptions": ds.descriptions}


def test_native_10m_bands_are_copied_exactly(l2a, tmp_path):
    out, meta = process(l2a, tmp_path)
    assert meta["descriptions"] == ("B2", "B3", "B4", "B8")
    for i, band in enumerate(("B02", "B03", "B04", "B08")):
        np.testing.assert_array_equal(out[i], jp2(l2a, f"R10m/*_{band}_10m.jp2"))
    assert ((out == 0).all(axis=0) == nodata_mask(SIZE, 10)).all()


@pytest.mark.parametrize("method", ["First", "Min", "Max", "Mean", "Median"])
def test_downsampling_10m_to_20m(l2a, tmp_path, method):
    out, _ = process(l2a, tmp_path, resolution=20, bands=("B2",), downsampling=method)
    b = jp2(l2a, "R10m/*_B02_10m.jp2").astype(np.float64)
    blocks = b.reshape(SIZE // 2, 2, SIZE // 2, 2).swapaxes(1, 2).reshape(SIZE // 2, SIZE // 2, 4)
    valid = blocks > 0
    masked = np.where(valid, blocks, np.nan)
    with np.errstate(all="ignore"), _quiet():
        expected = {"First": blocks[..., 0], "Min": np.nanmin(masked, 2), "Max": np.nanmax(masked, 2),
                    "Mean": np.nanmean(masked, 2), "Median": np.nanmedian(masked, 2)}[method]
    expected = np.where(valid.any(2), np.rint(np.nan_to_num(expected)), 0)
    np.testing.assert_array_equal(out[0], expected.astype(np.uint16))


class _quiet:
    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def test_upsampling_20m_band_to_10m(l2a, tmp_path):
    b5 = jp2(l2a, "R20m/*_B05_20m.jp2")
    nearest, _ = process(l2a, tmp_path / "n", bands=("B5",))
    np.testing.assert_array_equal(nearest[0], np.repeat(np.repeat(b5, 2, 0), 2, 1))
    bilinear, _ = process(l2a, tmp_path / "b", bands=("B5",), upsampling="Bilinear")
    inner = (slice(4, 40), slice(4, 40))  # away from the no-data corner and the edges
    a, n = bilinear[0][inner].astype(float), nearest[0][inner].astype(float)
    assert not np.array_equal(a, n)
    # an interpolated sample lies between the 20 m samples around it
    from scipy.ndimage import maximum_filter, minimum_filter

    def up(x):
        return np.repeat(np.repeat(x, 2, 0), 2, 1)[inner].astype(float)

    assert ((a >= up(minimum_filter(b5, 3)) - 1) & (a <= up(maximum_filter(b5, 3)) + 1)).all()
    assert abs(a.mean() - n.mean()) < 0.01 * n.mean()


def test_l2a_cloud_mask_at_10m_is_the_scl_classes(l2a, tmp_path):
    out, meta = process(l2a, tmp_path, cloudmask="L2A")
    scl10 = np.repeat(np.repeat(expected_scl(SIZE, 20), 2, 0), 2, 1)
    expected = np.isin(scl10, CLOUDS) | nodata_mask(SIZE, 10)
    np.testing.assert_array_equal((out == 0).all(axis=0), expected)
    metrics = meta["result"].metrics
    data = ~nodata_mask(SIZE, 10)
    assert metrics["cloud_percent"] == pytest.approx(100 * (np.isin(scl10, CLOUDS) & data).sum() / data.sum(), abs=1e-3)


@pytest.mark.parametrize("method", ["First", "FlagAnd", "FlagOr", "FlagMedianAnd", "FlagMedianOr"])
def test_flag_downsampling_of_the_cloud_mask(l2a, tmp_path, method):
    # at 40 m each pixel aggregates 2x2 SCL samples of 20 m
    out, _ = process(l2a, tmp_path, resolution=40, bands=("B2",), cloudmask="L2A", flagdownsampling=method,
                     downsampling="Max")
    cloudy = np.isin(expected_scl(SIZE, 20), CLOUDS)
    blocks = cloudy.reshape(30, 2, 30, 2).swapaxes(1, 2).reshape(30, 30, 4)
    n = blocks.sum(axis=2)
    expected = {"First": blocks[..., 0], "FlagAnd": n == 4, "FlagOr": n > 0,
                "FlagMedianAnd": n > 2, "FlagMedianOr": n >= 2}[method]
    np.testing.assert_array_equal(out[0] == 0, expected | nodata_mask(SIZE, 20)[::2, ::2][:30, :30] & (out[0] == 0))
    assert ((out[0] == 0) >= expected).all()


@pytest.mark.parametrize("baseline, offset", [("04.00", -0.1), ("02.14", 0.0)])
def test_l1c_toa_with_its_own_cloud_mask(tmp_path, baseline, offset):
    product = write_s2_product(tmp_path / "p", size_10m=SIZE, level="L1C", baseline=baseline)
    out, meta = process(product, tmp_path, toa=True, cloudmask="L1C", bands=("B2", "B10"), resolution=20)
    assert meta["scales"] == (1e-4, 1e-4) and meta["offsets"] == pytest.approx((offset, offset))
    expected = np.zeros((SIZE // 2, SIZE // 2), bool)
    for name in ("opaque", "cirrus"):
        r0, r1, c0, c1 = cloud_regions(SIZE, 20)[name]
        expected[r0:r1, c0:c1] = True
    np.testing.assert_array_equal((out == 0).all(axis=0), expected | nodata_mask(SIZE, 20))
    record = json.loads(Path(meta["result"].run_record).read_text())
    assert record["inputs"][0]["level"] == "L1C" and record["inputs"][0]["baseline"] == baseline


def test_old_l2a_baseline_has_no_offset(tmp_path):
    product = write_s2_product(tmp_path / "p", size_10m=SIZE, baseline="02.14")
    _, meta = process(product, tmp_path, bands=("B4",))
    assert meta["offsets"] == (0.0,) and meta["scales"] == (1e-4,)


def test_zip_gives_the_same_product_as_the_folder(tmp_path):
    folder = write_s2_product(tmp_path / "f", size_10m=SIZE)
    zipped = write_s2_product(tmp_path / "z", size_10m=SIZE, as_zip=True)
    a, _ = process(folder, tmp_path / "a", resolution=20, cloudmask="L2A")
    b, _ = process(zipped, tmp_path / "b", resolution=20, cloudmask="L2A")
    np.testing.assert_array_equal(a, b)


def test_non_integer_ratio_goes_through_gdal(l2a, tmp_path):
    out, meta = process(l2a, tmp_path, resolution=15, bands=("B2", "B5"), downsampling="Mean")
    assert out.shape == (2, 80, 80) and meta["profile"]["transform"].a == 15
    assert (out[:, 10:30, 10:30] > 0).all()


def test_reprojection_to_lonlat_keeps_the_aoi(l2a, tmp_path):
    import pyproj

    to_ll = pyproj.Transformer.from_crs(32629, 4326, always_xy=True)
    x0, y0 = to_ll.transform(499980 + 200, 5900040 - 1000)
    x1, y1 = to_ll.transform(499980 + 700, 5900040 - 500)
    wkt = f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"
    result = run(str(l2a), S2PreprocessParams(projection="EPSG:4326", aoi=wkt, bands=("B2",)), str(tmp_path))
    with rasterio.open(result.product) as ds:
        assert ds.crs.to_epsg() == 4326
        assert ds.res[0] == pytest.approx(10 / 111320, rel=1e-6)
        left, bottom, right, top = ds.bounds
        assert left == pytest.approx(x0, abs=2e-4) and top == pytest.approx(y1, abs=2e-4)
        data = ds.read(1)
    assert (data > 0).sum() > 0.8 * 50 * 50


def test_dem_land_sea_mask_with_tolerance(l2a, tmp_path):
    from rasterio.transform import from_origin

    dem = tmp_path / "dem.tif"
    elev = np.full((SIZE, SIZE), 50, np.int16)
    elev[:, : SIZE // 2] = -5  # the western half is sea
    with rasterio.open(dem, "w", driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="int16",
                       crs="EPSG:32629", transform=from_origin(499980, 5900040, 10, 10)) as ds:
        ds.write(elev, 1)
    out, _ = process(l2a, tmp_path / "sea", landseamask="Sea", dem=str(dem), bands=("B2",), resolution=60)
    removed = out[0] == 0
    # the DEM is resampled onto the mask's grid, which may move the coast by a pixel
    assert removed[:, :9].all() and not removed[12:, 11:].any()
    kept, _ = process(l2a, tmp_path / "tol", landseamask="Sea", dem=str(dem), bands=("B2",), resolution=60,
                      landseamask_tolerance=200)
    assert (kept[0][:, 7:10] > 0).any() and (kept[0][:, :5] == 0).all()


def test_global_land_mask_removes_open_sea(tmp_path):
    # 1.2 km tile about 170 km off the Irish west coast (UTM 29N)
    product = write_s2_product(tmp_path / "p", size_10m=SIZE, ulx=300000, uly=5900040, nodata_corner=False)
    out, meta = process(product, tmp_path, landseamask="Sea", bands=("B2",))
    assert (out == 0).all() and meta["result"].metrics["valid_percent"] == 0
    out, _ = process(product, tmp_path / "land", landseamask="Land", bands=("B2",))
    assert (out > 0).all()


def test_aoi_from_a_geopackage_in_another_crs(l2a, tmp_path):
    import pyogrio
    import pyproj
    import shapely
    from shapely.geometry import box

    to_merc = pyproj.Transformer.from_crs(32629, 3857, always_xy=True)
    poly = shapely.transform(box(499980 + 300, 5900040 - 900, 499980 + 900, 5900040 - 300).segmentize(10),
                             lambda xy: np.column_stack(to_merc.transform(xy[:, 0], xy[:, 1])))
    gpkg = tmp_path / "aoi.gpkg"
    pyogrio.raw.write(gpkg, geometry=np.array([shapely.to_wkb(poly)], dtype=object), field_data=[],
                      fields=[], crs="EPSG:3857", geometry_type="Polygon", driver="GPKG")
    out, meta = process(l2a, tmp_path, aoi=str(gpkg), bands=("B2",))
    assert out.shape == (1, 60, 60)
    assert meta["profile"]["transform"].c == pytest.approx(499980 + 300)


def test_other_gdal_format(l2a, tmp_path):
    result = run(str(l2a), S2PreprocessParams(output_format="ENVI", bands=("B2", "B3"), resolution=60), str(tmp_path))
    assert result.product.endswith(".bin") or Path(result.product).suffix in (".img", ".bin", ".dat")
    assert any(p.suffix == ".hdr" for p in tmp_path.iterdir())
    with rasterio.open(result.product) as ds:
        assert ds.driver == "ENVI" and ds.count == 2
    item = json.loads(Path(result.stac).read_text())
    assert item["assets"]["data"]["href"] == Path(result.product).name
    assert item["assets"]["data"]["type"] == "application/octet-stream"
    validate_item(item)


def test_s3_in_and_out(l2a, tmp_path, s3_server, monkeypatch):
    from components.common import storage

    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    zipped = write_s2_product(tmp_path / "z", size_10m=SIZE, as_zip=True)
    client = s3_server.client()
    if not client.bucket_exists("eo-data"):
        client.make_bucket("eo-data")
    client.fput_object("eo-data", f"in/{zipped.name}", str(zipped))
    result = run(f"s3://eo-data/in/{zipped.name}", S2PreprocessParams(bands=("B2",), resolution=20), "s3://eo-data/out/run1")
    assert result.product.startswith("s3://eo-data/out/run1/") and result.product.endswith("_20m.tif")
    names = {o.object_name for o in client.list_objects("eo-data", prefix="out/run1/", recursive=True)}
    assert {Path(n).name for n in names} >= {"run.json", Path(result.product).name, Path(result.stac).name}
    local = storage.fetch_input(result.product, tmp_path / "back")
    with rasterio.open(local) as ds:
        np.testing.assert_array_equal(ds.read(1), jp2_downsampled_first(zipped))


def jp2_downsampled_first(product: Path) -> np.ndarray:
    import zipfile

    with zipfile.ZipFile(product) as z:
        name = next(n for n in z.namelist() if n.endswith("_B02_10m.jp2"))
    with rasterio.open(f"/vsizip/{product}/{name}") as ds:
        return ds.read(1)[::2, ::2]
