"""Values energy-datasets must refuse or hide: a timeout too large for the HTTP client, CDS
request fields of the wrong type, a file named like the manifest, and passwords in catalogue
URLs (never printed, never written to the manifest)."""

from __future__ import annotations

import json

import pytest
import yaml

from components.common.errors import InvalidParameter
from components.energy_datasets.catalogue import BUILTIN
from components.energy_datasets.cli import main
from components.energy_datasets.params import StageParams

from .conftest import write_catalogue

JRC = "JRC-PPDB-OPEN.ver1.0.zip"
SECRET = "S3cretPassw0rd"


def _one_error(capsys, prog: str = "energy-datasets stage") -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _era5_catalogue(path, **request_fields):
    data = yaml.safe_load(BUILTIN.read_text())
    data["datasets"]["era5"]["cds"]["request"].update(request_fields)
    path.write_text(yaml.safe_dump(data))
    return path


def _with_password(url: str) -> str:
    return url.replace("http://", f"http://reader:{SECRET}@", 1)


def test_timeout_has_a_maximum_of_a_day(tmp_path, capsys):
    assert StageParams(timeout_s=86400).timeout_s == 86400
    with pytest.raises(InvalidParameter):
        StageParams(timeout_s=86401)
    dest = tmp_path / "d"
    assert main(["stage", "era5", "--to", str(dest), "--timeout_s", "1e300"]) == 2
    assert "invalid value 1e+300 for parameter 'timeout_s': allowed a number > 0 and <= 86400" \
        in _one_error(capsys)
    assert not dest.exists()


@pytest.mark.parametrize("field, value, fragment", [
    ("variable", 5, "datasets.era5.cds.request.variable: 5 is not allowed"),
    ("variable", ["2m_temperature", 7], "datasets.era5.cds.request.variable: ['2m_temperature', 7]"),
    ("variable", [], "datasets.era5.cds.request.variable: [] is not allowed"),
    ("time", {"from": "00:00"}, "datasets.era5.cds.request.time: {'from': '00:00'} is not allowed"),
    ("product_type", True, "datasets.era5.cds.request.product_type: True is not allowed"),
])
def test_cds_request_fields_of_the_wrong_type(field, value, fragment, tmp_path, capsys):
    catalogue = _era5_catalogue(tmp_path / "c.yaml", **{field: value})
    dest = tmp_path / "d"
    assert main(["stage", "era5", "--to", str(dest), "--start", "2020-01-01",
                 "--catalogue", str(catalogue)]) == 2
    line = _one_error(capsys)
    assert line.startswith(f"energy-datasets stage: error: catalogue {catalogue}: ") and fragment in line
    assert not dest.exists()


def test_a_single_cds_variable_is_one_variable(tmp_path):
    """``variable: 2m_temperature`` (a text, as the CDS accepts it) is not split into letters."""
    catalogue = _era5_catalogue(tmp_path / "c.yaml", variable="2m_temperature")
    assert main(["stage", "era5", "--to", str(tmp_path / "d"), "--start", "2020-01-01",
                 "--catalogue", str(catalogue)]) == 0
    spec = json.loads((tmp_path / "d" / "era5" / "cds_request.json").read_text())
    assert spec["requests"][0]["request"]["variable"] == ["2m_temperature"]


@pytest.mark.parametrize("name", ["manifest.json", "Manifest.JSON"])
def test_manifest_json_is_a_reserved_file_name(name, server, tmp_path, capsys):
    catalogue = write_catalogue(tmp_path / "c.yaml", server, checksums=False, overrides={
        "jrc-ppdb-open": {"files": [{"name": name, "url": server.url("files", JRC)}]}})
    dest = tmp_path / "d"
    assert main(["stage", "jrc-ppdb-open", "--to", str(dest), "--catalogue", str(catalogue)]) == 2
    line = _one_error(capsys)
    assert f"datasets.jrc-ppdb-open.files[0].name: '{name}' is reserved for the manifest" in line
    assert not dest.exists()


def test_password_of_an_unreachable_url_is_not_printed(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://reader:{SECRET}@127.0.0.1:{port}/files/{JRC}"
    catalogue = write_catalogue(tmp_path / "c.yaml", _Nowhere(), overrides={
        "jrc-ppdb-open": {"files": [{"name": JRC, "url": url}]}})
    assert main(["stage", "jrc-ppdb-open", "--to", str(tmp_path / "d"), "--catalogue", str(catalogue),
                 "--retries", "0", "--timeout_s", "2"]) == 2
    line = _one_error(capsys)
    assert f"download of http://127.0.0.1:{port}/files/{JRC} interrupted" in line
    assert SECRET not in line


def test_password_of_a_refused_url_is_not_printed(server, tmp_path, capsys):
    catalogue = write_catalogue(tmp_path / "c.yaml", server, overrides={
        "jrc-ppdb-open": {"files": [{"name": JRC, "url": _with_password(server.url("files", "absent.zip"))}]}})
    assert main(["stage", "jrc-ppdb-open", "--to", str(tmp_path / "d"), "--catalogue", str(catalogue)]) == 2
    err = capsys.readouterr().err
    assert "HTTP 404 Not Found for http://127.0.0.1:" in err and SECRET not in err


def test_password_is_kept_out_of_the_manifest_and_the_listing(server, tmp_path, capsys):
    catalogue = write_catalogue(tmp_path / "c.yaml", server, overrides={
        "jrc-ppdb-open": {"files": [{"name": JRC, "url": _with_password(server.url("files", JRC))}]}})
    assert main(["stage", "jrc-ppdb-open", "--to", str(tmp_path / "d"), "--catalogue", str(catalogue)]) == 0
    manifest = (tmp_path / "d" / "jrc-ppdb-open" / "manifest.json").read_text()
    assert SECRET not in manifest and "http://***@127.0.0.1:" in manifest
    assert main(["list", "--catalogue", str(catalogue), "--json"]) == 0
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err


class _Nowhere:
    def url(self, mode, name):
        return f"http://127.0.0.1:1/{mode}/{name}"
