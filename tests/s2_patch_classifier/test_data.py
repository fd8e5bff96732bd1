"""Tiles, labels and patches: discovery of the layouts, COCO decoding, lenient reading of damaged
TIFFs, the simplified IGBP scheme and patch extraction."""

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from components.common.errors import ServiceError
from components.s2_patch_classifier import coco
from components.s2_patch_classifier.data import IGBP_SIMPLIFIED, IGNORE, class_lut, find_tiles
from components.s2_patch_classifier.patches import extract, open_patches, positions, side_by_side

from .fixtures import port_crop, rle_counts, synthetic_tile


def _band_file(path, data, dtype="uint16", **extra):
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=dtype,
                   crs="EPSG:32633", transform=from_origin(300000, 5000000, 10, 10), **extra)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data.astype(dtype), 1)


def test_discovers_stacks_band_files_and_coco(tmp_path):
    synthetic_tile(tmp_path / "stacks", "A", seed=1)
    synthetic_tile(tmp_path / "stacks", "B", seed=2)
    per_band = tmp_path / "per_band"
    per_band.mkdir()
    for band in ("B02", "B03", "B8A"):
        _band_file(per_band / f"S2B_T33TUM_20230102_{band}_10m.tif", np.full((80, 70), 100))
    _band_file(per_band / "S2B_T33TUM_20230102_B11_20m.tif", np.full((40, 35), 300))
    mask = np.zeros((80, 70), bool)
    mask[10:14, 20:30] = True
    (per_band / "S2B_T33TUM_20230102.json").write_text(json.dumps(
        {"annotations": [{"id": 1, "category_id": 3, "segmentation": {"size": [80, 70], "counts": rle_counts(mask)}}]}))
    tiles = {t.name: t for t in find_tiles(tmp_path)}
    assert set(tiles) == {"A", "B", "per_band"}
    assert tiles["A"].bands == ("B2", "B3", "B4", "B8") and tiles["A"].label.name == "A_label.tif"
    pb = tiles["per_band"]
    assert pb.bands == ("B2", "B3", "B8A", "B11") and (pb.height, pb.width) == (80, 70)
    assert pb.read(("B11",))[0].mean() == pytest.approx(300)  # 20 m band resampled to the 10 m grid
    labels = pb.read_labels()
    assert (labels == 3).sum() == mask.sum() and (labels[mask] == 3).all()


