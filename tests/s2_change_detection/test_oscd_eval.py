"""bench/oscd_eval.py: the scores (checked by hand on a small confusion table), a synthetic root
in the OSCD layout with a planted change, and the real OSCD cities of the shared data."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from tests.conftest import sample

REPO = Path(__file__).resolve().parents[2]
BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
NATIVE = {"B01": 60, "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}
TARGET_F1 = 0.30  # the target for the pooled F1 with the default parameters


@pytest.fixture(scope="module")
def oscd():
    spec = importlib.util.spec_from_file_location("oscd_eval", REPO / "bench" / "oscd_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scores_by_hand(oscd):
    s = oscd.scores({"tp": 2, "fp": 1, "fn": 1, "tn": 6})
    # P = R = F1 = 2/3; po = 0.8, pe = (3*3 + 7*7) / 100 = 0.58, kappa = 0.22 / 0.42
    assert (s["precision"], s["recall"], s["f1"]) == (0.6667, 0.6667, 0.6667)
    assert s["kappa"] == pytest.approx(0.22 / 0.42, abs=1e-4)
    assert oscd.scores({"tp": 0, "fp": 0, "fn": 3, "tn": 7})["f1"] == 0.0


def _write_city(root: Path, city: str, rng: np.random.Generator) -> np.ndarray:
    """13 uint16 band files per date (coarser bands at their own grid) and a 1/2 label."""
    size = 120
    truth = np.zeros((size, size), bool)
    truth[30:42, 60:75] = True
    base = rng.uniform(500, 3000, size=(size, size))
    for date in (1, 2):
        folder = root / "images" / city / f"imgs_{date}"
        folder.mkdir(parents=True)
        for i, band in enumerate(BANDS):
            f = NATIVE.get(band, 10) // 10
            dn = base * (1 + 0.05 * i) + rng.normal(0, 40, size=base.shape)
            if date == 2:
                dn = 1.05 * dn + 100
                dn[truth] += 1500 * (1 if i % 2 else -0.5)
            dn = dn.reshape(size // f, f, size // f, f).mean(axis=(1, 3))
            with rasterio.open(folder / f"T31UDQ_2017082{date}T105019_{band}.tif", "w", driver="GTiff",
                               width=dn.shape[1], height=dn.shape[0], count=1, dtype="uint16", crs="EPSG:4326",
                               transform=Affine(1e-4 * f, 0, 2.3, 0, -1e-4 * f, 48.8)) as ds:
                ds.write(np.clip(dn, 1, 65535).astype(np.uint16), 1)
    labels = root / "train_labels" / city / "cm"
    labels.mkdir(parents=True)
    with warnings.catch_warnings():  # OSCD labels carry no georeferencing
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(labels / f"{city}-cm.tif", "w", driver="GTiff", width=size, height=size, count=1,
                           dtype="uint8") as ds:
            ds.write((truth + 1).astype(np.uint8), 1)
    return truth


def test_synthetic_oscd_root(oscd, tmp_path, capsys):
    rng = np.random.default_rng(5)
    _write_city(tmp_path, "alpha", rng)
    _write_city(tmp_path, "beta", rng)
    (tmp_path / "images" / "unlabelled" / "imgs_1").mkdir(parents=True)  # no label: not a city
    assert oscd.main([str(tmp_path), "--output", str(tmp_path / "scores.json")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads((tmp_path / "scores.json").read_text())
    assert sorted(result["cities"]) == ["alpha", "beta"]
    for city in result["cities"].values():
        assert city["f1"] > 0.9 and city["changed_percent_truth"] == pytest.approx(100 * 180 / 14400, abs=1e-3)
    pooled = result["pooled"]
    assert pooled["tp"] == sum(c["tp"] for c in result["cities"].values())
    assert result["params"]["levelConfidence"] == 99.99
    assert oscd.main([str(tmp_path), "--cities", "gamma"]) == 2
    assert "no city gamma" in capsys.readouterr().err


def test_shared_oscd_cities(oscd, capsys):
    root = sample("s2-oscd-change-pairs")
    assert oscd.main([str(root)]) == 0
    result = json.loads(capsys.readouterr().out)
    cities = sorted(p.name for p in (root / "images").iterdir()
                    if (root / "train_labels" / p.name / "cm" / f"{p.name}-cm.tif").is_file())
    assert sorted(result["cities"]) == cities
    for name, city in result["cities"].items():
        assert city["tp"] + city["fp"] + city["fn"] + city["tn"] == city["pixels"]
        assert 0 < city["f1"] <= 1, name
    assert result["pooled"]["f1"] >= TARGET_F1, result["pooled"]
