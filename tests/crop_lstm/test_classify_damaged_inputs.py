"""tile_classifier with a model file whose values are damaged (architecture, class ids, names, bands,
time steps, non-finite weights or normalisation): exit status 2, one line naming the model file and
the field, nothing written. Composites holding NaN: those observations are missing (as 0 is), a
pixel without any observation is NoData. A sieve size the map cannot reach is refused."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import rasterio

from components.crop_lstm.classify_cli import main

PROG = "tile_classifier"
NODATA = 255


def config(**changes):
    def edit(f):
        f.attrs["config"] = json.dumps({**json.loads(f.attrs["config"]), **changes})
    return edit


def attribute(name, value):
    return lambda f: f.attrs.__setitem__(name, value)


def dataset(name, value):
    def edit(f):
        data = f[name][()]
        data[...] = value
        f[name][...] = data
    return edit


H5 = "crop_lstm.h5: "  # load_model's refusals start with the model file's name
BANDS = ["B2", "B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12"]
MODELS = [
    ("hidden_size 0", config(hidden_size=0), H5 + "config hidden_size is 0: expected an integer 1..2048"),
    ("hidden_size text", config(hidden_size="24"), H5 + 'config hidden_size is "24": expected an integer 1..2048'),
    ("num_layers 0", config(num_layers=0), H5 + "config num_layers is 0: expected an integer 1..8"),
    ("dropout 5", config(dropout=5), H5 + "config dropout is 5: expected a number 0..0.9"),
    ("bidirectional text", config(bidirectional="false"),
     H5 + 'config bidirectional is "false": expected true or false'),
    ("config a list", attribute("config", "[1, 2]"), H5 + "config is [1, 2]: expected a JSON object"),
    ("n_timesteps disagrees", config(n_timesteps=3),
     H5 + "timesteps lists 12 entries but the network has 3 time steps (n_timesteps)"),
    ("class id 300", attribute("class_ids", np.array([1, 2, 9, 300])),
     H5 + "class_ids holds 300: class ids must be 0..254"),
    ("class id -1", attribute("class_ids", np.array([1, 2, 9, -1])),
     H5 + "class_ids holds -1: class ids must be 0..254"),
    ("class id NoData", attribute("class_ids", np.array([1, 2, 9, 255])), H5 + "class_ids holds 255"),
    ("class id twice", attribute("class_ids", np.array([1, 2, 9, 9])), H5 + "class_ids lists class 9 twice"),
    ("class_names a number", attribute("class_names", "5"), H5 + "class_names is 5: expected a JSON list of texts"),
    ("timesteps empty", attribute("timesteps", "[]"), H5 + "timesteps lists 0 entries but the network has 12 time"),
    ("band_names empty", attribute("band_names", "[]"), H5 + "band_names lists 0 entries but the network has 9 input"),
    ("band_names a number", attribute("band_names", "7"), H5 + "band_names is 7: expected a JSON list of texts"),
    ("band_names twice", attribute("band_names", json.dumps(BANDS[:7] + ["B2", "B12"])),
     "the model's band_names list B2 twice"),
    ("NaN weights", dataset("weights/head.weight", np.nan), H5 + "weights/head.weight holds NaN, infinite"),
    ("NaN mean", dataset("normalisation/mean", np.nan), H5 + "normalisation/mean holds NaN, infinite"),
    ("zero std", dataset("normalisation/std", 0), H5 + "normalisation/std holds 0: a standard deviation must be > 0"),
    ("negative std", dataset("normalisation/std", -2), H5 + "normalisation/std holds -2"),
]


def _errors(capsys) -> tuple[list[str], str]:
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if line.startswith(f"{PROG}: error:")], err


@pytest.mark.parametrize("case_id, edit, message", MODELS, ids=[c[0] for c in MODELS])
def test_damaged_model_values(case_id, edit, message, chain, tmp_path, capsys):
    inputs = chain.input_dir(tmp_path / "in")
    with h5py.File(inputs / "crop_lstm.h5", "r+") as f:
        edit(f)
    out = tmp_path / "out"
    code = main(["--input_dir", str(inputs), "--output_dir", str(out), "--mc_dir", str(chain.composites)])
    errors, err = _errors(capsys)
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    assert message in errors[0], errors[0]
    assert not out.exists()


def _float_composites(chain, dst, missing_value, months=(), columns=slice(None)):
    """The chain's composites as float32, ``missing_value`` in ``columns`` of ``months`` (all: every month)."""
    shutil.copytree(chain.composites, dst)
    for path in sorted(dst.glob("*.tif")):
        with rasterio.open(path) as ds:
            profile, data, names, tags = ds.profile, ds.read().astype(np.float32), ds.descriptions, ds.tags()
        if not months or any(m in path.name for m in months):
            data[:, :, columns] = missing_value
        profile.update(dtype="float32", nodata=None)
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(data)
            ds.descriptions = names
            ds.update_tags(**tags)
    return dst


