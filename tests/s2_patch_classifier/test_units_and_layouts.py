"""One unit for every input: the same reflectance stored as DN, as DN with the offset of baselines
>= 04.00 and its tags, as float reflectance, or as a SAFE product of either baseline reads the same
and gives the same class map; units that fit nothing are refused in one line; model files record
their unit (older ones are still read). reBEN's (BigEarthNet v2) layout: reference maps are
labels, not tiles. A tile smaller than a patch: the message says what would work."""

import json
import zipfile

import numpy as np
import pytest
import rasterio
import torch

from components.common.errors import ServiceError
from components.s2_patch_classifier import modelio, units
from components.s2_patch_classifier.cli import main
from components.s2_patch_classifier.data import find_tiles
from components.s2_patch_classifier.model import Arch, build
from components.s2_patch_classifier.patches import check_size, extract
from tests.fixtures.s2_products import write_s2_product

from .fixtures import SYNTH_BANDS, synthetic_tile


def _rewrite(src, dst, convert, dtype, nodata, scale=1.0, offset=0.0):
    """``src`` (a stack) written to ``dst`` with ``convert(values)`` as ``dtype`` and band tags."""
    with rasterio.open(src) as ds:
        profile, data, names = ds.profile, ds.read(), ds.descriptions
    profile.update(dtype=dtype, nodata=nodata)
    with rasterio.open(dst, "w", **profile) as ds:
        ds.write(convert(data.astype(np.float64)).astype(dtype))
        ds.descriptions = names
        ds.scales = [scale] * ds.count
        ds.offsets = [offset] * ds.count
    return dst


@pytest.fixture(scope="module")
def encodings(tmp_path_factory):
    """One tile's reflectance stored four ways, each in its own folder as ``A.tif``."""
    root = tmp_path_factory.mktemp("units")
    dn = synthetic_tile(root / "dn", "A", size=(96, 128), labels=False)  # uint16 DN, no tags (BigEarthNet v1)
    (root / "n0400").mkdir()
    _rewrite(dn, root / "n0400" / "A.tif", lambda v: np.where(v > 0, v + 1000, 0), "uint16", 0, 1e-4, -0.1)
    (root / "float").mkdir()
    _rewrite(dn, root / "float" / "A.tif", lambda v: np.where(v > 0, v / 10000, np.nan), "float32", None)
    (root / "offset_dn").mkdir()  # DN + 1000 with only an offset tag, in DN (-1000), as some exports write
    _rewrite(dn, root / "offset_dn" / "A.tif", lambda v: np.where(v > 0, v + 1000, 0), "uint16", 0, 1.0, -1000.0)
    (root / "percent").mkdir()
    _rewrite(dn, root / "percent" / "A.tif", lambda v: v / 100, "float32", 0)
    return root


@pytest.mark.parametrize("kind", ["n0400", "float", "offset_dn"])
def test_same_reflectance_reads_the_same_however_stored(encodings, kind):
    (ref,) = find_tiles(encodings / "dn")
    (tile,) = find_tiles(encodings / kind)
    expected, got = ref.read(SYNTH_BANDS), tile.read(SYNTH_BANDS)
    assert np.isfinite(got).sum() == np.isfinite(expected).sum() > 0
    np.testing.assert_allclose(got, expected, atol=0.01, equal_nan=True)


def test_a_unit_that_fits_nothing_is_refused_in_one_line(encodings, tmp_path, capsys):
    (tile,) = find_tiles(encodings / "percent")
    with pytest.raises(ServiceError, match="tile A: float32 values .* are neither reflectance .* nor DN x 10000"):
        tile.read(SYNTH_BANDS)
    synthetic_tile(tmp_path / "labels", "A", size=(96, 128))  # the label beside the percent stack
    (tmp_path / "labels" / "A.tif").unlink()
    (tmp_path / "labels" / "A.tif").write_bytes((encodings / "percent" / "A.tif").read_bytes())
    code = main(["-action", "extract_data", "-i", str(tmp_path / "labels"), "-o", str(tmp_path / "out"),
                 "-patch_size", "64"])
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2 and len(err) == 1 and "neither reflectance" in err[0] and "gdal_edit.py -scale" in err[0]
    assert not (tmp_path / "out").exists()


