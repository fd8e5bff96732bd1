"""S2-CD on a pair of synthetic L2A products (real SAFE layout) with planted changes, a
radiometric difference between the dates and clouds in the second date: the planted changes
come back, in their own classes, with their magnitude and angle; clouds and the area outside
the footprint are NoData; the products are complete (COG, palette, STAC, quicklooks, report)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from components.s2_change_detection.params import S2ChangeParams
from components.s2_change_detection.service import run
from components.s2_preprocess.params import S2PreprocessParams
from components.s2_preprocess.service import run as preprocess
from tests.fixtures.s2_products import expected_scl, nodata_mask
from tests.s2_change_detection.pairs import PLANTED, SIZE, write_pair
from tests.stac_schema import validate_item

UTM = {"numberClasses": 3}  # the default projection keeps the inputs' UTM grid


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_pair(tmp_path_factory.mktemp("pair"))


@pytest.fixture(scope="module")
def utm_run(pair, tmp_path_factory):
    out = tmp_path_factory.mktemp("utm")
    return run(str(pair[0]), str(pair[1]), S2ChangeParams.from_strings(UTM), str(out))


def test_default_output_keeps_the_input_grid(pair, utm_run):
    with rasterio.open(next(pair[0].rglob("*_B02_10m.jp2"))) as band:
        crs, transform, shape = band.crs, band.transform, band.shape
    for path in (utm_run.product, utm_run.cva):
        with rasterio.open(path) as ds:
            assert (ds.crs, ds.transform, ds.shape) == (crs, transform, shape)


def _read(path, band=1):
    with rasterio.open(path) as ds:
        return ds.read(band)


def _cloudy_10m() -> np.ndarray:
    scl = expected_scl(SIZE, 20)
    return np.isin(np.repeat(np.repeat(scl, 2, 0), 2, 1), (3, 8, 9, 10))


def test_planted_changes_come_back(utm_run):
    classes = _read(utm_run.product)
    assert classes.shape == (SIZE, SIZE)
    changed = (classes > 0) & (classes < 255)
    planted = np.any([p.mask(classes.shape) for p in PLANTED], axis=0)
    # a 3x3 median filter loses at most the corner pixel of each rectangle
    assert changed[planted].sum() >= planted.sum() - 4 * len(PLANTED)
    assert not (changed & ~planted).any(), "change found where none was planted"
    majority = []
    for p in PLANTED:
        inside = classes[p.mask(classes.shape) & changed]
        counts = np.bincount(inside, minlength=4)
        assert counts.max() >= 0.95 * inside.size, (p.name, counts)
        majority.append(int(counts.argmax()))
    # three directions, three classes, numbered by increasing angle (63, 90, 106 degrees)
    assert majority == [1, 2, 3]


def test_magnitude_and_angle_of_the_planted_vectors(utm_run):
    magnitude, angle = _read(utm_run.cva, 1), _read(utm_run.cva, 2)
    for p in PLANTED:
        inner = np.zeros(magnitude.shape, bool)
        inner[p.rows[0] + 1:p.rows[1] - 1, p.cols[0] + 1:p.cols[1] - 1] = True
        assert np.median(magnitude[inner]) == pytest.approx(p.magnitude, rel=0.05), p.name
        assert np.median(angle[inner]) == pytest.approx(p.angle(), abs=2.0), p.name


def test_clouds_and_outside_the_footprint_are_nodata(utm_run):
    classes, magnitude = _read(utm_run.product), _read(utm_run.cva)
    masked = _cloudy_10m() | nodata_mask(SIZE, 10)
    assert (classes[masked] == 255).all() and (magnitude[masked] == -9999).all()
    assert (classes[~masked] != 255).all()
    assert utm_run.metrics["valid_percent"] == pytest.approx(100.0 * (~masked).mean(), abs=0.01)


def test_products_sidecars_and_report(utm_run):
    out = Path(utm_run.product).parent
    assert Path(utm_run.product).name == "S2-CD_T29UNU_20220601_20220820_10m.tif"
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "S2-CD_T29UNU_20220601_20220820_10m.tif", "CVA_T29UNU_20220601_20220820_10m.tif",
        "S2-CD_T29UNU_20220601_20220820_10m.tif.aux.xml",  # GDAL's category names of the classes
        "S2-CD_T29UNU_20220601_20220820_10m.json", "CVA_T29UNU_20220601_20220820_10m.json",
        "S2-CD_T29UNU_20220601_20220820_10m_quicklook.png", "CVA_T29UNU_20220601_20220820_10m_quicklook.png",
        "S2-CD_T29UNU_20220601_20220820_10m_report.json", "S2-CD_T29UNU_20220601_20220820_10m_report.md",
        "run.json"])
    with rasterio.open(utm_run.product) as ds:
        assert (ds.dtypes[0], ds.nodata, ds.crs.to_epsg()) == ("uint8", 255, 32629)
        cmap = ds.colormap(1)
        assert cmap[255][3] == 0 and len({cmap[j] for j in (0, 1, 2, 3)}) == 4
    with rasterio.open(utm_run.cva) as ds:
        assert (ds.count, ds.dtypes, ds.nodata, ds.descriptions) == (2, ("float32", "float32"), -9999,
                                                                     ("magnitude", "angle"))
    classes, magnitude, angle = _read(utm_run.product), _read(utm_run.cva, 1), _read(utm_run.cva, 2)
    report = json.loads(Path(utm_run.report).read_text())
    for c in report["classes"]:
        m = classes == c["class"]
        assert c["pixels"] == int(m.sum())
        assert c["mean_magnitude"] == pytest.approx(float(magnitude[m].mean()), rel=1e-4)
        assert c["mean_angle_deg"] == pytest.approx(float(angle[m].mean()), abs=1e-2)
    assert "| 3 |" in Path(utm_run.report).with_suffix(".md").read_text()
    for stac in (utm_run.stac, utm_run.cva_stac):
        item = json.loads(Path(stac).read_text())
        validate_item(item)
        assert item["properties"]["start_datetime"].startswith("2022-06-01")
        assert item["properties"]["end_datetime"].startswith("2022-08-20")
        assert (out / item["assets"]["data"]["href"]).is_file() and (out / item["assets"]["thumbnail"]["href"]).is_file()
    record = json.loads(Path(utm_run.run_record).read_text())
    assert record["service"] == "S2-CD" and [i["role"] for i in record["inputs"]] == ["input1", "input2"]
    # the planted gains and offsets are found back (normalisation of date 2 onto date 1)
    from tests.s2_change_detection.pairs import GAIN, OFFSET

    norm = record["outputs"]["method"]["normalisation"]
    for reflectance in (0.05, 0.35):
        date2 = GAIN * reflectance + OFFSET
        np.testing.assert_allclose(np.array(norm["gain"]) * date2 + norm["offset"], reflectance, atol=0.003)
    for png in (utm_run.quicklook, utm_run.cva_quicklook):
        with rasterio.open(png) as ds:
            assert ds.count == 4 and ds.height >= SIZE and ds.width > SIZE  # the map and its legend


def test_pre_processed_stacks_give_the_same_result(pair, utm_run, tmp_path):
    """The output of S2-preprocess (its GeoTIFF, or its whole folder) is accepted as input."""
    pre = []
    for i, product in enumerate(pair):
        pre.append(preprocess(str(product), S2PreprocessParams(cloudmask="L2A"), str(tmp_path / f"pre{i}")))
    result = run(pre[0].product, str(tmp_path / "pre1"), S2ChangeParams.from_strings(UTM), str(tmp_path / "out"))
    np.testing.assert_array_equal(_read(result.product), _read(utm_run.product))
    np.testing.assert_array_equal(_read(result.cva), _read(utm_run.cva))
    record = json.loads(Path(result.run_record).read_text())
    assert [i["kind"] for i in record["inputs"]] == ["stack", "stack"]
    assert [i["tile"] for i in record["inputs"]] == ["T29UNU", "T29UNU"]


def test_zip_input_aoi_and_wgs84_projection(pair, tmp_path):
    zipped = Path(shutil.make_archive(str(tmp_path / pair[1].stem), "zip", root_dir=pair[1].parent,
                                      base_dir=pair[1].name))
    with rasterio.open(next(pair[0].rglob("*_B02_10m.jp2"))) as ds:
        from rasterio.warp import transform_bounds

        # the planted rectangles "brighter" and "nir_loss" lie in rows 50..80, cols 50..88
        left, top = ds.transform @ (40, 40)
        right, bottom = ds.transform @ (95, 90)
        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", left, bottom, right, top)
    aoi = f"POLYGON(({w} {s},{e} {s},{e} {n},{w} {n},{w} {s}))"
    result = run(str(pair[0]), str(zipped), S2ChangeParams(aoi=aoi, numberClasses=3, projection="WGS84"),
                 str(tmp_path / "out"))
    with rasterio.open(result.product) as ds:
        assert ds.crs.to_epsg() == 4326
        assert ds.res[0] == pytest.approx(10 / 111320)
        classes = ds.read(1)
    assert (classes == 255).any() and set(np.unique(classes)) <= {0, 1, 2, 3, 255}
    assert result.metrics["changed_pixels"] > 100


def test_s3_inputs_and_output(pair, tmp_path, s3_server, monkeypatch):
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    client = s3_server.client()
    if not client.bucket_exists("eo-cd"):
        client.make_bucket("eo-cd")
    zipped = Path(shutil.make_archive(str(tmp_path / pair[0].stem), "zip", root_dir=pair[0].parent,
                                      base_dir=pair[0].name))
    client.fput_object("eo-cd", f"in/{zipped.name}", str(zipped))
    result = run(f"s3://eo-cd/in/{zipped.name}", str(pair[1]), S2ChangeParams.from_strings(UTM), "s3://eo-cd/out/r1")
    assert result.product.startswith("s3://eo-cd/out/r1/S2-CD_T29UNU_")
    names = {Path(o.object_name).name for o in client.list_objects("eo-cd", prefix="out/r1/", recursive=True)}
    assert {"run.json", Path(result.product).name, Path(result.cva).name, Path(result.report).name} <= names


def test_level_1c_pair_across_the_offset_baseline_has_no_change(tmp_path):
    """Two L1C products of the same scene, one of baseline 04.00 (DN offset -1000) and one of 03.01
    (no offset), other noise: top-of-atmosphere reflectance, ESA's L1C cloud masks, no change."""
    from tests.fixtures.s2_products import write_s2_product

    a = write_s2_product(tmp_path / "a", size_10m=60, level="L1C", sensing="20220601T112121")
    b = write_s2_product(tmp_path / "b", size_10m=60, level="L1C", sensing="20220820T112119", seed=3,
                         baseline="03.01")
    result = run(str(a), str(b), S2ChangeParams(), str(tmp_path / "out"))
    classes = _read(result.product)
    assert set(np.unique(classes)) <= {0, 255} and (classes == 0).sum() > 2000
    record = json.loads(Path(result.run_record).read_text())
    assert [i["level"] for i in record["inputs"]] == ["L1C", "L1C"]
    np.testing.assert_allclose(record["outputs"]["method"]["normalisation"]["gain"], 1.0, atol=0.02)
