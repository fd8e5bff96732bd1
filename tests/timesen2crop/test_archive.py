"""timesen2crop on small archives in the TimeSen2Crop layout: every layout variant reads the same,
monthly medians agree with a plain re-computation from the CSV text, masking/dropping/keeping of
non-clear observations, class and tile selection, tile-out splits and unreadable files."""

from __future__ import annotations

import csv
import datetime as dt
import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from components.timesen2crop.archive import Archive, parse_dates
from components.timesen2crop.cli import main
from components.timesen2crop.legend import BANDS, season_months
from components.timesen2crop.params import TimeSen2CropParams
from tests.fixtures.timesen2crop_archive import write_archive


def _run(archive, out, *args):
    assert main(["--input_dir", str(archive), "--output_dir", str(out), *args]) == 0
    return np.load(out / "train.npy"), np.load(out / "y_train.npy")


def _csv_rows(path: Path):
    rows = list(csv.reader(path.read_text().splitlines()))
    header = rows[0]
    return header, [[float(v) for v in r] for r in rows[1:]]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return write_archive(tmp_path_factory.mktemp("ts2c") / "arch", tiles=("33UVP", "33UWP", "33TVN"),
                         classes=(2, 9, 12), per_class=6, seed=3)


def test_seed_defaults():
    p = TimeSen2CropParams()
    assert (p.temporal, p.season_start, p.usable_conditions, p.non_clear) == ("monthly", 2017, ("0",), "mask")
    assert (p.tiles, p.val_tiles, p.test_tiles, p.classes, p.bad_files) == ((), (), (), (), "error")


def test_monthly_medians_match_the_csv_text(archive, tmp_path):
    x, y = _run(archive, tmp_path / "out", "--tiles", "33UWP")
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.shape == (18, 12, len(BANDS)) and list(y) == [2] * 6 + [9] * 6 + [12] * 6
    tile = archive / "33UWP"
    rows = csv.reader((tile / "dates.csv").read_text().splitlines()[1:])
    dates = [dt.datetime.strptime(r[0], "%Y%m%d").date() for r in rows]
    months = season_months(2017)
    for k, path in enumerate(sorted((tile / "9").glob("*.csv"), key=lambda p: int(p.stem))):
        header, rows = _csv_rows(path)
        assert header == [*BANDS, "Label"]
        for m, month in enumerate(months):
            clear = [r for d, r in zip(dates, rows) if f"{d:%Y-%m}" == month and r[-1] == 0]
            for b in range(len(BANDS)):
                expected = statistics.median(r[b] for r in clear) if clear else 0.0
                assert x[6 + k, m, b] == pytest.approx(expected), (path.name, month, BANDS[b])
    meta = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert meta["timesteps"] == months and meta["bands"] == list(BANDS)
    assert meta["splits"]["train"]["per_class"] == {"2": 6, "9": 6, "12": 6}


@pytest.mark.parametrize("variant", [
    dict(header="none"),
    dict(header="padded", index_column=True, crlf=True),
    dict(class_folders="names", top_folder="TimeSen2Crop"),
    dict(as_zip=True, top_folder="TimeSen2Crop"),
], ids=["no header", "B02 names, index column, CRLF", "class-name folders", "zip"])
def test_layout_variants_read_the_same(variant, tmp_path):
    ref = write_archive(tmp_path / "ref", tiles=("33UVP",), per_class=3, seed=5)
    other = write_archive(tmp_path / "other", tiles=("33UVP",), per_class=3, seed=5, **variant)
    for temporal in ("monthly", "acquisitions"):
        a = _run(ref, tmp_path / f"a_{temporal}", "--temporal", temporal)
        b = _run(other, tmp_path / f"b_{temporal}", "--temporal", temporal)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_acquisitions_mask_keep_and_drop(archive, tmp_path):
    tile = archive / "33UVP"
    n_dates = len(parse_dates((tile / "dates.csv").read_bytes(), "dates.csv"))
    files = sorted((tile / "2").glob("*.csv"), key=lambda p: int(p.stem))
    raw = np.array([_csv_rows(f)[1] for f in files], np.float32)  # [6, dates, 10]
    masked, _ = _run(archive, tmp_path / "mask", "--tiles", "33UVP", "--classes", "2", "--temporal", "acquisitions")
    assert masked.shape == (6, n_dates, 9)
    clear = raw[..., -1] == 0
    np.testing.assert_array_equal(masked, np.where(clear[..., None], raw[..., :9], 0))
    kept, _ = _run(archive, tmp_path / "keep", "--tiles", "33UVP", "--classes", "2", "--temporal", "acquisitions",
                   "--non_clear", "keep")
    np.testing.assert_array_equal(kept, raw[..., :9])
    snow_ok, _ = _run(archive, tmp_path / "snow", "--tiles", "33UVP", "--classes", "2", "--temporal",
                      "acquisitions", "--usable_conditions", "0,3")
    np.testing.assert_array_equal(snow_ok, np.where(np.isin(raw[..., -1], (0, 3))[..., None], raw[..., :9], 0))
    # every sample has cloudy dates: dropping incomplete samples leaves none, which is an error
    code = main(["--input_dir", str(archive), "--output_dir", str(tmp_path / "drop"), "--tiles", "33UVP",
                 "--temporal", "acquisitions", "--non_clear", "drop"])
    assert code == 2 and not (tmp_path / "drop").exists()


