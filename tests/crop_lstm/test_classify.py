"""tile_classifier and the whole chain on synthetic data in the real formats: from the CSV archive
to a crop map that matches the fields' true classes; mask semantics, block independence, engines,
post-processing, the output's format and sidecars, and every bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from components.crop_lstm.classify_cli import main
from components.crop_lstm.params import ClassifyParams
from components.crop_lstm.postprocess import majority, sieve
from components.timesen2crop.legend import COLOURS
from tests.stac_schema import validate_item

torch.set_num_threads(1)
NODATA = 255


def _classify(chain, tmp_path, name, *args, mask=True):
    out = tmp_path / name
    inputs = chain.input_dir(tmp_path / f"{name}_in", mask=mask)
    assert main(["--input_dir", str(inputs), "--output_dir", str(out), "--mc_dir", str(chain.composites), *args]) == 0
    tif = next(out.glob("*_crop_map_*.tif"))
    with rasterio.open(tif) as ds:
        return out, tif, ds.read(1), ds


@pytest.fixture(scope="module")
def crop_map(chain, tmp_path_factory):
    return _classify(chain, tmp_path_factory.mktemp("map"), "map")


def test_seed_parameters(capsys):
    p = ClassifyParams()
    assert (p.majority_size, p.min_region_px, p.engine) == (3, 0, "auto")
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert all(f in text for f in ("--input_dir", "--output_dir", "--mc_dir", "--majority_size", "--min_region_px"))


def test_chain_from_csv_archive_to_crop_map(chain, crop_map):
    out, tif, labels, ds = crop_map
    truth = chain.truth
    fields = truth >= 0
    assert labels.shape == truth.shape and labels.dtype == np.uint8
    assert (labels[~fields] == NODATA).all()  # mask != 0: not classified
    assert (labels[fields] != NODATA).all()
    accuracy = (labels[fields] == truth[fields]).mean()
    assert accuracy > 0.9, accuracy
    assert tif.name == "33UVP_crop_map_2017-09_2018-08.tif"


def test_crop_map_format_and_sidecars(crop_map):
    out, tif, labels, ds = crop_map
    with rasterio.open(tif) as src:
        assert src.nodata == NODATA and src.count == 1
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        cmap = src.colormap(1)
        assert cmap[2] == (*COLOURS[2], 255) and cmap[NODATA][3] == 0
    stem = tif.stem
    item = json.loads((out / f"{stem}.json").read_text())
    validate_item(item)
    classes = item["assets"]["data"]["classification:classes"]
    assert [c.get("title", c["name"]) for c in classes] == ["Grassland", "Maize", "Rapeseed", "Winter Wheat",
                                                           "no_data"]
    assert classes[-1] == {"value": NODATA, "name": "no_data", "nodata": True,
                           "description": "not classified: masked or no observation"}
    assert (out / f"{stem}_quicklook.png").stat().st_size > 0
    record = json.loads((out / "run.json").read_text())
    areas = record["outputs"]["class_areas"]
    assert sum(a["pixels"] for a in areas.values()) == int((labels != NODATA).sum())
    assert record["outputs"]["metrics"]["classified_pixels"] > 0
    import torch

    assert record["software"]["torch"] == torch.__version__


def test_without_mask_every_pixel_is_classified(chain, tmp_path):
    _, _, labels, _ = _classify(chain, tmp_path, "nomask", "--majority_size", "1", mask=False)
    assert (labels != NODATA).all()


def test_blocks_and_engines_do_not_change_the_map(chain, tmp_path, crop_map):
    ref = crop_map[2]
    _, _, small, _ = _classify(chain, tmp_path, "small", "--block_size", "64", "--batch_pixels", "7")
    np.testing.assert_array_equal(small, ref)
    _, _, torch_map, _ = _classify(chain, tmp_path, "torch", "--engine", "torch")
    assert (torch_map == ref).mean() > 0.99  # float round-off may flip a near tie at most


def test_post_processing(chain, tmp_path):
    _, _, raw, _ = _classify(chain, tmp_path, "raw", "--majority_size", "1")
    _, _, smooth, _ = _classify(chain, tmp_path, "smooth", "--majority_size", "5", "--min_region_px", "6",
                                "--block_size", "64")  # 80 x 80 px: four blocks, halos across their edges
    np.testing.assert_array_equal(smooth, sieve(majority(raw, 5, NODATA), 6, 8, NODATA))


def test_majority_filter_and_sieve_units():
    a = np.full((7, 7), 1, np.uint8)
    a[3, 3] = 4
    a[0] = NODATA
    m = majority(a, 3, NODATA)
    assert m[3, 3] == 1 and (m[0] == NODATA).all()
    tie = np.array([[1, 2], [2, 1]], np.uint8)
    np.testing.assert_array_equal(majority(tie, 3, NODATA), tie)  # a label that ties keeps its place
    b = np.full((6, 6), 3, np.uint8)
    b[1:3, 1:3] = 7
    b[5, 5] = NODATA
    s = sieve(b, 5, 4, NODATA)
    assert (s[:5, :5] == 3).all() and s[5, 5] == NODATA
    assert (sieve(b, 4, 4, NODATA)[1:3, 1:3] == 7).all()


@pytest.fixture(scope="module")
def bad(chain, tmp_path_factory):
    root = tmp_path_factory.mktemp("classify_bad")
    cases = {"root": str(root)}

    def inputs(name, mask=True):
        d = chain.input_dir(root / name, mask=mask)
        cases[name] = str(d)
        return d

    inputs("good")
    big = inputs("big_mask")
    mask = next(big.glob("*.tif"))
    with rasterio.open(mask) as ds:
        prof = ds.profile
    prof.update(width=50, height=40)
    with rasterio.open(mask, "w", **prof) as ds:
        ds.write(np.zeros((1, 40, 50), np.uint8))
    moved = inputs("moved_mask")
    mask = next(moved.glob("*.tif"))
    with rasterio.open(mask) as ds:
        prof, data = ds.profile, ds.read()
    prof["transform"] = prof["transform"] @ Affine.translation(100, 0)
    with rasterio.open(mask, "w", **prof) as ds:
        ds.write(data)
    (inputs("no_model") / "crop_lstm.h5").unlink()
    two = inputs("two_models")
    shutil.copy(two / "crop_lstm.h5", two / "other.h5")
    two_masks = inputs("two_masks")
    shutil.copy(next(two_masks.glob("*.tif")), two_masks / "second.tif")
    corrupt = inputs("corrupt")
    (corrupt / "crop_lstm.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    missing = root / "mc_missing"
    shutil.copytree(chain.composites, missing)
    for m in ("2018-02", "2018-03"):
        (missing / f"33UVP_MC_{m}.tif").unlink()
    cases["mc_missing"] = str(missing)
    bands = root / "mc_bands"
    shutil.copytree(chain.composites, bands)
    target = bands / "33UVP_MC_2018-05.tif"
    with rasterio.open(target) as ds:
        prof, data = ds.profile, ds.read([1, 2, 3, 4])
    prof.update(count=4)
    with rasterio.open(target, "w", **prof) as ds:
        ds.write(data)
    cases["mc_bands"] = str(bands)
    late = root / "mc_late"
    shutil.copytree(chain.composites, late)
    (late / "33UVP_MC_2017-09.tif").unlink()
    cases["mc_late"] = str(late)
    return cases


CASES = [
    ("mask of another size", "big_mask", "{mc}", [], "is 50x40 px but the composites are 80x80 px"),
    ("mask on another grid", "moved_mask", "{mc}", [], "has the composites' size but another georeferencing"),
    ("no model", "no_model", "{mc}", [], "no .h5 model in"),
    ("two models", "two_models", "{mc}", [], "several .h5 models"),
    ("two masks", "two_masks", "{mc}", [], "several GeoTIFFs"),
    ("corrupt model", "corrupt", "{mc}", [], "crop_lstm.h5 is not a readable HDF5 model file"),
    ("missing months", "good", "{mc_missing}", [], "missing monthly composite(s) 2018-02, 2018-03 in mc_dir"),
    ("September missing", "good", "{mc_late}", [], "missing monthly composite(s) 2017-09"),
    ("composite with 4 bands", "good", "{mc_bands}", [], "33UVP_MC_2018-05.tif has 4 bands"),
    ("mc_dir absent", "good", "{root}/nowhere", [], "input not found"),
    ("input_dir absent", "{root}/nowhere", "{mc}", [], "input not found"),
    ("even majority window", "good", "{mc}", ["--majority_size", "4"], "parameter 'majority_size': allowed an odd"),
    ("bad connectivity", "good", "{mc}", ["--connectivity", "6"], "parameter 'connectivity': allowed one of 4, 8"),
    ("bad engine", "good", "{mc}", ["--engine", "tensorrt"], "parameter 'engine'"),
]


@pytest.mark.parametrize("case_id, key, mc, extra, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, key, mc, extra, fragment, bad, chain, tmp_path, capsys):
    fmt = dict(bad, mc=str(chain.composites))
    source = key.format(**fmt) if "{" in key else bad[key]
    out = tmp_path / "out"
    code = main(["--input_dir", source, "--output_dir", str(out), "--mc_dir", mc.format(**fmt), *extra])
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("tile_classifier: error: "), lines
    assert fragment in lines[0]
    assert not out.exists()
