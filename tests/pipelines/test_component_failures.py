"""The failure contract of the KFP components, run with kfp.local's subprocess runner as a
pipeline step runs: a failing step fails with one line ``<prog>: error: <reason>`` in its log
(no traceback) and leaves no file in its output artifacts."""

from __future__ import annotations

import contextlib
import resource
import signal
from dataclasses import dataclass, field

import pytest

from tests.fixtures.s2_products import write_s2_product


@dataclass
class Case:
    id: str
    component: str  # "module:function" under components/
    kwargs: dict
    prog: str
    fragment: str
    needs: set = field(default_factory=set)
    file_size_limit: int = 0


CASES = [
    Case("s2 missing product", "s2_preprocess.component:s2_preprocess", {"product_uri": "{tmp}/absent.SAFE"},
         "S2-preprocess", "input not found"),
    Case("s2 unknown band", "s2_preprocess.component:s2_preprocess", {"product_uri": "{s2}", "bands": "B13"},
         "S2-preprocess", "parameter 'bands'"),
    Case("s2 resolution far too fine", "s2_preprocess.component:s2_preprocess",
         {"product_uri": "{s2}", "resolution": 0.001}, "S2-preprocess", "--resolution 0.001 gives an output grid of"),
    Case("s2 fewer valid pixels than asked", "s2_preprocess.component:s2_preprocess",
         {"product_uri": "{s2}", "min_valid_percent": 99.9}, "S2-preprocess", "below --min_valid_percent 99.9"),
    Case("s2 file-size limit", "s2_preprocess.component:s2_preprocess", {"product_uri": "{s2}"},
         "S2-preprocess", "file-size limit", file_size_limit=200_000),
    Case("s1 fewer valid pixels than asked", "s1_preprocess.component:s1_grd_preprocess",
         {"product_uri": "{grd}", "min_valid_percent": 100.0}, "S1-GRD-preprocess", "below --min_valid_percent 100",
         needs={"s1"}),
    Case("s1 resolution far too fine", "s1_preprocess.component:s1_grd_preprocess",
         {"product_uri": "{grd}", "resolution": 0.001}, "S1-GRD-preprocess", "resolution", needs={"s1"}),
    Case("s1 missing product", "s1_preprocess.component:s1_slc_preprocess", {"product_uri": "{tmp}/absent.SAFE"},
         "S1-SLC-preprocess", "input not found"),
    Case("osm missing extract", "osm_features.component:osm_features",
         {"input_uri": "{tmp}/absent.osm.pbf", "features": "airport"}, "osm-features", "not found"),
    Case("monthlycomposite missing folder", "s2_harmonization.component:monthlycomposite",
         {"input_uri": "{tmp}/absent"}, "monthlycomposite", "not found"),
    Case("energy unknown dataset", "energy_datasets.component:energy_dataset", {"name": "no-such-dataset"},
         "energy-datasets", "no-such-dataset"),
]


@pytest.fixture(scope="module")
def s2_product(tmp_path_factory):
    return write_s2_product(tmp_path_factory.mktemp("s2"), size_10m=60)


@pytest.fixture(scope="module")
def grd(tmp_path_factory):
    from tests.conftest import sample
    from tests.fixtures import s1_products

    source = next(sample(s1_products.GRD_SAMPLE).glob("*.SAFE"))
    return s1_products.write_grd(tmp_path_factory.mktemp("grd"), source=source, pols=("VV",))


@contextlib.contextmanager
def _file_size_limit(limit: int):
    """A soft file-size limit on this process and the steps it starts (restored after); writes past
    it fail with EFBIG (SIGXFSZ ignored), as they fail with ENOSPC on a full disk."""
    if not limit:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def _component(path: str):
    import importlib

    module, name = path.split(":")
    return getattr(importlib.import_module(f"components.{module}"), name)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_failing_step_logs_one_line_and_writes_nothing(case: Case, kfp_local, s2_product, tmp_path, capfd,
                                                      monkeypatch, request):
    for var in ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    values = {"tmp": str(tmp_path), "s2": str(s2_product)}
    if "s1" in case.needs:
        values["grd"] = str(request.getfixturevalue("grd"))
    kwargs = {k: v.format(**values) if isinstance(v, str) else v for k, v in case.kwargs.items()}
    component = _component(case.component)
    capfd.readouterr()

    with _file_size_limit(case.file_size_limit), pytest.raises(RuntimeError, match="FAILURE"):
        component(**kwargs)
    log = capfd.readouterr().out

    assert "Traceback" not in log, log
    lines = [line.strip() for line in log.splitlines() if ": error: " in line]
    assert len(lines) == 1, log
    assert lines[0].startswith(f"{case.prog}: error: ") and case.fragment in lines[0], lines[0]
    assert not [p for p in kfp_local.rglob("*") if p.is_file()], sorted(map(str, kfp_local.rglob("*")))
