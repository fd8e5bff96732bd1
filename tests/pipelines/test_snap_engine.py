"""``engine="snap"`` in the pipelines: s1_ard and s1_change run the step of the chosen engine on
its image (SNAP's gpt is only in the snap image), both branches get the cluster settings of
every step, and gpt's heap follows the container's memory limit."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
import yaml

from components.images import EO_IMAGE, SNAP_IMAGE
from components.s1_change_detection.component import s1_change_detection, s1_change_detection_snap
from components.s1_preprocess import snap_graphs
from components.s1_preprocess.component import (s1_grd_preprocess, s1_grd_preprocess_snap, s1_slc_preprocess,
                                                s1_slc_preprocess_snap)
from pipelines.compile import COMPILED

SNAP = "inputs.parameter_values['pipelinechannel--engine'] == 'snap'"
GIB = 1 << 30


def _compiled(name: str) -> tuple[dict, dict]:
    spec, platform = yaml.safe_load_all((COMPILED / f"{name}.yaml").read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _steps(spec: dict) -> dict[str, tuple[tuple[str, ...], dict]]:
    """Every container step by executor: the trigger conditions on the way to it, and its task."""
    found = {}

    def walk(dag, conditions):
        for task in dag["tasks"].values():
            here = conditions
            if "condition" in task.get("triggerPolicy", {}):
                here = conditions + (task["triggerPolicy"]["condition"],)
            component = spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                walk(component["dag"], here)
            else:
                found[component["executorLabel"]] = (here, task)

    walk(spec["root"]["dag"], ())
    return found


@pytest.mark.parametrize("pipeline, step", [("s1_ard", "s1-grd-preprocess"), ("s1_change", "s1-change-detection")])
def test_engine_chooses_the_image(pipeline, step):
    spec, _ = _compiled(pipeline)
    engine = spec["root"]["inputDefinitions"]["parameters"]["engine"]
    assert engine["defaultValue"] == "native" and engine["parameterType"] == "STRING"
    steps = _steps(spec)
    assert set(steps) == {f"exec-{step}", f"exec-{step}-snap"}
    executors = spec["deploymentSpec"]["executors"]
    assert steps[f"exec-{step}-snap"][0] == (SNAP,)
    assert executors[f"exec-{step}-snap"]["container"]["image"] == SNAP_IMAGE
    assert steps[f"exec-{step}"][0] == (f"!({SNAP})",)
    assert executors[f"exec-{step}"]["container"]["image"] == EO_IMAGE
    # both branches get the same arguments, engine included
    snap_inputs = steps[f"exec-{step}-snap"][1]["inputs"]["parameters"]
    assert snap_inputs == steps[f"exec-{step}"][1]["inputs"]["parameters"]
    assert snap_inputs["engine"] == {"componentInputParameter": "pipelinechannel--engine"}


@pytest.mark.parametrize("pipeline, step", [("s1_ard", "s1-grd-preprocess"), ("s1_change", "s1-change-detection")])
def test_both_branches_have_the_cluster_settings_of_every_step(pipeline, step):
    _, reference = _compiled("s2_ard")
    expected = reference["exec-s2-preprocess"]
    spec, platform = _compiled(pipeline)
    for executor in (f"exec-{step}", f"exec-{step}-snap"):
        for key in ("secretAsEnv", "configMapAsEnv", "pvcMount"):
            assert platform[executor][key] == expected[key], (executor, key)
    snap = spec["deploymentSpec"]["executors"][f"exec-{step}-snap"]["container"]["resources"]
    assert (snap["resourceMemoryRequest"], snap["resourceMemoryLimit"]) == ("8Gi", "16Gi")


@pytest.mark.parametrize("native, snap", [(s1_grd_preprocess, s1_grd_preprocess_snap),
                                          (s1_slc_preprocess, s1_slc_preprocess_snap),
                                          (s1_change_detection, s1_change_detection_snap)])
def test_snap_components_are_the_native_ones_on_the_snap_image(native, snap):
    assert snap.name == f"{native.name}-snap"
    assert snap.python_func is native.python_func
    assert snap.component_spec.inputs == native.component_spec.inputs
    assert snap.component_spec.outputs == native.component_spec.outputs
    ours, theirs = snap.component_spec.implementation.container, native.component_spec.implementation.container
    assert (ours.image, theirs.image) == (SNAP_IMAGE, EO_IMAGE)
    assert (ours.command, ours.args) == (theirs.command, theirs.args)  # the same function is run


# -- gpt's memory ------------------------------------------------------------------------------

def test_gpt_heap_is_three_quarters_of_the_limit_and_the_cache_half_the_heap():
    assert snap_graphs.gpt_memory(None) is None
    assert snap_graphs.gpt_memory(16 * GIB) == (12288, 6144)
    assert snap_graphs.gpt_memory(6 * GIB) == (4608, 2304)
    assert snap_graphs.gpt_memory(256 << 20) == (512, 256)  # never below the floor


@pytest.mark.parametrize("files, expected", [
    ({"memory.max": "17179869184\n"}, 16 * GIB),
    ({"memory.max": "max\n"}, None),
    ({"memory/memory.limit_in_bytes": "8589934592\n"}, 8 * GIB),
    ({"memory/memory.limit_in_bytes": "9223372036854771712\n"}, None),  # cgroup v1 without a limit
    ({}, None),
])
def test_container_memory_limit_from_cgroup_v2_and_v1(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert snap_graphs.container_memory_limit(tmp_path) == expected


def test_gpt_invocation_passes_heap_and_tile_cache():
    cmd, env = snap_graphs.gpt_invocation("gpt", Path("g.xml"), (12288, 6144), {"HOME": "/h"})
    assert cmd == ["gpt", "g.xml", "-c", "6144M"] and env == {"HOME": "/h", "_JAVA_OPTIONS": "-Xmx12288m"}
    _, env = snap_graphs.gpt_invocation("gpt", Path("g.xml"), (12288, 6144), {"_JAVA_OPTIONS": "-Xss4m"})
    assert env["_JAVA_OPTIONS"] == "-Xss4m -Xmx12288m"
    cmd, env = snap_graphs.gpt_invocation("gpt", Path("g.xml"), (12288, 6144), {"_JAVA_OPTIONS": "-Xmx2g"})
    assert (cmd, env) == (["gpt", "g.xml"], {"_JAVA_OPTIONS": "-Xmx2g"})  # a heap set by the user is kept
    assert snap_graphs.gpt_invocation("gpt", Path("g.xml"), None, {}) == (["gpt", "g.xml"], {})


def _fake_gpt(folder: Path, body: str) -> None:
    folder.mkdir()
    exe = folder / "gpt"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def test_run_gpt_sizes_the_heap_from_the_cgroup_limit(tmp_path, monkeypatch):
    _fake_gpt(tmp_path / "bin", f'echo "$* $_JAVA_OPTIONS" > {tmp_path}/called')
    (tmp_path / "cg").mkdir()
    (tmp_path / "cg" / "memory.max").write_text(f"{16 * GIB}\n")
    monkeypatch.setattr(snap_graphs, "CGROUP", tmp_path / "cg")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("_JAVA_OPTIONS", raising=False)
    snap_graphs.run_gpt(tmp_path / "graph.xml")
    assert (tmp_path / "called").read_text().split() == [str(tmp_path / "graph.xml"), "-c", "6144M", "-Xmx12288m"]


def test_gpt_failure_reports_gpt_s_message_not_the_jvm_notice(tmp_path, monkeypatch):
    _fake_gpt(tmp_path / "bin", 'echo "Error: [NodeId: Read] no reader found" >&2\n'
                                'echo "Picked up _JAVA_OPTIONS: -Xmx512m" >&2\nexit 1')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(snap_graphs.ServiceError, match=r"graph.xml: Error: \[NodeId: Read\] no reader found$"):
        snap_graphs.run_gpt(tmp_path / "graph.xml")


# -- the snap branch without SNAP --------------------------------------------------------------

def test_snap_branch_without_gpt_fails_with_the_one_line_error(kfp_local, tmp_path, monkeypatch, capsys):
    """Locally the images are ignored: the snap branch runs here, where gpt is not installed."""
    from pipelines.s1_ard import s1_ard
    from tests.conftest import sample
    from tests.fixtures import s1_products

    monkeypatch.delenv("SNAP_HOME", raising=False)
    if snap_graphs.find_gpt():
        pytest.skip("SNAP is installed here")
    real_grd = next(sample(s1_products.GRD_SAMPLE).glob("*.SAFE"))
    product = s1_products.write_grd(tmp_path / "p", source=real_grd, pols=("VV",), window=(7900, 21900, 150, 200))
    with pytest.raises(RuntimeError) as failed:
        s1_ard(products=[str(product)], engine="snap")
    assert "'s1-grd-preprocess-snap' inside 'condition-3'" in re.sub(r"\x1b\[[0-9;]*m", "", str(failed.value))
    out = capsys.readouterr().out
    errors = [line.strip() for line in out.splitlines() if "error:" in line]  # kfp.local indents task output
    assert len(errors) == 1 and errors[0].startswith("S1-GRD-preprocess: error: SNAP is not installed"), out[-3000:]
