"""s1_ard and s1_change (native engine), compiled, run in the eo image against SeaweedFS with
s3:// inputs: the synthetic products of the local tests, on the real sample geometry (skipped
when the shared sample data is absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from components.images import SNAP_IMAGE
from tests.conftest import sample
from tests.e2e.harness import files, logged_metadata, run_compiled
from tests.fixtures import s1_products


@pytest.fixture(scope="module")
def real_grd():
    return next(sample(s1_products.GRD_SAMPLE).glob("*.SAFE"))


@pytest.fixture(scope="module")
def real_slc():
    return next(sample(s1_products.SLC_SAMPLE).glob("*.SAFE"))


def test_s1_ard_in_containers(container_env, upload, real_grd, tmp_path):
    """Two GRD crops: one an unzipped .SAFE (an s3:// prefix), one a .zip."""
    env = container_env("s1_ard", unused=(SNAP_IMAGE,))
    a = s1_products.write_grd(tmp_path / "a", source=real_grd, pols=("VV",), window=(7900, 21900, 150, 200))
    b = s1_products.write_grd(tmp_path / "b", source=real_grd, pols=("VV",), window=(7900, 21900, 150, 200),
                              shift_days=12, as_zip=True)
    products = [upload(a, f"eo-inputs/e2e/s1_ard/{a.name}"), upload(b, f"eo-inputs/e2e/s1_ard/{b.name}")]
    root = run_compiled("s1_ard", {"products": products, "resolution": 40.0, "calibration": "SigmaDB",
                                   "speckle": "Boxcar"}, tmp_path / "root", env)
    records = sorted(root.rglob("run.json"))
    assert len(records) == 2, sorted(p.relative_to(root) for p in root.rglob("*"))
    for record in records:
        run = json.loads(record.read_text())
        assert run["inputs"][0]["uri"].startswith("s3://eo-inputs/e2e/s1_ard/")
        with rasterio.open(record.parent / run["outputs"]["product"]) as ds:
            assert ds.crs.to_epsg() == 4326 and ds.descriptions == ("SigmaDB_VV",)
            assert ds.res[0] == pytest.approx(40.0 / 111_320, rel=0.05)
            data = ds.read(1, masked=True)
        valid = data.compressed()
        assert valid.size > 1000 and np.isfinite(valid).all()
        # land at -8 dB and the water body at -22 dB of the synthetic scene (Boxcar-filtered)
        assert -11 < np.median(valid) < -5 and valid.min() < -16
    html = [p.read_text() for p in files(root, "quicklook")]
    assert len(html) == 2 and all("data:image/png;base64," in text for text in html)


def test_s1_change_in_containers(container_env, upload, real_slc, tmp_path):
    """An SLC pair 12 days apart with a changed patch: date 1 an unzipped .SAFE, date 2 a .zip."""
    env = container_env("s1_change", unused=(SNAP_IMAGE,))
    a = s1_products.write_slc(tmp_path / "a", source=real_slc, bursts=(4, 1), samples=(9000, 160))
    b = s1_products.write_slc(tmp_path / "b", source=real_slc, bursts=(4, 1), samples=(9000, 160), date=1,
                              shift_days=12, as_zip=True)
    input1, input2 = upload(a, f"eo-inputs/e2e/s1_change/{a.name}"), upload(b, f"eo-inputs/e2e/s1_change/{b.name}")
    root = run_compiled("s1_change", {"input1": input1, "input2": input2, "resolution": 60.0, "speckle": "Boxcar"},
                        tmp_path / "root", env)
    records = list(root.rglob("run.json"))
    assert len(records) == 1, sorted(p.relative_to(root) for p in root.rglob("*"))
    run = json.loads(records[0].read_text())
    products = run["outputs"]["products"]
    assert set(products) == {"coherence", "backscatter_date1", "backscatter_date2", "acd", "mtc", "change"}
    folder = records[0].parent
    with rasterio.open(folder / products["coherence"]) as ds:
        assert ds.crs.to_epsg() == 4326
        coherence = ds.read(1, masked=True).compressed()
    assert coherence.size > 100 and 0 <= coherence.min() and coherence.max() <= 1
    # coherence 0.9 of the synthetic pair, 0.2 in the changed patch
    assert np.median(coherence) > 0.6
    with rasterio.open(folder / products["change"]) as ds:
        change = ds.read(1)
    assert (change == 1).any() and (change == 0).any()
    for name in ("acd", "mtc"):
        with rasterio.open(folder / products[name]) as ds:
            assert ds.count == 3
    assert logged_metadata(root)