def test_patches_and_model_record_the_unit(tmp_path, capsys):
    synthetic_tile(tmp_path / "tiles", "A", size=(96, 128))
    ps = extract(find_tiles(tmp_path / "tiles"), tmp_path / "p", SYNTH_BANDS, 64, (1,), False)
    assert ps.index["unit"] == units.UNIT and ps.index["tiles"][0]["read_as"] == "dn"
    arch = Arch(4, 2, "resnet14", 8)
    meta = modelio.base_meta(arch, SYNTH_BANDS, [0, 1], 64, ps.stats, False)
    assert meta["input_unit"] == units.UNIT
    modelio.save_pytorch(tmp_path / "bad.pt", build(arch), {**meta, "input_unit": "percent"})
    with pytest.raises(ServiceError, match="bad.pt: input_unit 'percent' is not a unit this version knows"):
        modelio.load_pytorch(tmp_path / "bad.pt")
    old = {k: v for k, v in meta.items() if k != "input_unit"}  # a file of an earlier version
    modelio.save_pytorch(tmp_path / "old.pt", build(arch), old)
    assert units.of_meta(modelio.load_pytorch(tmp_path / "old.pt")[1]) == (units.UNIT, False)


def _models(folder, image):
    """A small U-Net with random weights whose class map varies over ``image`` (bands, rows, cols
    in reflectance x 10000: the head is centred and scaled on its features there), saved twice:
    ``model.pt`` recording its unit, and ``legacy.pt`` as an earlier version trained on float
    reflectance tiles would have written it (statistics / 10000, no input_unit)."""
    torch.manual_seed(0)
    arch = Arch(len(SYNTH_BANDS), 3, "resnet14", 8)
    model = build(arch)
    stats = {"low": [100] * 4, "high": [3000] * 4, "mean": [800, 900, 800, 1000], "std": [500, 500, 600, 900]}
    model.normalise.set_stats(stats["low"], stats["high"], stats["mean"], stats["std"])
    model.eval()
    seen = {}
    hook = model.head.register_forward_hook(lambda m, i, o: seen.setdefault("f", i[0]))
    with torch.no_grad():
        model(torch.from_numpy(np.nan_to_num(image[:, :64, :64])[None]))
        f = seen["f"]
        weight = torch.randn(3, f.shape[1], 1, 1) / f.std(dim=(0, 2, 3)).view(1, -1, 1, 1)
        model.head.weight.copy_(weight)
        model.head.bias.copy_(-(weight[:, :, 0, 0] @ f.mean(dim=(0, 2, 3))))
    hook.remove()
    meta = modelio.base_meta(arch, SYNTH_BANDS, [0, 1, 2], 64, stats, False)
    current = modelio.save_pytorch(folder / "model.pt", model, meta)
    refl = {k: [v / 10000 for v in vals] for k, vals in stats.items()}
    model.normalise.set_stats(refl["low"], refl["high"], refl["mean"], refl["std"])
    legacy = {k: v for k, v in meta.items() if k != "input_unit"}
    return current, modelio.save_pytorch(folder / "legacy.pt", model, {**legacy, "stats": refl})


def _classes(folder):
    with rasterio.open(folder / "A_classes.tif") as ds:
        return ds.read(1)