def test_drop_removes_samples_with_an_empty_month(tmp_path):
    arch = write_archive(tmp_path / "a", tiles=("33UVP",), classes=(1, 2), per_class=12, step_days=10, seed=8)
    masked, ym = _run(arch, tmp_path / "m")
    dropped, yd = _run(arch, tmp_path / "d", "--non_clear", "drop")
    complete = (masked != 0).any(axis=2).all(axis=1)
    assert 0 < len(yd) == complete.sum() < len(ym)
    np.testing.assert_array_equal(dropped, masked[complete])
    stats = json.loads((tmp_path / "d" / "dataset.json").read_text())["splits"]["train"]["tiles"]["33UVP"]
    assert stats["dropped_incomplete"] == len(ym) - len(yd)


def test_tile_out_splits(archive, tmp_path):
    out = tmp_path / "out"
    x, y = _run(archive, out, "--val_tiles", "33tvn", "--test_tiles", "33UVP")
    assert len(y) == 18  # 33UWP only
    xv, yv = np.load(out / "val" / "val.npy"), np.load(out / "val" / "y_val.npy")
    xt, yt = np.load(out / "test" / "test.npy"), np.load(out / "test" / "y_test.npy")
    assert xv.shape == xt.shape == (18, 12, 9) and len(yv) == len(yt) == 18
    ref, _ = _run(archive, tmp_path / "tvn", "--tiles", "33TVN")
    np.testing.assert_array_equal(xv, ref)
    meta = json.loads((out / "dataset.json").read_text())
    assert {s: list(v["tiles"]) for s, v in meta["splits"].items()} == {
        "train": ["33UWP"], "val": ["33TVN"], "test": ["33UVP"]}
    record = json.loads((out / "run.json").read_text())
    assert record["service"] == "timesen2crop" and record["params"]["val_tiles"] == ["33TVN"]


def test_unreadable_sample_error_or_skip(tmp_path):
    arch = write_archive(tmp_path / "a", tiles=("33UVP",), classes=(2,), per_class=4, seed=1)
    bad = sorted((arch / "33UVP" / "2").glob("*.csv"))[1]
    lines = bad.read_text().splitlines()
    bad.write_text("\n".join(lines[:-3]) + "\n")  # truncated
    code = main(["--input_dir", str(arch), "--output_dir", str(tmp_path / "o")])
    assert code == 2 and not (tmp_path / "o").exists()
    x, y = _run(arch, tmp_path / "s", "--bad_files", "skip")
    assert len(y) == 3
    skipped = json.loads((tmp_path / "s" / "run.json").read_text())["outputs"]["metrics"]["skipped_files"]
    assert skipped == 1


def test_archive_index_and_parallel_reading(archive, tmp_path, monkeypatch):
    a = Archive(archive)
    assert list(a.tiles) == ["33TVN", "33UVP", "33UWP"]
    assert {c: len(f) for c, f in a.tiles["33UVP"].files.items()} == {2: 6, 9: 6, 12: 6}
    serial = _run(archive, tmp_path / "serial", "--workers", "1")
    import components.timesen2crop.dataset as ds

    monkeypatch.setattr(ds, "PARALLEL_FROM", 1)
    monkeypatch.setattr(ds, "CHUNK_FILES", 5)
    parallel = _run(archive, tmp_path / "parallel", "--workers", "2")
    np.testing.assert_array_equal(serial[0], parallel[0])
    np.testing.assert_array_equal(serial[1], parallel[1])


@pytest.mark.parametrize("as_zip", [False, True])
def test_a_tile_folder_without_its_dates_is_refused_not_dropped(tmp_path, as_zip):
    from components.common.errors import ServiceError
    from components.timesen2crop.archive import Archive

    root = write_archive(tmp_path / "a", tiles=("33UVP", "33UWP"), classes=(2,), per_class=3, seed=1)
    (root / "33UWP" / "dates.csv").unlink()
    if as_zip:
        import shutil
        root = Path(shutil.make_archive(str(tmp_path / "zipped"), "zip", root))
    with pytest.raises(ServiceError, match=f"^tile folder 33UWP in {root.name} holds crop-type folders of samples "
                                           "but no dates.csv"):
        Archive(root)


def test_unsorted_dates_reorder_the_sample_rows_alike(tmp_path):
    """dates.csv out of time order, each sample's rows in the same order: the same arrays, time steps sorted."""
    ref = write_archive(tmp_path / "ref", tiles=("33UVP",), classes=(2, 9), per_class=3, seed=5)
    other = write_archive(tmp_path / "other", tiles=("33UVP",), classes=(2, 9), per_class=3, seed=5)
    n = len((other / "33UVP" / "dates.csv").read_text().splitlines()) - 1
    perm = np.random.default_rng(0).permutation(n)
    for f in [other / "33UVP" / "dates.csv", *(other / "33UVP").glob("*/*.csv")]:
        lines = f.read_text().splitlines()
        f.write_text("\n".join([lines[0], *(lines[1 + k] for k in perm)]) + "\n")
    for temporal in ("monthly", "acquisitions"):
        a = _run(ref, tmp_path / f"a_{temporal}", "--temporal", temporal)
        b = _run(other, tmp_path / f"b_{temporal}", "--temporal", temporal)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        steps = [json.loads((tmp_path / f"{k}_{temporal}" / "dataset.json").read_text())["timesteps"] for k in "ab"]
        assert steps[0] == steps[1] == sorted(steps[1])
