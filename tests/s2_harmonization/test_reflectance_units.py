"""The unit of REFBOA images without a scale tag (``components.common.reflectance``, the rule S2-CD
applies too): uint16 DN x 10000, float32 reflectance 0..1 (with or without NaN no data) and float32
DN give the same composites, even mixed in one series; values that fit no unit (percent) stop the
run in one line, exit status 2, nothing written."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import rasterio

from components.s2_harmonization.cli import main
from components.timesen2crop.legend import season_months
from tests.fixtures.timesen2crop_archive import write_time_series

CORNER = (slice(0, 3), slice(0, 4))


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    root = tmp_path_factory.mktemp("mc_units")
    write_time_series(root / "dn", size=16, seed=8)
    assert main(["--input_dir", str(root / "dn"), "--output_dir", str(root / "dn_out")]) == 0
    return root


def _convert(src, dst, convert, every=1):
    """A copy of the series whose REFBOA images (every ``every``-th) are ``convert``(DN, profile)."""
    shutil.copytree(src, dst)
    for k, tif in enumerate(sorted((dst / "REFBOA").glob("*.tif"))):
        if k % every:
            continue
        with rasterio.open(tif) as ds:
            dn, profile, descriptions = ds.read(), ds.profile, ds.descriptions
        data, nodata = convert(dn)
        with rasterio.open(tif, "w", **(profile | {"dtype": data.dtype.name, "nodata": nodata})) as ds:
            ds.write(data)
            ds.descriptions = descriptions
    return dst


def _reflectance(dn):
    return dn.astype(np.float32) / np.float32(10000), None


def _reflectance_nan(dn):
    r = dn.astype(np.float32) / np.float32(10000)
    r[:, CORNER[0], CORNER[1]] = np.nan
    return r, float("nan")


def _float_dn(dn):
    return dn.astype(np.float32), None


def _percent(dn):
    return dn.astype(np.float32) / np.float32(100), None


def _composites(folder):
    out = []
    for m in season_months(2017):
        with rasterio.open(next(folder.glob(f"*_MC_{m}.tif"))) as ds:
            out.append(ds.read().astype(np.int32))
    return np.stack(out)


@pytest.mark.parametrize("convert, every",
                         [(_reflectance, 1), (_reflectance, 2), (_float_dn, 1), (_reflectance_nan, 1)],
                         ids=["float reflectance", "mixed with uint16", "float DN", "float reflectance, NaN no data"])
def test_every_form_gives_the_same_composites(convert, every, series, tmp_path):
    src = _convert(series / "dn", tmp_path / "in", convert, every)
    assert main(["--input_dir", str(src), "--output_dir", str(tmp_path / "out")]) == 0
    got, want = _composites(tmp_path / "out"), _composites(series / "dn_out")
    if convert is _reflectance_nan:  # no data in every image: no clear sample
        assert (got[:, :, CORNER[0], CORNER[1]] == 0).all()
        got[:, :, CORNER[0], CORNER[1]] = want[:, :, CORNER[0], CORNER[1]]
    assert np.abs(got - want).max() <= 1  # float32 rounding of DN / 10000 * 10000 at a .5 median
    assert (got == want).mean() > 0.99
    assert np.median(got[got > 0]) > 100  # reflectance x 10000, not 1


def test_values_that_fit_no_unit_stop_the_run(series, tmp_path, capsys):
    src = _convert(series / "dn", tmp_path / "in", _percent, every=5)
    out = tmp_path / "out"
    assert main(["--input_dir", str(src), "--output_dir", str(out)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("monthlycomposite: error: REFBOA/"), lines
    assert "float32 values" in lines[0] and "neither reflectance (about -0.5..2) nor DN x 10000" in lines[0]
    assert not out.exists() or not any(out.iterdir())
