"""The unit of a GeoTIFF stack given to S2-CD (``components.common.reflectance``): a scale tag is
honoured; without one, integer DN far above 1 are DN x 10000 and float values within about -0.5..2
are reflectance, so that the same scene in any of these forms gives the same change map and CVA
magnitude (in reflectance, the CVA's unit "1"); NaN and infinities are no data whatever the
declared NoData; values that fit no unit are refused in one line; run.json never holds NaN."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from components.s2_change_detection.cli import main

BANDS = ("B2", "B3", "B4", "B8")
SIZE = 80
NAMES = ("S2A_MSIL2A_20220601T112121_N0400_R023_T29UNU_20220601T161204_10m.tif",
         "S2B_MSIL2A_20220820T112119_N0400_R023_T29UNU_20220820T161202_10m.tif")
CORNER = (slice(0, 6), slice(0, 9))  # no data in date 2


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """Reflectance (bands, rows, cols) of both dates: a textured scene, other noise in date 2, a
    radiometric gain, and two planted changes."""
    rng = np.random.default_rng(7)
    base = np.array([0.05, 0.08, 0.06, 0.30])[:, None, None]
    texture = rng.uniform(0.7, 1.3, (1, SIZE, SIZE))
    r1 = base * texture + rng.normal(0, 0.004, (4, SIZE, SIZE))
    r2 = 1.03 * (base * texture + rng.normal(0, 0.004, (4, SIZE, SIZE))) + 0.005
    r2[:, 30:40, 30:40] += np.array([0.08, 0.07, 0.10, -0.12])[:, None, None]
    r2[:, 55:63, 10:18] += np.array([-0.02, -0.03, -0.03, -0.20])[:, None, None]
    return np.clip(r1, 0.001, 1), np.clip(r2, 0.001, 1)


def _write(path, data, *, nodata, scale=None, offset=None):
    profile = {"driver": "GTiff", "width": SIZE, "height": SIZE, "count": len(BANDS), "dtype": data.dtype.name,
               "crs": "EPSG:32629", "transform": from_origin(500000, 5900000, 10, 10), "nodata": nodata}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        ds.descriptions = BANDS
        if scale is not None:
            ds.scales = [scale] * len(BANDS)
        if offset is not None:
            ds.offsets = [offset] * len(BANDS)
    return path


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    """The same pair in several forms, one folder each."""
    root = tmp_path_factory.mktemp("units")
    r1, r2 = _scene()
    dn = [np.rint(r * 10000).astype(np.uint16) for r in (r1, r2)]
    dn[1][:, CORNER[0], CORNER[1]] = 0
    refl = [d.astype(np.float32) / np.float32(10000) for d in dn]  # the same values as reflectance
    nan = [r.copy() for r in refl]
    nan[1][:, CORNER[0], CORNER[1]] = np.nan
    forms = {
        "scaled": [dict(data=d, nodata=0, scale=1e-4, offset=0.0) for d in dn],  # as S2-preprocess writes
        "unscaled": [dict(data=d, nodata=0) for d in dn],  # DN x 10000 without a scale tag (sen2r, QGIS)
        "float_nan": [dict(data=r, nodata=float("nan")) for r in nan],  # reflectance, NaN no data (OSCD exports)
        "float_dn": [dict(data=d.astype(np.float32), nodata=0.0) for d in dn],  # DN as float32 (gdal -ot Float32)
    }
    # NaN and infinities are no data even where another NoData is declared
    odd = refl[1].copy()
    odd[:, CORNER[0], CORNER[1]] = np.nan
    odd[0, 20, 40], odd[2, 70, 70] = -9999, np.inf
    forms["float_nodata_9999"] = [dict(data=refl[0], nodata=-9999.0), dict(data=odd, nodata=-9999.0)]
    out = {}
    for name, pair in forms.items():
        (root / name).mkdir()
        out[name] = [_write(root / name / n, **kw) for n, kw in zip(NAMES, pair)]
    bad = root / "bad"
    bad.mkdir()
    out["percent"] = _write(bad / "percent.tif", (refl[1] * 100).astype(np.float32), nodata=None)
    out["uint8"] = _write(bad / "rgb.tif", np.clip(dn[1] // 20, 0, 255).astype(np.uint8), nodata=0)
    out["small_ints"] = _write(bad / "small.tif", (dn[1] > 500).astype(np.uint16) + 1, nodata=0)
    out["wrong_tag"] = _write(bad / "wrong_tag.tif", dn[1], nodata=0, scale=0.5)
    out["root"] = root
    return out


def _run(first, second, out, *extra):
    code = main(["--input1", str(first), "--input2", str(second), "--output_path", str(out), "--numberClasses", "2",
                 *extra])
    assert code == 0
    record = json.loads((out / "run.json").read_text(), parse_constant=_no_constant)
    (cls,) = out.glob("S2-CD_*m.tif")
    (cva,) = out.glob("CVA_*m.tif")
    with rasterio.open(cls) as c, rasterio.open(cva) as v:
        return c.read(1), v.read(1), record


def _no_constant(name):
    raise AssertionError(f"run.json holds {name}, which is not JSON")


@pytest.fixture(scope="module")
def reference(stacks, tmp_path_factory):
    return _run(*stacks["scaled"], tmp_path_factory.mktemp("ref"))


def test_the_reference_finds_the_planted_changes(reference):
    classes, magnitude, record = reference
    assert (classes[CORNER] == 255).all() and (classes[30:40, 30:40] > 0).mean() > 0.6
    assert 0.1 < float(np.median(magnitude[32:38, 32:38])) < 0.2  # reflectance, not DN
    assert record["outputs"]["metrics"]["changed_pixels"] > 60


@pytest.mark.parametrize("form", ["unscaled", "float_nan", "float_dn", "float_nodata_9999"])
def test_every_form_of_the_pair_gives_the_same_result(form, stacks, reference, tmp_path):
    classes, magnitude, record = _run(*stacks[form], tmp_path / "out")
    ref_classes, ref_magnitude, ref_record = reference
    if form == "float_nodata_9999":
        assert classes[20, 40] == classes[70, 70] == 255
        ref_classes = ref_classes.copy()
        ref_classes[20, 40] = ref_classes[70, 70] = 255
    np.testing.assert_array_equal(classes == 255, ref_classes == 255)
    same = (classes != 255) & (ref_classes != 255)
    same[19:22, 39:42] = same[69:72, 69:72] = False  # the median filter sees the two extra no-data pixels
    assert (classes[same] == ref_classes[same]).mean() > 0.995
    np.testing.assert_allclose(magnitude[same], ref_magnitude[same], rtol=5e-4, atol=2e-5)
    assert abs(record["outputs"]["metrics"]["changed_pixels"] - ref_record["outputs"]["metrics"]["changed_pixels"]) \
        <= 0.005 * ref_record["outputs"]["metrics"]["changed_pixels"]
    assert not np.isnan(magnitude).any()
    assert {i["values"] for i in record["inputs"]} == {"dn" if form in ("unscaled", "float_dn") else "reflectance"}


def test_a_scaled_and_an_unscaled_date_end_in_the_same_units(stacks, tmp_path):
    """Without normalisation nothing would hide a factor of 10000 between the dates."""
    mixed = _run(stacks["scaled"][0], stacks["unscaled"][1], tmp_path / "mixed", "--normalisation", "None")
    same = _run(*stacks["scaled"], tmp_path / "same", "--normalisation", "None")
    np.testing.assert_array_equal(mixed[0], same[0])
    np.testing.assert_allclose(mixed[1], same[1], atol=1e-6)
    valid = mixed[0] != 255
    assert float(np.median(mixed[1][valid])) < 0.1


@pytest.mark.parametrize("key, fragment", [
    ("percent", "input2: percent.tif: float32 values"),
    ("uint8", "input2: rgb.tif: 8-bit uint8 values without a scale tag are not Sentinel-2 reflectance"),
    ("small_ints", "input2: small.tif: uint16 values 1..2 (1st..99th percentile) without a scale tag are neither"),
    ("wrong_tag", "input2: wrong_tag.tif: its scale tag 0.5"),
])
def test_values_that_fit_no_unit_are_refused(key, fragment, stacks, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["--input1", str(stacks["scaled"][0]), "--input2", str(stacks[key]), "--output_path", str(out)])
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("S2-CD: error: ") and fragment in lines[0], lines
    assert not out.exists() or not any(out.rglob("*"))


def test_the_run_record_never_holds_nan():
    from components.common.outputs import json_safe

    data = json_safe({"a": [1.0, math.nan, np.float32("inf")], "b": {"c": -math.inf, "d": "x", "e": 2}})
    assert data == {"a": [1.0, None, None], "b": {"c": None, "d": "x", "e": 2}}
    json.dumps(data, allow_nan=False)