def test_coco_encodings_agree(tmp_path):
    mask = np.zeros((20, 30), bool)
    mask[4:9, 10:16] = True  # a 5 x 6 rectangle
    compressed = _compress(rle_counts(mask))
    poly = [[10, 4, 16, 4, 16, 9, 10, 9]]  # pixel-corner coordinates of the same rectangle
    for seg in ({"size": [20, 30], "counts": rle_counts(mask)}, {"size": [20, 30], "counts": compressed}, poly):
        path = tmp_path / "c.json"
        path.write_text(json.dumps({"images": [{"id": 1, "width": 30, "height": 20}],
                                    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": seg}]}))
        np.testing.assert_array_equal(coco.rasterise(path, (20, 30)), mask.astype(np.uint8))
    with pytest.raises(ServiceError, match="labels of another size"):
        coco.rasterise(path, (21, 30))


def _compress(counts):
    """The COCO API's rleToString, to check our decoder against its format."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def test_real_port_annotations_rasterise_on_the_tile_grid():
    from tests.conftest import sample

    tiles = {t.name: t for t in find_tiles(sample("s2-ships-sen2ships"))}
    assert len(tiles) == 7
    busan = tiles["busan"]
    assert busan.bands == ("B2", "B3", "B4", "B8", "B11")
    labels = busan.read_labels()
    assert labels.shape == (busan.height, busan.width)
    assert set(np.unique(labels)) == {0, 1}
    instances = busan.read_instances()
    assert instances.max() == 54 and len(np.unique(instances)) == 55  # 54 annotated ships, all on the grid
    assert ((instances > 0) == (labels == 1)).all()


def test_linked_port_folders_are_found_once(tmp_path):
    from tests.conftest import sample

    ports = sample("s2-ships-sen2ships")
    for name in ("casablanca", "honolulu"):  # a training set assembled from links to the scenes
        (tmp_path / name).symlink_to(ports / name, target_is_directory=True)
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "again").symlink_to(tmp_path, target_is_directory=True)  # a loop back up
    (tmp_path / "more" / "casa").symlink_to(ports / "casablanca", target_is_directory=True)  # reached twice
    tiles = find_tiles(tmp_path)
    assert sorted(t.name for t in tiles) == ["casablanca", "honolulu"]
    assert all(t.folder.parent == tmp_path for t in tiles)
    assert tiles[0].read_instances().max() == 15  # its labels came with it


def test_damaged_strip_is_read_as_no_data(tmp_path):
    data = np.arange(64 * 40, dtype=np.uint16).reshape(64, 40)
    path = tmp_path / "S2_B04_(Raw).tiff"
    _band_file(path, data, compress="deflate", blockysize=8, endianness="big")
    raw = bytearray(path.read_bytes())
    last = int(_offset(path, 56))
    with rasterio.open(path) as ds:
        size = int(ds.get_tag_item("BLOCK_SIZE_0_7", "TIFF", bidx=1))
    raw[last:last + size] = b"\x00" * size  # the last strip's deflate stream destroyed
    path.write_bytes(bytes(raw))
    (tile,) = find_tiles(path)
    out = tile.read(("B4",))[0]
    assert np.isnan(out[56:]).all() and (out[:56] == data[:56]).all()
    for row in range(0, 48, 8):  # more than a quarter unreadable: a clear error instead
        raw[int(_offset(path, row)):int(_offset(path, row)) + 4] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(raw))
    with pytest.raises(ServiceError, match=r"cannot read S2_B04_\(Raw\).tiff"):
        find_tiles(path)[0].read(("B4",))


def _offset(path, row):
    with rasterio.open(path) as ds:
        return ds.get_tag_item(f"BLOCK_OFFSET_0_{row // 8}", "TIFF", bidx=1)


def test_simplified_scheme_and_class_selection():
    assert IGBP_SIMPLIFIED.tolist() == [0, 1, 1, 1, 1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 6, 8, 9, 10]
    lut = class_lut((7, 10), simplified=True)  # urban, water
    assert lut[13] == 1 and lut[17] == 2 and lut[12] == 0 and lut[0] == 0 and lut[200] == 0
    lut = class_lut((3, 1), simplified=False)
    assert (lut[3], lut[1], lut[2]) == (1, 2, 0)


def test_positions_cover_the_tile():
    assert positions(64, 64, 64) == [0]
    assert positions(100, 64, 64) == [0, 36]
    assert positions(300, 64, 48) == [0, 48, 96, 144, 192, 236]
    assert positions(63, 64, 64) == []


def test_extract_keeps_bands_classes_and_statistics(tmp_path):
    synthetic_tile(tmp_path / "tiles", "A", size=(100, 130))
    tiles = find_tiles(tmp_path / "tiles")
    with rasterio.open(tmp_path / "tiles" / "A.tif", "r+") as ds:  # a no-data corner
        block = ds.read(1)
        block[:10, :10] = 0
        ds.write(block, 1)
        for b in range(2, 5):
            d = ds.read(b)
            d[:10, :10] = 0
            ds.write(d, b)
    ps = extract(tiles, tmp_path / "p", ("B8", "B2"), 64, (2,), False)
    again = open_patches(tmp_path / "p")
    assert again.bands == ("B8", "B2") and len(again) == 6 == len(ps)
    assert again.images.shape == (6, 2, 64, 64) and again.labels.shape == (6, 64, 64)
    assert again.index["classes"] == [0, 2]
    assert set(np.unique(again.labels)) == {0, 1, IGNORE}  # land -> 1, ships -> background, no data ignored
    assert (again.labels[0, :10, :10] == IGNORE).all()
    s = again.stats
    assert s["low"][0] < s["mean"][0] < s["high"][0] and s["std"][0] > 0 and s["mean"][0] > s["mean"][1]


def test_overlapping_patches_are_the_tiles_windows(tmp_path):
    synthetic_tile(tmp_path / "tiles", "A", size=(100, 130))
    (tile,) = find_tiles(tmp_path / "tiles")
    ps = extract([tile], tmp_path / "p", ("B8", "B2"), 64, (2,), False, stride=32)
    rows, cols = [0, 32, 36], [0, 32, 64, 66]
    assert len(ps) == 12 and ps.index["stride"] == 32
    whole = tile.read(("B8", "B2"))
    where = np.load(tmp_path / "p" / "positions.npy")
    assert sorted(map(tuple, where[:, 1:])) == [(y, x) for y in rows for x in cols]
    for img, (_, y, x) in zip(ps.images, where):
        np.testing.assert_array_equal(img, whole[:, y:y + 64, x:x + 64])
    grid = where[side_by_side(ps), 1:]  # the windows a stride of 64 cuts: rows 0, 36; columns 0, 64, 66
    assert sorted(map(tuple, grid)) == [(y, x) for y in (0, 36) for x in (0, 64, 66)]
    assert side_by_side(extract([tile], tmp_path / "q", ("B8",), 64, (2,), False)) is None


def test_real_port_crop_patches(tmp_path):
    port = port_crop(tmp_path)
    (tile,) = find_tiles(port)
    assert tile.coco.name == "casablanca_coco.json" and (tile.height, tile.width) == (128, 160)
    ps = extract([tile], tmp_path / "p", (), 64, (1,), False)
    assert ps.bands == ("B2", "B3", "B4", "B8", "B11") and len(ps) == 6
    assert ps.index["class_pixels"][1] > 50
