"""Every pipeline of the collection is registered for `make compile`, its committed YAML is what the
code compiles to now, and every step runs on one of the project's images with nothing installed
at start-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from components import __version__
from components.images import REGISTRY
from pipelines.compile import COMPILED, PIPELINES, compile_all

PIPELINE_DIR = Path(__file__).resolve().parents[2] / "pipelines"
NOT_PIPELINES = {"cluster", "__init__", "cli", "compile", "demo", "gpu", "local_print"}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return {p.stem: p for p in compile_all(tmp_path_factory.mktemp("compiled"))}


def test_every_pipeline_module_is_registered():
    modules = {p.stem for p in PIPELINE_DIR.glob("*.py")} - NOT_PIPELINES
    assert modules == set(PIPELINES), "register new pipelines in pipelines/compile.py"
    assert {p.stem for p in COMPILED.glob("*.yaml")} == set(PIPELINES), "run `make compile`"


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_compiled_yaml_is_in_sync(name, fresh):
    committed = COMPILED / f"{name}.yaml"
    assert list(yaml.safe_load_all(fresh[name].read_text())) == list(yaml.safe_load_all(committed.read_text())), \
        f"{committed.name} is stale: run `make compile`"


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_steps_run_on_project_images(name):
    spec = next(yaml.safe_load_all((COMPILED / f"{name}.yaml").read_text()))
    for executor, body in spec["deploymentSpec"]["executors"].items():
        container = body["container"]
        assert container["image"].startswith(f"{REGISTRY}/") and container["image"].endswith(f":{__version__}"), \
            (executor, container["image"])
        assert "pip install" not in json.dumps(container.get("command", [])), executor
