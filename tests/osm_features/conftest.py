"""Fixtures of the osm-features tests: the real OSM extracts of ../shared/data (skipped when
absent) and one full extraction of Liechtenstein through the command line, shared by the
tests that read its product."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.osm_features.cli import main
from tests.conftest import sample

LIECHTENSTEIN = "osm-pbf/liechtenstein-2013-08-03.osm.pbf"
HELSINKI = "osm-pbf/test.osm.pbf"
# Central Vaduz / Schaan: a part of the extract with features of many classes.
VADUZ_WKT = "POLYGON((9.50 47.12,9.56 47.12,9.56 47.20,9.50 47.20,9.50 47.12))"


@pytest.fixture(scope="session")
def liechtenstein() -> Path:
    return sample(LIECHTENSTEIN)


@pytest.fixture(scope="session")
def helsinki() -> Path:
    return sample(HELSINKI)


class Run:
    """The products of one command-line run, read back."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.record = json.loads((folder / "run.json").read_text())
        self.product = folder / self.record["outputs"]["product"]
        self.stac = json.loads((folder / self.record["outputs"]["stac"]).read_text())
        self.quicklook = folder / self.record["outputs"]["quicklook"]
        self.classes = self.record["outputs"]["classes"]

    def geojson(self) -> dict:
        return json.loads(self.product.read_text())


def run_cli(pbf: Path, outdir: Path, *extra: str) -> Run:
    code = main(["--input", str(pbf), "--output", str(outdir), *extra])
    assert code == 0
    return Run(outdir)


@pytest.fixture(scope="session")
def liechtenstein_all(liechtenstein, tmp_path_factory) -> Run:
    """Every class of the built-in dictionary over the whole Liechtenstein extract."""
    return run_cli(liechtenstein, tmp_path_factory.mktemp("lie_all") / "out", "--features", "all")


@pytest.fixture(scope="session")
def liechtenstein_vaduz(liechtenstein, tmp_path_factory) -> Run:
    """Every class within the Vaduz AoI (pre-filtered while streaming)."""
    return run_cli(liechtenstein, tmp_path_factory.mktemp("lie_vaduz") / "out", "--features", "all",
                   "--AoI", VADUZ_WKT)
