"""``energy-datasets stage`` against a loopback HTTP server and a real S3 server (SeaweedFS):
resume with HTTP ranges, checksums, errors as one line with exit status 2 and nothing half
written, and the ERA5 request file."""

from __future__ import annotations

import datetime as dt
import json
import zipfile

import pytest

from components.energy_datasets.cli import main
from components.energy_datasets.params import StageParams

from .conftest import FILES, sha256, write_catalogue

JRC = "JRC-PPDB-OPEN.ver1.0.zip"


def _stage(*args: str) -> int:
    return main(["stage", *args])


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("energy-datasets stage: error: ")
    return lines[0]


def test_stage_http_dataset_to_a_folder(server, tmp_path, capsys):
    catalogue = write_catalogue(tmp_path / "c.yaml", server)
    dest = tmp_path / "dest"
    assert _stage("jrc-ppdb-open", "--to", str(dest), "--catalogue", str(catalogue)) == 0
    assert f"manifest: {dest / 'jrc-ppdb-open' / 'manifest.json'}" in capsys.readouterr().out
    folder = dest / "jrc-ppdb-open"
    assert sorted(p.name for p in folder.iterdir()) == [JRC, "manifest.json"]
    assert (folder / JRC).read_bytes() == FILES[JRC]
    with zipfile.ZipFile(folder / JRC) as z:
        assert "JRC_OPEN_UNITS.csv" in z.namelist()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["dataset"]["licence"] == "CC-BY-4.0" and manifest["dataset"]["access"] == "http"
    (entry,) = manifest["files"]
    assert entry["sha256"] == sha256(FILES[JRC]) and entry["verified"] == "sha256"
    assert entry["bytes"] == len(FILES[JRC]) and entry["resumed_from_byte"] == 0
    assert not list((tmp_path / "cache").rglob("*.part"))
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]


def test_interrupted_download_resumes_on_the_next_run(server, tmp_path, capsys):
    catalogue = write_catalogue(tmp_path / "c.yaml", server, mode="cut")
    dest = tmp_path / "dest"
    args = ["jrc-ppdb-open", "--to", str(dest), "--catalogue", str(catalogue), "--retries", "0"]
    assert _stage(*args) == 2
    line = _one_error(capsys)
    assert "interrupted after 1 attempt(s)" in line and "run the same command again to resume" in line
    assert not (dest / "jrc-ppdb-open").exists()
    part = tmp_path / "cache" / "jrc-ppdb-open" / f"{JRC}.part"
    half = len(FILES[JRC]) // 2
    assert part.stat().st_size == half
    assert _stage(*args) == 0
    assert server.requests[-1] == (f"/cut/{JRC}", f"bytes={half}-")
    assert (dest / "jrc-ppdb-open" / JRC).read_bytes() == FILES[JRC]
    manifest = json.loads((dest / "jrc-ppdb-open" / "manifest.json").read_text())
    assert manifest["files"][0]["resumed_from_byte"] == half
    assert not part.exists()


def test_resumes_within_one_run(server, tmp_path):
    catalogue = write_catalogue(tmp_path / "c.yaml", server, mode="cut")
    assert _stage("emodnet-wind-farms", "--to", str(tmp_path / "d"), "--catalogue", str(catalogue),
                  "--retries", "2") == 0
    ranged = [r for r in server.requests if r[1]]
    assert len(ranged) == 2 and all(r[1].startswith("bytes=") for r in ranged)
    for name in ("windfarms_polygons.geojson", "windfarms_points.geojson"):
        staged = tmp_path / "d" / "emodnet-wind-farms" / name
        assert staged.read_bytes() == FILES[name]
        assert json.loads(staged.read_text())["type"] == "FeatureCollection"


