"""Dockerfiles lint clean with hadolint, and every component runs on an image defined here with
the current tag."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import components
from components import __version__
from components.images import REGISTRY

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((REPO / "images").glob("*/Dockerfile"))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=[d.parent.name for d in DOCKERFILES])
def test_dockerfile_lints_clean(dockerfile):
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not exe:
        pytest.skip("hadolint is not installed (make install provides it)")
    proc = subprocess.run([exe, "--failure-threshold", "info", str(dockerfile)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _components():
    from kfp.dsl.python_component import PythonComponent

    for mod in pkgutil.walk_packages(components.__path__, "components."):
        if mod.name.endswith(".component") or ".component_" in mod.name:
            module = importlib.import_module(mod.name)
            for value in vars(module).values():
                if isinstance(value, PythonComponent):
                    yield mod.name, value


def test_every_component_runs_on_an_image_defined_here():
    images = {d.parent.name for d in DOCKERFILES}
    found = list(_components())
    assert found
    for name, comp in found:
        image = comp.component_spec.implementation.container.image
        repo, _, tag = image.rpartition(":")
        assert repo.startswith(REGISTRY + "/"), (name, image)
        assert repo.rsplit("/", 1)[1] in images, (name, image)
        assert tag == __version__, (name, image)


def test_ai4eu_images_build_on_project_images():
    """The AI4EU image's default base is this version's eo image, and every service's base is an
    image defined here."""
    from components.common.ai4eu import SERVICES

    images = {d.parent.name for d in DOCKERFILES}
    text = (REPO / "images" / "ai4eu" / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={REGISTRY}/eo:{__version__}\n" in text
    assert 'CMD ["eo-ai4eu", "serve"]' in text and "/model.proto" in text
    assert {entry.image for entry in SERVICES.values()} <= images - {"ai4eu", "snap"}


def test_lock_pins_public_versions_only():
    """A local version label (``torch==2.13.0+cpu``) exists on no package index: the ml image
    could not install it. The public version resolves to the CUDA build from the index and to
    the CPU build where a machine provides one."""
    pins = [line.split("==", 1) for line in (REPO / "requirements.lock").read_text().splitlines()
            if "==" in line and not line.startswith("#")]
    assert pins and not [f"{name}=={version}" for name, version in pins if "+" in version]
