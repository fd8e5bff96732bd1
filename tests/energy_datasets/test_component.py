"""The energy-datasets component: signature kept in line with the declared parameters, and a real
local run with kfp.local staging a dataset from the loopback server into an artifact."""

from __future__ import annotations

import json

import pytest

from components.energy_datasets.component import energy_dataset
from components.energy_datasets.params import StageParams

from .conftest import FILES, write_catalogue
from tests.kfp_contract import assert_inputs_match_params


def test_component_inputs_match_declared_params():
    assert_inputs_match_params(energy_dataset, StageParams, {"name"})
    inputs = energy_dataset.component_spec.inputs
    assert inputs["name"].type == "String" and inputs["name"].default is None
    outputs = energy_dataset.component_spec.outputs
    assert {k: v.type for k, v in outputs.items()} == {"dataset": "system.Dataset@0.0.1",
                                                       "report": "system.Markdown@0.0.1"}


def test_component_runs_locally(kfp_local, server, tmp_path):
    catalogue = write_catalogue(tmp_path / "c.yaml", server)
    task = energy_dataset(name="jrc-ppdb-open", catalogue=str(catalogue), workdir=str(tmp_path / "work"))
    folder = task.outputs["dataset"].path
    staged = next(kfp_local.rglob("JRC-PPDB-OPEN.ver1.0.zip"))
    assert staged.read_bytes() == FILES["JRC-PPDB-OPEN.ver1.0.zip"]
    assert str(staged).startswith(folder)
    manifest = json.loads((staged.parent / "manifest.json").read_text())
    assert manifest["files"][0]["verified"] == "sha256"
    report = next(kfp_local.rglob("report")).read_text()
    assert "JRC Open Power Plants Database" in report and "CC-BY-4.0" in report


def test_component_fails_with_the_service_message(kfp_local, tmp_path):
    with pytest.raises(RuntimeError):
        energy_dataset(name="hywind-scotland", workdir=str(tmp_path / "work"))
