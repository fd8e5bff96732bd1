"""Shared fixtures: the real sample products in ../shared/data (skipped with a reason when that
folder is absent) and a real S3 server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.local_print import print_restored
from tests.fixtures.seaweed import s3_server  # noqa: F401  (a fixture)

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = Path(os.environ.get("EO_SAMPLE_DATA", REPO.parent / "shared" / "data"))


def sample(relative: str) -> Path:
    """A path under the sample data folder; the test is skipped when it is not there."""
    path = SAMPLE_DATA / relative
    if not path.exists():
        pytest.skip(f"sample data not present: {path} (set EO_SAMPLE_DATA)")
    return path


@pytest.fixture(scope="session")
def real_l2a() -> Path:
    return next(sample("s2-l2a-safe-t29unu").glob("*.SAFE"))


@pytest.fixture(scope="session")
def real_l1c_metadata() -> Path:
    return next(sample("s2-l1c-safe-metadata-t46rer").glob("*.SAFE"))


@pytest.fixture
def kfp_local(tmp_path, monkeypatch):
    """kfp.local with the subprocess runner; returns the pipeline root where the artifacts land."""
    import kfp.local

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # each task is a child process: one math thread each
    root = tmp_path / "pipeline_root"
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
                   workspace_root=str(tmp_path / "workspace"))
    with print_restored():  # kfp's parallel tasks can leave an indenting print installed
        yield root