def test_same_reflectance_gives_the_same_map(encodings, tmp_path, capsys):
    (tile,) = find_tiles(encodings / "dn")
    model, legacy = _models(tmp_path, tile.read(SYNTH_BANDS))
    maps, logs = {}, {}
    for name, path in (("m", model), ("legacy", legacy)):
        capsys.readouterr()
        for kind in ("dn", "n0400", "float"):
            assert main(["-action", "predict", "-i", str(encodings / kind), "-o", str(tmp_path / f"{name}_{kind}"),
                         "-model_file", str(path), "--engine", "torch", "--device", "cpu"]) == 0
            maps[name, kind] = _classes(tmp_path / f"{name}_{kind}")
        logs[name] = capsys.readouterr().err
    assert min(np.bincount(maps["m", "dn"].ravel(), minlength=3)) > 500  # a map of three classes
    for key, got in maps.items():  # the same map whatever the storage; the legacy model takes reflectance
        assert (got == maps["m", "dn"]).mean() > 0.999, key
    assert "records no input unit" in logs["legacy"] and "records no input unit" not in logs["m"]
    assert "brought to reflectance x 10000" in logs["m"] and "brought to reflectance\n" in logs["legacy"]


def test_safe_products_of_both_baselines_read_as_the_same_reflectance(tmp_path):
    old = write_s2_product(tmp_path / "old", baseline="03.01", bands_10m=("B02", "B03", "B04", "B08"))
    new = write_s2_product(tmp_path / "new", baseline="04.00", bands_10m=("B02", "B03", "B04", "B08"))
    bands = ("B2", "B4", "B8")  # (coarser bands are interpolated across the edge of the footprint)
    a = next(t for t in find_tiles(old) if "B2" in t.bands)
    b = next(t for t in find_tiles(new) if "B2" in t.bands)
    ref = a.read(bands)
    assert np.isfinite(ref).mean() > 0.5 and np.isnan(ref).any()  # DN 0 (outside the footprint) is no data
    kept = ref > 1  # the old baseline clips dark pixels at DN 1, where the new one goes below its offset
    assert kept.mean() > 0.5
    got = b.read(bands)  # the writer rounds each baseline's DN on its own: within 1
    assert (np.isnan(got) == np.isnan(ref)).all() and np.abs(got[kept] - ref[kept]).max() <= 1
    zipped = write_s2_product(tmp_path / "zip", baseline="04.00", bands_10m=("B02", "B03", "B04", "B08"),
                              as_zip=True)
    tiles = [find_tiles(p) for p in (old, new, zipped)]
    assert all(len(t) == 1 for t in tiles)  # one tile per product: no mask, SCL, AOT or QI file as a tile
    c = tiles[2][0]
    assert a.bands[:4] == ("B1", "B2", "B3", "B4") and (a.height, a.width) == (120, 120)
    np.testing.assert_array_equal(c.read(bands), got)
    with rasterio.open(b.band_files["B2"]) as ds:  # the file holds DN + 1000: the product's offset was applied
        raw = ds.read(1).astype(np.float64)
    valid = raw > 0
    np.testing.assert_array_equal(raw[valid] - 1000, b.read(("B2",))[0][valid])
    assert b.unit_kind == "product" and "BOA_ADD_OFFSET -1000" in b.unit_note
    # a folder inside a product: its band files lack the product's offset, refused in one line
    r10m = next(new.rglob("R10m"))
    with pytest.raises(ServiceError, match=f"lies inside the Sentinel-2 product {new.name}: give the product folder"):
        find_tiles(r10m)
    assert zipfile.is_zipfile(zipped)


def _reben(root, codes):
    """reBEN's layout for two patches: BigEarthNet-S2/<product>/<patch>/<patch>_<band>.tif and
    Reference_Maps/<product>/<patch>/<patch>_reference_map.tif (uint16 CORINE codes)."""
    product = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
    patches = []
    for i, rc in enumerate(("26_57", "26_58")):
        pid = f"{product}_{rc}"
        d = root / "BigEarthNet-S2" / product / pid
        synthetic_tile(d, "stack", size=(120, 120), seed=i, labels=False)
        with rasterio.open(d / "stack.tif") as ds:
            profile, data = ds.profile, ds.read()
        profile.update(count=1)
        for band, values in zip(("B02", "B03", "B04", "B08"), data):
            with rasterio.open(d / f"{pid}_{band}.tif", "w", **profile) as out:
                out.write(values, 1)
        (d / "stack.tif").unlink()
        m = root / "Reference_Maps" / product / pid
        m.mkdir(parents=True)
        profile.update(dtype="uint16", nodata=None)
        with rasterio.open(m / f"{pid}_reference_map.tif", "w", **profile) as out:
            out.write(codes.astype(np.uint16), 1)
        patches.append(pid)
    (root / "metadata.parquet").write_bytes(b"PAR1")
    return patches


