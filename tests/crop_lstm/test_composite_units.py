"""tile_classifier brings every composite to the model's unit (reflectance x 10000) by the project's
rule for Sentinel-2 reflectance rasters (components.common.reflectance), finds the model's bands by
name when the composites name their bands, and checks the input unit the model file records.

The same reflectance stored as monthlycomposite writes it (uint16, scale 1e-4), as baseline >= 04.00
DN (DN + 1000 with offset -0.1 tags) or as float reflectance 0..1 gives the same map, pixel for
pixel; values that fit no unit (percent) are refused with one line."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import rasterio

from components.crop_lstm.classify_cli import main
from components.crop_lstm.h5io import load_model
from components.crop_lstm.train_cli import main as train_main
from components.crop_lstm.units import MODEL_UNIT, training_unit
from tests.fixtures.crop_chain import TRAIN_ARGS

PROG = "tile_classifier"
NODATA = 255
BANDS = ["B2", "B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12"]


def _rewrite(chain, dst, values, dtype, scale=None, offset=None, names=None, order=None, nodata="keep", fill=0):
    """The chain's composites (uint16 reflectance x 10000, 0 = no observation) stored another way:
    ``values(dn)`` the stored values (``fill`` where unobserved), band ``order`` and ``names`` (None:
    keep; []: no names), ``nodata`` declared."""
    shutil.copytree(chain.composites, dst)
    for path in sorted(dst.glob("*.tif")):
        with rasterio.open(path) as ds:
            profile, dn, desc, tags = ds.profile, ds.read().astype(np.float64), ds.descriptions, ds.tags()
        data = np.where(dn > 0, values(dn), fill).astype(dtype)
        desc = list(desc)
        if order is not None:
            data, desc = data[order], [desc[i] for i in order]
        profile.update(dtype=dtype)
        if nodata != "keep":
            profile.update(nodata=nodata)
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(data)
            if names != []:
                ds.descriptions = names if names is not None else desc
            if scale is not None:
                ds.scales, ds.offsets = [scale] * ds.count, [offset] * ds.count
            ds.update_tags(**tags)
    return dst


def _run(chain, tmp_path, name, mc, inputs=None):
    out = tmp_path / name
    inputs = inputs or chain.input_dir(tmp_path / f"{name}_in", mask=False)
    code = main(["--input_dir", str(inputs), "--output_dir", str(out), "--mc_dir", str(mc), "--majority_size", "1"])
    if code != 0:
        return code, None, None
    with rasterio.open(next(out.glob("*_crop_map_*.tif"))) as ds:
        return code, ds.read(1), json.loads((out / "run.json").read_text())


@pytest.fixture(scope="module")
def reference(chain, tmp_path_factory):
    """The map of the chain's own composites (monthlycomposite: uint16, scale tag 1e-4)."""
    code, labels, _ = _run(chain, tmp_path_factory.mktemp("reference"), "ref", chain.composites)
    assert code == 0 and (labels != NODATA).any()
    return labels


def _errors(capsys) -> tuple[list[str], str]:
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if line.startswith(f"{PROG}: error:")], err


# -- 1. the composites' unit ---------------------------------------------------------------

ENCODINGS = [
    # baseline >= 04.00: DN = reflectance x 10000 + 1000, tagged scale 1e-4, offset -0.1
    ("offset tags", lambda dn: dn + 1000, "uint16", 1e-4, -0.1, 0, "(band scale/offset tags)"),
    # float reflectance 0..1 without tags (SNAP, QGIS, xarray exports)
    ("float reflectance", lambda dn: dn / 10000, "float32", None, None, 0, "read as reflectance"),
    # the same, NaN where unobserved
    ("float reflectance, NaN", lambda dn: dn / 10000, "float32", None, None, np.nan, "read as reflectance"),
    # DN x 10000 without any tag (band files exported without metadata)
    ("DN without tags", lambda dn: dn, "uint16", None, None, 0, "read as DN x 10000"),
]


@pytest.mark.parametrize("case_id, values, dtype, scale, offset, fill, note", ENCODINGS, ids=[e[0] for e in ENCODINGS])
def test_same_reflectance_any_encoding_gives_the_same_map(case_id, values, dtype, scale, offset, fill, note, chain,
                                                         reference, tmp_path, caplog):
    caplog.set_level("INFO")
    mc = _rewrite(chain, tmp_path / "mc", values, dtype, scale, offset, fill=fill)
    code, labels, record = _run(chain, tmp_path, "map", mc)
    assert code == 0
    np.testing.assert_array_equal(labels, reference)
    # what was decided is logged and recorded
    units = record["inputs"][1]["units"]
    assert len(units) == 12 and all(note in u for u in units.values()), units
    assert note in caplog.text


def test_float_reflectance_x_10000_and_a_nodata_value(chain, reference, tmp_path):
    # float reflectance x 10000 and, where unobserved, a declared NoData other than 0: no observation
    mc = _rewrite(chain, tmp_path / "mc", lambda dn: dn, "float32", nodata=-9999.0)
    for path in mc.glob("*.tif"):
        with rasterio.open(path, "r+") as ds:
            data = ds.read()
            data[data == 0] = -9999.0
            ds.write(data)
    code, labels, _ = _run(chain, tmp_path, "map", mc)
    assert code == 0
    np.testing.assert_array_equal(labels, reference)


