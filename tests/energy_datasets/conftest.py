"""Fixtures of the energy-datasets tests: a loopback file server holding files in the datasets'
real formats (a GeoJSON FeatureCollection of wind farms, a ZIP of CSV tables), and catalogues
that are the built-in one with its URLs pointed at that server."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import zipfile
from pathlib import Path

import pytest
import yaml

from components.energy_datasets.catalogue import BUILTIN

from .http_server import FileServer


def _wind_farms(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    features = []
    for i in range(n):
        x, y = rng.uniform(-5, 10), rng.uniform(50, 58)
        ring = [[x, y], [x + 0.05, y], [x + 0.05, y + 0.04], [x, y + 0.04], [x, y]]
        features.append({"type": "Feature", "id": f"windfarmspoly.{i}",
                         "geometry": {"type": "Polygon", "coordinates": [ring]},
                         "properties": {"name": f"Farm {i}", "status": rng.choice(["Production", "Planned"]),
                                        "power_mw": round(rng.uniform(10, 1000), 1),
                                        "n_turbines": rng.randint(5, 150)}})
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def _power_plants(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    table = io.StringIO()
    w = csv.writer(table)
    w.writerow(["eic_p", "eic_g", "name_p", "type_g", "capacity_g", "lat", "lon", "year_commissioned"])
    for i in range(n):
        w.writerow([f"P{i:06d}", f"G{i:06d}", f"Plant {i}", rng.choice(["Fossil Gas", "Nuclear", "Hydro"]),
                    round(rng.uniform(5, 1500), 1), round(rng.uniform(36, 70), 5), round(rng.uniform(-9, 30), 5),
                    rng.randint(1950, 2019)])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("JRC_OPEN_UNITS.csv", table.getvalue())
        z.writestr("JRC_OPEN_LINKAGES.csv", "eic_p,eic_g\n" + "".join(f"P{i:06d},G{i:06d}\n" for i in range(n)))
    return buf.getvalue()


FILES = {
    "windfarms_polygons.geojson": _wind_farms(3000, 1),
    "windfarms_points.geojson": _wind_farms(200, 2),
    "JRC-PPDB-OPEN.ver1.0.zip": _power_plants(15000, 3),
    "hywind_scada.csv": b"timestamp,turbine,power_kw\n" + b"".join(
        f"2019-01-01T00:{m:02d}:00Z,HS{t},{(m * 37 + t * 11) % 6000}\n".encode() for m in range(60) for t in range(1, 6)),
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def file_server():
    with FileServer(FILES) as server:
        yield server


@pytest.fixture
def server(file_server):
    file_server.reset()
    return file_server


def write_catalogue(path: Path, server: FileServer, mode: str = "files", checksums: bool = True,
                    overrides: dict | None = None) -> Path:
    """The built-in catalogue with every file URL on the loopback server (``mode`` picks its
    behaviour) and the SHA-256 of what the server holds; Hywind gets a direct file too."""
    data = yaml.safe_load(BUILTIN.read_text())
    data["datasets"]["hywind-scotland"]["files"] = [{"name": "hywind_scada.csv"}]
    for name, dataset in data["datasets"].items():
        for f in dataset.get("files") or []:
            f["url"] = server.url(mode, f["name"])
            if checksums:
                f["sha256"] = sha256(FILES[f["name"]])
        dataset.update((overrides or {}).get(name, {}))
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """No catalogue override from the developer's shell; partial downloads under tmp_path."""
    monkeypatch.delenv("ENERGY_DATASETS_CATALOGUE", raising=False)
    monkeypatch.setenv("ENERGY_DATASETS_CACHE", str(tmp_path / "cache"))
    for var in ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
