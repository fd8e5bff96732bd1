"""The osm-features web service, started as its real command (``osm-features serve``) on
127.0.0.1 with a port chosen by the system, and called with a real HTTP client."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time

import httpx
import pytest
import shapely
from shapely.geometry import shape

from components.osm_features.cli import main
from components.osm_features.dictionary import load_dictionary

from .conftest import VADUZ_WKT

MAX_FEATURES = 2000
MAX_AOI_KM2 = 500.0
STARTUP_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def server(liechtenstein):
    """``osm-features serve`` on 127.0.0.1, port 0 (the system's free port, read from its log)."""
    cmd = [sys.executable, "-m", "components.osm_features.cli", "serve", "--input", str(liechtenstein),
           "--host", "127.0.0.1", "--port", "0", "--max_features", str(MAX_FEATURES),
           "--max_aoi_km2", str(MAX_AOI_KM2)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    # read its log in a thread: the wait below stays bounded and a full pipe never blocks it
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)],
                              daemon=True)
    reader.start()
    seen, base = [], None
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while base is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
            if m:
                base = m.group(1)
        assert base, "server did not start:\n" + "".join(seen)
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(100):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=5)
        proc.stdout.close()


def test_feature_types(server, liechtenstein_all):
    r = server.get("/feature-types")
    assert r.status_code == 200
    body = r.json()
    assert body["extract"]["name"] == "liechtenstein-2013-08-03.osm.pbf"
    assert body["extract"]["bounds"] == pytest.approx([9.471078, 47.04774, 9.636217, 47.27128])
    types = {t["name"]: t for t in body["feature_types"]}
    assert list(types) == list(load_dictionary().names)
    # the service's index and the command line count the same features
    assert {k: t["count"] for k, t in types.items()} == {k: v["features"] for k, v in liechtenstein_all.classes.items()}
    assert body["limits"] == {"max_aoi_km2": MAX_AOI_KM2, "max_features": MAX_FEATURES}
    assert types["airport"]["geometry"] == ["point", "polygon"]


def test_features_equal_the_command_line_product(server, liechtenstein_vaduz):
    wanted = "transport,energy,emergency,hospital,school"
    r = server.get("/features", params={"types": wanted, "aoi": VADUZ_WKT})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    body = r.json()
    assert body["type"] == "FeatureCollection"
    classes = set(load_dictionary().expand(wanted.split(",")))
    expected = {f["id"] for f in liechtenstein_vaduz.geojson()["features"] if f["properties"]["class"] in classes}
    assert {f["id"] for f in body["features"]} == expected and expected
    aoi = shapely.from_wkt(VADUZ_WKT)
    assert all(shape(f["geometry"]).intersects(aoi) for f in body["features"])


def test_bbox_and_clip(server):
    r = server.get("/features", params={"types": "roads", "bbox": "9.50,47.12,9.56,47.20", "clip": "true"})
    assert r.status_code == 200
    features = r.json()["features"]
    assert features
    area = shapely.box(9.50, 47.12, 9.56, 47.20).buffer(1e-7)
    assert all(area.contains(shape(f["geometry"])) for f in features)


def test_refuses_a_large_aoi(server):
    r = server.get("/features", params={"types": "airport", "aoi": "POLYGON((9 46.5,10 46.5,10 47.5,9 47.5,9 46.5))"})
    assert r.status_code == 413
    assert "larger than the limit of 500.0 km²" in r.json()["detail"]


def test_refuses_a_large_result(server):
    r = server.get("/features", params={"types": "building", "bbox": "9.47,47.05,9.63,47.27"})
    assert r.status_code == 413
    detail = r.json()["detail"]
    assert re.search(r"the answer would hold \d+ features, more than the limit of 2000", detail), detail


@pytest.mark.parametrize("params, fragment", [
    ({"types": "spaceport", "aoi": VADUZ_WKT}, "invalid value 'spaceport' for parameter 'types': allowed feature classes airport"),
    ({"aoi": VADUZ_WKT}, "types is required"),
    ({"types": "airport"}, "aoi is required"),
    ({"types": "airport", "aoi": "POLYGON((9.5 47.1, 9.6"}, "aoi is not valid WKT"),
    ({"types": "airport", "aoi": "/etc/hostname"}, "aoi must be a WKT POLYGON or MULTIPOLYGON"),
    ({"types": "airport", "aoi": "POLYGON((10 45,10.1 45,10.1 45.1,10 45.1,10 45))"},
     "aoi does not intersect the extract liechtenstein-2013-08-03.osm.pbf"),
    ({"types": "airport", "bbox": "9.6,47.2,9.5"}, "bbox must be minlon,minlat,maxlon,maxlat"),
    ({"types": "airport", "aoi": VADUZ_WKT, "bbox": "9.5,47.1,9.6,47.2"}, "either aoi (WKT) or bbox"),
])
def test_bad_requests(server, params, fragment):
    r = server.get("/features", params=params)
    assert r.status_code == 400
    assert fragment in r.json()["detail"]


def test_map_page(server):
    r = server.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<svg" in page and "fetch(\"features?" in page and "fetch(\"feature-types\")" in page
    # everything inline: no external script, style sheet or font
    assert not re.search(r"<script[^>]+src=|<link\b|@import|url\(", page)


def test_serve_refuses_bad_input_before_listening(tmp_path, capsys):
    text = tmp_path / "notes.osm.pbf"
    text.write_text("not OSM")
    assert main(["serve", "--input", str(text), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("osm-features serve: error: notes.osm.pbf cannot be read as OpenStreetMap data")
    assert main(["serve", "--input", str(text), "--features", "spaceport"]) == 2
    assert "invalid value 'spaceport'" in capsys.readouterr().err
    assert main(["serve", "--input", str(text), "--max_features", "0"]) == 2
    assert "parameter 'max_features'" in capsys.readouterr().err


def test_serve_refuses_a_busy_port(helsinki, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--input", str(helsinki), "--features", "fuel_station", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