@pytest.mark.parametrize("case_id, values, dtype, fragment", [
    ("percent", lambda dn: dn / 100, "float32", "are neither reflectance"),
    ("8-bit", lambda dn: np.clip(dn / 40, 1, 255), "uint8", "8-bit uint8 values without a scale tag"),
], ids=["percent", "8-bit"])
def test_values_that_fit_no_unit_are_refused(case_id, values, dtype, fragment, chain, tmp_path, capsys):
    mc = _rewrite(chain, tmp_path / "mc", values, dtype)
    out = tmp_path / "out"
    code = main(["--input_dir", str(chain.input_dir(tmp_path / "in")), "--output_dir", str(out),
                 "--mc_dir", str(mc)])
    errors, err = _errors(capsys)
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    assert "_MC_" in errors[0] and "in mc_dir" in errors[0] and fragment in errors[0], errors[0]
    assert not out.exists()


# -- 2. the composites' bands --------------------------------------------------------------

def test_named_bands_are_found_by_name_in_any_order(chain, reference, tmp_path):
    order = [8, 6, 0, 3, 1, 7, 2, 5, 4]
    mc = _rewrite(chain, tmp_path / "mc", lambda dn: dn, "uint16", 1e-4, 0.0, order=order)
    code, labels, _ = _run(chain, tmp_path, "map", mc)
    assert code == 0
    np.testing.assert_array_equal(labels, reference)


def test_named_bands_without_a_band_the_model_needs_are_refused(chain, tmp_path, capsys):
    # nine bands, B8A's data moved to the 4th place and named B8: never read by position
    order = [0, 1, 2, 6, 3, 4, 5, 7, 8]
    names = ["B2", "B3", "B4", "B8", "B5", "B6", "B7", "B11", "B12"]
    mc = _rewrite(chain, tmp_path / "mc", lambda dn: dn, "uint16", 1e-4, 0.0, names=names, order=order)
    out = tmp_path / "out"
    code = main(["--input_dir", str(chain.input_dir(tmp_path / "in")), "--output_dir", str(out),
                 "--mc_dir", str(mc)])
    errors, err = _errors(capsys)
    assert code == 2, err
    assert len(errors) == 1 and "has no band named B8A" in errors[0], errors[0]
    assert "B2, B3, B4, B8, B5, B6, B7, B11, B12" in errors[0]
    assert not out.exists()


def test_unnamed_bands_are_taken_by_position_and_logged(chain, reference, tmp_path, caplog):
    caplog.set_level("INFO")
    mc = _rewrite(chain, tmp_path / "mc", lambda dn: dn, "uint16", 1e-4, 0.0, names=[])
    with rasterio.open(next(mc.glob("*.tif"))) as ds:
        assert not any(ds.descriptions)
    code, labels, _ = _run(chain, tmp_path, "map", mc)
    assert code == 0
    np.testing.assert_array_equal(labels, reference)
    assert "no band carries a name" in caplog.text and "taken by position" in caplog.text


# -- 3. the model's input unit -------------------------------------------------------------

def test_model_file_records_its_input_unit(chain):
    with h5py.File(chain.h5, "r") as f:
        assert f.attrs["input_unit"] == MODEL_UNIT
    assert load_model(chain.h5)[1].input_unit == MODEL_UNIT


def test_model_file_without_input_unit_is_still_read(chain, reference, tmp_path, caplog):
    caplog.set_level("INFO")
    inputs = chain.input_dir(tmp_path / "in", mask=False)
    with h5py.File(inputs / "crop_lstm.h5", "r+") as f:
        if "input_unit" in f.attrs:  # files written before it was recorded
            del f.attrs["input_unit"]
    code, labels, _ = _run(chain, tmp_path, "map", chain.composites, inputs)
    assert code == 0
    np.testing.assert_array_equal(labels, reference)
    assert "crop_lstm.h5 records no input unit" in caplog.text


def test_model_of_an_unknown_input_unit_is_refused(chain, tmp_path, capsys):
    inputs = chain.input_dir(tmp_path / "in")
    with h5py.File(inputs / "crop_lstm.h5", "r+") as f:
        f.attrs["input_unit"] = "unknown"
    out = tmp_path / "out"
    code = main(["--input_dir", str(inputs), "--output_dir", str(out), "--mc_dir", str(chain.composites)])
    errors, err = _errors(capsys)
    assert code == 2, err
    assert len(errors) == 1 and "crop_lstm.h5 was trained on values of unit 'unknown'" in errors[0], errors[0]
    assert not out.exists()


def test_model_trained_on_reflectance_0_1_gets_reflectance(chain, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(chain.dataset, data)
    for f in (data / "train.npy", data / "val" / "val.npy"):
        np.save(f, np.load(f) / np.float32(10000))
    model = tmp_path / "model"
    assert train_main(["--input_dir", str(data), "--output_dir", str(model), "--val", str(data / "val"),
                       *TRAIN_ARGS]) == 0
    assert load_model(model / "crop_lstm.h5")[1].input_unit == "reflectance"
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(model / "crop_lstm.h5", inputs)
    code, labels, _ = _run(chain, tmp_path, "map", chain.composites, inputs)
    assert code == 0
    fields = chain.truth >= 0
    assert (labels[fields] == chain.truth[fields]).mean() > 0.9


def test_training_unit_from_the_values():
    rng = np.random.default_rng(0)
    x = rng.uniform(100, 6000, (50, 12, 9)).astype(np.float32)
    x[::3, 2] = 0
    assert training_unit(x)[0] == MODEL_UNIT
    assert training_unit(x / 10000)[0] == "reflectance"
    assert training_unit(x / 100)[0] == "unknown"  # percent
    assert training_unit(np.zeros((2, 3, 4)))[0] == "unknown"