def _crop_map(chain, tmp_path, name, mc):
    out = tmp_path / name
    inputs = chain.input_dir(tmp_path / f"{name}_in", mask=False)
    assert main(["--input_dir", str(inputs), "--output_dir", str(out), "--mc_dir", str(mc),
                 "--majority_size", "1"]) == 0
    with rasterio.open(next(out.glob("*_crop_map_*.tif"))) as ds:
        return ds.read(1), json.loads((out / "run.json").read_text())


def test_nan_in_composites_is_no_observation(chain, tmp_path):
    # NaN in two months reads as the missing observation 0 there
    zeros = _float_composites(chain, tmp_path / "zeros", 0.0, months=("2017-11", "2018-02"), columns=slice(0, 40))
    nans = _float_composites(chain, tmp_path / "nans", np.nan, months=("2017-11", "2018-02"), columns=slice(0, 40))
    np.testing.assert_array_equal(_crop_map(chain, tmp_path, "nans", nans)[0],
                                  _crop_map(chain, tmp_path, "zeros", zeros)[0])
    # NaN in every month of half the columns: those pixels are not observed, NoData in the map
    half = _float_composites(chain, tmp_path / "half", np.nan, columns=slice(0, 40))
    labels, record = _crop_map(chain, tmp_path, "half", half)
    assert (labels[:, :40] == NODATA).all() and (labels[:, 40:] != NODATA).all()
    assert record["outputs"]["metrics"]["no_observation_percent"] == 50.0


@pytest.mark.parametrize("size", ["6400", "100000"])
def test_sieve_size_beyond_the_map_is_refused(size, chain, tmp_path, capsys):
    inputs = chain.input_dir(tmp_path / "in")
    out = tmp_path / "out"
    code = main(["--input_dir", str(inputs), "--output_dir", str(out), "--mc_dir", str(chain.composites),
                 "--min_region_px", size])
    errors, err = _errors(capsys)
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    assert f"invalid value {size} for parameter 'min_region_px': allowed fewer than the map's 6400 pixels" \
        in errors[0], errors[0]
    assert not out.exists()


def test_a_rerun_into_the_input_folder_keeps_the_mask(chain, tmp_path):
    """The crop map a first run wrote into --input_dir beside the mask is not taken for a second
    mask by the rerun (which then refused two GeoTIFFs, or masked every pixel out)."""
    inputs = chain.input_dir(tmp_path / "in")
    args = ["--input_dir", str(inputs), "--output_dir", str(inputs), "--mc_dir", str(chain.composites)]
    assert main(args) == 0
    (first,) = inputs.glob("*_crop_map_*.tif")
    with rasterio.open(first) as ds:
        before = ds.read(1)
    assert main(args) == 0
    with rasterio.open(first) as ds:
        np.testing.assert_array_equal(ds.read(1), before)
    assert (before != NODATA).any()