def test_reben_reference_maps_are_the_labels(tmp_path, capsys):
    codes = np.full((120, 120), 211, np.uint16)  # non-irrigated arable land -> class 3
    codes[:, 60:] = 311  # broad-leaved forest -> 9
    codes[:10] = 999  # unlabelled -> background
    codes[-10:] = 523  # sea and ocean -> 19
    pids = _reben(tmp_path / "reben", codes)
    tiles = find_tiles(tmp_path / "reben")
    assert sorted(t.name for t in tiles) == pids  # no reference map taken for an image
    for t in tiles:
        assert t.label.name == f"{t.name}_reference_map.tif" and t.bands == ("B2", "B3", "B4", "B8")
        labels = t.read_labels()
        assert labels[50, 0] == 3 and labels[50, 100] == 9 and labels[0, 0] == 0 and labels[-1, 0] == 19
    ps = extract(tiles, tmp_path / "p", (), 64, (9, 3), False)
    classes = np.select([codes == 311, codes == 211], [1, 2], 0)  # the selected classes' indexes
    windows = [classes[y:y + 64, x:x + 64] for y in (0, 56) for x in (0, 56)]  # 120 px: two rows, two columns
    expected = 2 * sum(np.bincount(w.ravel(), minlength=3) for w in windows)
    assert ps.index["classes"] == [0, 9, 3] and ps.index["class_pixels"] == expected.tolist()
    # prediction on the same layout: the reference maps are not tiles to classify
    model, _ = _models(tmp_path, tiles[0].read(SYNTH_BANDS))
    assert main(["-action", "predict", "-i", str(tmp_path / "reben"), "-o", str(tmp_path / "pred"),
                 "-model_file", str(model), "--engine", "torch", "--device", "cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "pred").glob("*_classes.tif")) == [f"{p}_classes.tif" for p in pids]
    # a reference map of other codes: one line
    bad = codes.copy()
    bad[0, 0] = 7
    _reben(tmp_path / "bad", bad)
    with pytest.raises(ServiceError, match="reference map .*_reference_map.tif holds 7, not CORINE Land Cover codes"):
        find_tiles(tmp_path / "bad")[0].read_labels()
    capsys.readouterr()


@pytest.mark.parametrize("size, patch, advice", [
    ((60, 60), 64, "give tiles of at least 64x64 px (64 is the smallest --patch_size)"),
    ((120, 120), 256, "give --patch_size 64 or tiles of at least 256x256 px"),
])
def test_a_tile_smaller_than_a_patch_is_told_what_would_work(tmp_path, size, patch, advice):
    synthetic_tile(tmp_path, "A", size=size)
    (tile,) = find_tiles(tmp_path)
    with pytest.raises(ServiceError) as e:
        check_size(tile, patch)
    message = e.value.one_line()
    assert message.endswith(advice)
    assert message.count(f"--patch_size {patch}") == 1  # never advised the value already given


def test_index_of_another_unit_is_refused(tmp_path):
    synthetic_tile(tmp_path / "tiles", "A", size=(96, 128))
    extract(find_tiles(tmp_path / "tiles"), tmp_path / "p", SYNTH_BANDS, 64, (1,), False)
    index = json.loads((tmp_path / "p" / "patches.json").read_text())
    (tmp_path / "p" / "patches.json").write_text(json.dumps({**index, "unit": "DN+1000"}))
    from components.s2_patch_classifier.patches import open_patches

    with pytest.raises(ServiceError, match="'unit': 'DN\\+1000' is not a unit this version knows"):
        open_patches(tmp_path / "p")
