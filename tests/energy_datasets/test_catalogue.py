"""The energy datasets catalogue: the four datasets of Table 11 with source, licence, format and
access, the ``list`` command, overriding the catalogue, and the validation of catalogue files."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import yaml

from components.common.errors import ServiceError
from components.energy_datasets.catalogue import BUILTIN, ENV, load_catalogue
from components.energy_datasets.cli import main

from .conftest import write_catalogue


def test_builtin_catalogue_has_the_four_datasets_of_table_11():
    catalogue = load_catalogue()
    assert list(catalogue.datasets) == ["era5", "emodnet-wind-farms", "jrc-ppdb-open", "hywind-scotland"]
    access = {n: d.access for n, d in catalogue.datasets.items()}
    assert access == {"era5": "cds", "emodnet-wind-farms": "http", "jrc-ppdb-open": "http",
                      "hywind-scotland": "portal"}
    for d in catalogue.datasets.values():
        assert d.source and d.licence and d.format and d.title and d.description
        assert urlsplit(d.homepage).scheme == "https"
        for f in d.files:
            assert urlsplit(f.url).scheme == "https"
    assert catalogue.datasets["era5"].cds["dataset"] == "reanalysis-era5-single-levels"
    assert catalogue.datasets["jrc-ppdb-open"].licence == "CC-BY-4.0"
    assert "emodnet:windfarmspoly" in catalogue.datasets["emodnet-wind-farms"].files[0].url


def test_list_command(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name, d in load_catalogue().datasets.items():
        assert f"{name}: {d.title}" in out
        assert f"licence:  {d.licence}" in out and f"source:   {d.source}" in out
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["catalogue"] == str(BUILTIN)
    assert {d["name"]: d["access"] for d in data["datasets"]}["hywind-scotland"] == "portal"


def test_catalogue_override_by_option_and_environment(server, tmp_path, monkeypatch, capsys):
    path = write_catalogue(tmp_path / "local.yaml", server)
    assert main(["list", "--json", "--catalogue", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["catalogue"] == str(path)
    assert data["datasets"][2]["files"][0]["url"].startswith("http://127.0.0.1:")
    monkeypatch.setenv(ENV, str(path))
    assert load_catalogue().source == str(path)
    assert load_catalogue(str(BUILTIN)).source == str(BUILTIN)


def test_usage_and_unknown_sub_command(capsys):
    assert main([]) == 0 and "stage NAME --to DEST" in capsys.readouterr().out
    assert main(["fetch"]) == 2
    assert capsys.readouterr().err.strip() == "energy-datasets: error: unknown sub-command 'fetch' (allowed: list, stage)"


def _builtin() -> dict:
    return yaml.safe_load(BUILTIN.read_text())


def _edit(fn) -> dict:
    data = _builtin()
    fn(data["datasets"])
    return data


BAD = [
    ("not a mapping", "- a\n- b\n", "a mapping 'datasets'"),
    ("bad access", _edit(lambda d: d["era5"].update(access="ftp")), "datasets.era5.access: 'ftp' is not allowed"),
    ("missing licence", _edit(lambda d: d["jrc-ppdb-open"].pop("licence")), "datasets.jrc-ppdb-open.licence: a non-empty text"),
    ("unknown key", _edit(lambda d: d["era5"].update(colour="red")), "unknown key 'colour'"),
    ("bad checksum", _edit(lambda d: d["jrc-ppdb-open"]["files"][0].update(sha256="abc")), "is not a 64-digit hex digest"),
    ("path in file name", _edit(lambda d: d["jrc-ppdb-open"]["files"][0].update(name="../x.zip")), "is not a plain file name"),
    ("not http", _edit(lambda d: d["jrc-ppdb-open"]["files"][0].update(url="ftp://host/x.zip")), "is not an http(s) URL"),
    ("http without files", _edit(lambda d: d["jrc-ppdb-open"].update(files=[])), "an http dataset needs at least one file"),
    ("cds without request", _edit(lambda d: d["era5"]["cds"].pop("request")), "datasets.era5.cds: a mapping with 'dataset'"),
    ("two checksums", _edit(lambda d: d["jrc-ppdb-open"]["files"][0].update(sha256="a" * 64, md5="b" * 32)), "give one checksum"),
]


@pytest.mark.parametrize("case, content, fragment", BAD, ids=[c[0] for c in BAD])
def test_invalid_catalogues(case, content, fragment, tmp_path, capsys):
    path = tmp_path / "catalogue.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    with pytest.raises(ServiceError) as e:
        load_catalogue(str(path))
    assert fragment in e.value.one_line()
    assert main(["list", "--catalogue", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"energy-datasets list: error: catalogue {path}")
