"""s2_ard and s2_change, compiled, run in the eo image against SeaweedFS with s3:// inputs."""

from __future__ import annotations

import json

import numpy as np
import rasterio

from tests.e2e.harness import files, run_compiled
from tests.fixtures.s2_products import write_s2_product
from tests.s2_change_detection.pairs import PLANTED, write_pair


def test_s2_ard_in_containers(container_env, upload, tmp_path):
    env = container_env("s2_ard")
    products = [upload(write_s2_product(tmp_path / "a", size_10m=60, as_zip=True), "eo-inputs/e2e/a.zip"),
                upload(write_s2_product(tmp_path / "b", size_10m=60, sensing="20221015T115411", as_zip=True),
                       "eo-inputs/e2e/b.zip")]
    root = run_compiled("s2_ard", {"products": products, "resolution": 20.0, "bands": "B2,B3,B4,B8,B11"},
                        tmp_path / "root", env)
    records = sorted(root.rglob("run.json"))
    assert len(records) == 2, sorted(p.relative_to(root) for p in root.rglob("*"))
    for record in records:
        run = json.loads(record.read_text())
        assert run["inputs"][0]["uri"].startswith("s3://eo-inputs/e2e/")
        with rasterio.open(next(record.parent.glob("*_20m.tif"))) as ds:
            assert (ds.count, ds.res) == (5, (20.0, 20.0))
            data = ds.read(1)
        assert (data == 0).any() and (data > 0).any() and np.isfinite(data).all()


def test_s2_change_in_containers(container_env, upload, tmp_path):
    """The pair of the local test: the first product an unzipped .SAFE (an s3:// prefix), the
    second, with the planted changes and clouds, a .zip."""
    env = container_env("s2_change")
    first, second = write_pair(tmp_path / "pair", as_zip=True)
    product1 = upload(first, f"eo-inputs/e2e/s2_change/{first.name}")
    product2 = upload(second, f"eo-inputs/e2e/s2_change/{second.name}")
    assert product1.endswith(".SAFE/") and product2.endswith(".zip")
    root = run_compiled("s2_change", {"product1": product1, "product2": product2, "projection": "UTM(Auto)",
                                      "numberClasses": 3}, tmp_path / "root", env)
    records = {}
    for path in root.rglob("run.json"):
        records.setdefault(json.loads(path.read_text())["service"], []).append(path)
    assert {k: len(v) for k, v in records.items()} == {"S2-preprocess": 2, "S2-CD": 1}, \
        sorted(p.relative_to(root) for p in root.rglob("*"))
    inputs = [json.loads(p.read_text())["inputs"][0]["uri"] for p in records["S2-preprocess"]]
    assert all(uri.startswith("s3://eo-inputs/e2e/s2_change/") for uri in inputs), inputs
    folder = records["S2-CD"][0].parent
    with rasterio.open(next(folder.glob("S2-CD_*_10m.tif"))) as ds:
        classes = ds.read(1)
    planted = np.any([p.mask(classes.shape) for p in PLANTED], axis=0)
    changed = (classes > 0) & (classes < 255)
    assert changed[planted].sum() >= planted.sum() - 12 and not (changed & ~planted).any()
    html = [p.read_text() for p in files(root, "quicklook")]
    assert any("data:image/png;base64," in text and "S2-CD_" in text for text in html)
    reports = files(root, "report")
    assert reports and "| class |" in reports[0].read_text()