def test_server_ignoring_ranges_sends_the_whole_file(server, tmp_path):
    catalogue = write_catalogue(tmp_path / "c.yaml", server, mode="norange")
    assert _stage("jrc-ppdb-open", "--to", str(tmp_path / "d"), "--catalogue", str(catalogue),
                  "--retries", "1") == 0
    assert server.requests[-1][1] is not None  # asked for the rest, got the whole file
    assert (tmp_path / "d" / "jrc-ppdb-open" / JRC).read_bytes() == FILES[JRC]


def test_changed_file_on_the_server_is_fetched_afresh(server, tmp_path):
    catalogue = write_catalogue(tmp_path / "c.yaml", server)
    work = tmp_path / "cache" / "jrc-ppdb-open"
    work.mkdir(parents=True)
    (work / f"{JRC}.part").write_bytes(b"an older version of the file")
    (work / f"{JRC}.part.json").write_text(json.dumps({"url": server.url("files", JRC), "etag": '"old"'}))
    assert _stage("jrc-ppdb-open", "--to", str(tmp_path / "d"), "--catalogue", str(catalogue)) == 0
    assert server.requests == [(f"/files/{JRC}", "bytes=28-")]
    assert (tmp_path / "d" / "jrc-ppdb-open" / JRC).read_bytes() == FILES[JRC]


def test_checksum_mismatch_fails_and_removes_the_download(server, tmp_path, capsys):
    catalogue = write_catalogue(tmp_path / "c.yaml", server, overrides={
        "jrc-ppdb-open": {"files": [{"name": JRC, "url": server.url("files", JRC), "sha256": "0" * 64}]}})
    dest = tmp_path / "dest"
    assert _stage("jrc-ppdb-open", "--to", str(dest), "--catalogue", str(catalogue)) == 2
    line = _one_error(capsys)
    assert f"checksum mismatch for {JRC}: expected sha256 {'0' * 64}, got {sha256(FILES[JRC])}" in line
    assert not dest.exists() or not any(dest.rglob("*"))
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_size_mismatch_fails(server, tmp_path, capsys):
    catalogue = write_catalogue(tmp_path / "c.yaml", server, checksums=False, overrides={
        "jrc-ppdb-open": {"files": [{"name": JRC, "url": server.url("files", JRC), "size": 10}]}})
    assert _stage("jrc-ppdb-open", "--to", str(tmp_path / "d"), "--catalogue", str(catalogue)) == 2
    assert f"size mismatch for {JRC}: expected 10 bytes, got {len(FILES[JRC])}" in _one_error(capsys)


def test_without_checksum_the_digest_is_recorded(server, tmp_path):
    catalogue = write_catalogue(tmp_path / "c.yaml", server, checksums=False)
    assert _stage("jrc-ppdb-open", "--to", str(tmp_path / "d"), "--catalogue", str(catalogue)) == 0
    entry = json.loads((tmp_path / "d" / "jrc-ppdb-open" / "manifest.json").read_text())["files"][0]
    assert entry["verified"] is None and entry["sha256"] == sha256(FILES[JRC])


def test_http_errors(server, tmp_path, capsys):
    catalogue = write_catalogue(tmp_path / "c.yaml", server, overrides={
        "jrc-ppdb-open": {"files": [{"name": JRC, "url": server.url("files", "absent.zip")}]}})
    assert _stage("jrc-ppdb-open", "--to", str(tmp_path / "d"), "--catalogue", str(catalogue)) == 2
    assert "HTTP 404 Not Found for http://127.0.0.1:" in _one_error(capsys)
    flaky = write_catalogue(tmp_path / "f.yaml", server, mode="flaky")
    assert _stage("jrc-ppdb-open", "--to", str(tmp_path / "d"), "--catalogue", str(flaky), "--retries", "0") == 2
    assert "HTTP 503" in _one_error(capsys)
    server.reset()
    assert _stage("jrc-ppdb-open", "--to", str(tmp_path / "d"), "--catalogue", str(flaky), "--retries", "1") == 0
    assert (tmp_path / "d" / "jrc-ppdb-open" / JRC).read_bytes() == FILES[JRC]


def test_unreachable_server(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    class Nowhere:  # every URL on that closed port
        def url(self, mode, name):
            return f"http://127.0.0.1:{port}/{mode}/{name}"

    catalogue = write_catalogue(tmp_path / "c.yaml", Nowhere())
    assert _stage("jrc-ppdb-open", "--to", str(tmp_path / "d"), "--catalogue", str(catalogue),
                  "--retries", "0", "--timeout_s", "2") == 2
    assert "interrupted after 1 attempt(s) at 0 bytes" in _one_error(capsys)


def test_already_staged_files_are_not_downloaded_again(server, tmp_path):
    catalogue = write_catalogue(tmp_path / "c.yaml", server)
    args = ["jrc-ppdb-open", "--to", str(tmp_path / "d"), "--catalogue", str(catalogue)]
    assert _stage(*args) == 0
    server.reset()
    assert _stage(*args) == 0
    assert server.requests == []
    manifest = json.loads((tmp_path / "d" / "jrc-ppdb-open" / "manifest.json").read_text())
    assert manifest["files"][0]["already_staged"] is True


@pytest.mark.s3
def test_stage_to_object_storage(server, s3_server, tmp_path, monkeypatch, capsys):
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    catalogue = write_catalogue(tmp_path / "c.yaml", server)
    assert _stage("emodnet-wind-farms", "--to", "s3://energy/staged", "--catalogue", str(catalogue)) == 0
    assert "folder: s3://energy/staged/emodnet-wind-farms" in capsys.readouterr().out
    client = s3_server.client()
    keys = {o.object_name for o in client.list_objects("energy", prefix="staged/", recursive=True)}
    prefix = "staged/emodnet-wind-farms/"
    assert keys == {prefix + "windfarms_polygons.geojson", prefix + "windfarms_points.geojson",
                    prefix + "manifest.json"}
    assert client.get_object("energy", prefix + "windfarms_polygons.geojson").read() == FILES["windfarms_polygons.geojson"]
    manifest = json.loads(client.get_object("energy", prefix + "manifest.json").read())
    assert manifest["dataset"]["licence"] == "CC-BY-4.0"


def test_portal_dataset(server, tmp_path, capsys):
    assert _stage("hywind-scotland", "--to", str(tmp_path / "d")) == 2
    line = _one_error(capsys)
    assert "hywind-scotland is distributed through https://pod.ore.catapult.org.uk/ after registration" in line
    assert not (tmp_path / "d").exists()
    catalogue = write_catalogue(tmp_path / "c.yaml", server)  # a direct URL for it
    assert _stage("hywind-scotland", "--to", str(tmp_path / "d"), "--catalogue", str(catalogue)) == 0
    assert (tmp_path / "d" / "hywind-scotland" / "hywind_scada.csv").read_bytes() == FILES["hywind_scada.csv"]


def test_era5_request_file(tmp_path, capsys):
    aoi = "POLYGON((-2.1 57.3,-1.2 57.3,-1.2 57.6,-2.1 57.6,-2.1 57.3))"  # off Peterhead: Hywind Scotland
    assert _stage("era5", "--to", str(tmp_path / "d"), "--start", "2020-01-30", "--end", "2020-03-02",
                  "--AoI", aoi, "--variables", "100m_u_component_of_wind,100m_v_component_of_wind",
                  "--data_format", "grib") == 0
    folder = tmp_path / "d" / "era5"
    assert sorted(p.name for p in folder.iterdir()) == ["cds_request.json", "manifest.json", "retrieve_era5.py"]
    spec = json.loads((folder / "cds_request.json").read_text())
    assert spec["dataset"] == "reanalysis-era5-single-levels"
    assert spec["area_nwse"] == [57.75, -2.25, 57.25, -1.0]
    assert [r["target"] for r in spec["requests"]] == ["era5_202001.grib", "era5_202002.grib", "era5_202003.grib"]
    days = [r["request"]["day"] for r in spec["requests"]]
    assert days[0] == ["30", "31"] and len(days[1]) == 29 and days[2] == ["01", "02"]
    first = spec["requests"][0]["request"]
    assert first["variable"] == ["100m_u_component_of_wind", "100m_v_component_of_wind"]
    assert first["year"] == ["2020"] and first["month"] == ["01"] and first["data_format"] == "grib"
    assert first["area"] == [57.75, -2.25, 57.25, -1.0] and len(first["time"]) == 24
    compile(( folder / "retrieve_era5.py").read_text(), "retrieve_era5.py", "exec")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["dataset"]["licence"] == "CC-BY-4.0" and manifest["dataset"]["access"] == "cds"


def test_era5_default_period_is_the_previous_month(tmp_path):
    assert _stage("era5", "--to", str(tmp_path / "d")) == 0
    spec = json.loads((tmp_path / "d" / "era5" / "cds_request.json").read_text())
    start, end = (dt.date.fromisoformat(d) for d in spec["period"])
    today = dt.datetime.now(dt.timezone.utc).date()
    assert start.day == 1 and (end + dt.timedelta(days=1)).day == 1 and end < today.replace(day=1)
    assert len(spec["requests"]) == 1 and "area" not in spec["requests"][0]["request"]


BAD = [
    ("unknown dataset", ["wind", "--to", "{d}"],
     "invalid value 'wind' for parameter 'name': allowed one of era5, emodnet-wind-farms, jrc-ppdb-open, hywind-scotland"),
    ("bad date", ["era5", "--to", "{d}", "--start", "2020-13-01"], "parameter 'start': allowed a date YYYY-MM-DD"),
    ("end before start", ["era5", "--to", "{d}", "--start", "2020-02-01", "--end", "2020-01-01"],
     "parameter 'end': allowed a date on or after start 2020-02-01"),
    ("before ERA5", ["era5", "--to", "{d}", "--start", "1939-12-31", "--end", "1940-01-31"],
     "allowed a date from 1940-01-01"),
    ("future", ["era5", "--to", "{d}", "--start", "2020-01-01", "--end", "2999-01-01"], "a date before today"),
    ("bad variable", ["era5", "--to", "{d}", "--variables", "Wind Speed"], "parameter 'variables'"),
    ("bad AoI", ["era5", "--to", "{d}", "--AoI", "POLYGON((1 2,"], "AoI is neither a readable vector file nor valid WKT"),
    ("ERA5 options for a file dataset", ["jrc-ppdb-open", "--to", "{d}", "--start", "2020-01-01"],
     "start, end, aoi and variables apply to ERA5 (access cds) only"),
    ("bad format", ["era5", "--to", "{d}", "--data_format", "zarr"], "parameter 'data_format': allowed one of netcdf, grib"),
    ("negative retries", ["era5", "--to", "{d}", "--retries", "-1"], "parameter 'retries'"),
    ("destination under a file", ["era5", "--to", "{file}/d"], "a_file"),
    ("missing catalogue", ["era5", "--to", "{d}", "--catalogue", "{d}/none.yaml"], "none.yaml does not exist"),
]


@pytest.mark.parametrize("case, args, fragment", BAD, ids=[c[0] for c in BAD])
def test_bad_stage_inputs(case, args, fragment, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    dest = tmp_path / "dest"
    args = [a.format(d=dest, file=tmp_path / "a_file") for a in args]
    assert _stage(*args) == 2
    assert fragment in _one_error(capsys)
    assert not dest.exists() or not any(dest.rglob("*"))


def test_stage_help_lists_every_parameter(capsys):
    with pytest.raises(SystemExit) as e:
        _stage("--help")
    assert e.value.code == 0
    text = capsys.readouterr().out
    for spec in StageParams.specs():
        assert f"--{spec.name}" in text
        for flag in spec.flags:
            assert flag in text
    assert "--to" in text and "name" in text
    with pytest.raises(SystemExit):
        main(["list", "--help"])
    assert "--catalogue" in capsys.readouterr().out
