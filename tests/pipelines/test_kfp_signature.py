"""Component and pipeline parameters generated from the services' params dataclasses
(components.common.kfp_signature): every component and pipeline of the collection takes its service
parameters from them, a field added to a dataclass reaches the compiled component and pipelines,
and the generated function runs where KFP runs it (its embedded source, in a child process)."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path

import pytest
import yaml
from kfp import compiler
from kfp.dsl import Artifact, Output
from kfp.dsl.python_component import PythonComponent

from components.common.errors import InvalidParameter
from components.common.kfp_signature import StepParams, params_component, pipeline_params
from components.common.params import param
from components.images import EO_IMAGE
from components.s2_preprocess.params import S2PreprocessParams
from pipelines.compile import PIPELINES
from tests.kfp_contract import KFP_TYPES, component_default

REPO = Path(__file__).resolve().parents[2]
COMPONENT_MODULES = sorted(f"components.{p.parent.name}.component" for p in REPO.glob("components/*/component.py"))


@dataclasses.dataclass(frozen=True)
class SharpenedParams(S2PreprocessParams):
    """S2-preprocess with one more parameter, as someone would add it to its params.py."""

    sharpen: float = param(0.5, "Unsharp-mask strength", minimum=0)


def _echo_params(record: Output[Artifact], label: str = "", *, params: dict):
    """Write what the component received."""
    import json

    with open(record.path, "w") as f:
        json.dump({"label": label, **params}, f)


def _components():
    for name in COMPONENT_MODULES:
        for value in vars(importlib.import_module(name)).values():
            if isinstance(value, PythonComponent):
                yield name, value


def _compiled(component_or_pipeline, tmp_path) -> dict:
    path = tmp_path / f"{component_or_pipeline.name}.yaml"
    compiler.Compiler().compile(component_or_pipeline, str(path))
    return next(yaml.safe_load_all(path.read_text()))


def test_every_component_with_service_parameters_is_generated_from_them():
    generated = [c for _, c in _components() if hasattr(c, "params_cls")]
    assert len(generated) >= 15
    for comp in generated:
        inputs = comp.component_spec.inputs
        specs = {s.name: s for s in comp.params_cls.specs()}
        for p in comp.kfp_params:
            assert inputs[p.name].type == KFP_TYPES[specs[p.name].kind], (comp.name, p.name)
            assert inputs[p.name].default == component_default(specs[p.name]), (comp.name, p.name)
    # a hand-written component of the same module repeats none of those parameters
    for module, comp in _components():
        if hasattr(comp, "params_cls"):
            continue
        declared = {p.name for m, c in _components() if m == module and hasattr(c, "params_cls")
                    for p in c.kfp_params}
        repeated = declared & set(comp.component_spec.inputs or {})
        assert not repeated, (comp.name, repeated)


def _tasks(spec: dict):
    """Every task of a compiled pipeline, in the root DAG and in the sub-DAGs (loops, branches)."""
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    return [task for dag in dags for task in dag["tasks"].values()]


def _passed(task: dict, name: str, as_input: str | None = None) -> bool:
    """Whether ``task`` gets the pipeline parameter ``name`` (as its input ``as_input``, or any)."""
    sources = {f"{name}", f"pipelinechannel--{name}"}
    inputs = task.get("inputs", {}).get("parameters", {})
    given = [inputs.get(as_input, {})] if as_input else list(inputs.values())
    looped = task.get("parameterIterator", {}).get("items", {}).get("inputParameter")
    return any(g.get("componentInputParameter") in sources for g in given) or (not as_input and looped in sources)


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_every_pipeline_parameter_reaches_a_step(name):
    spec = next(yaml.safe_load_all((REPO / "pipelines" / "compiled" / f"{name}.yaml").read_text()))
    for param_name in spec["root"]["inputDefinitions"]["parameters"]:
        assert any(_passed(t, param_name) for t in _tasks(spec)), param_name


def test_a_new_field_reaches_the_compiled_component_and_pipelines(monkeypatch, tmp_path):
    """SharpenedParams in place of S2PreprocessParams: the s2_preprocess component and the s2_ard
    and s2_change pipelines, built again from their own files, take ``sharpen``."""
    in_use = importlib.import_module("components.s2_preprocess.component").s2_preprocess
    monkeypatch.setattr("components.s2_preprocess.params.S2PreprocessParams", SharpenedParams)
    fresh = {}
    for module in ("components.s2_preprocess.component", "pipelines.s2_ard", "pipelines.s2_change"):
        spec = importlib.util.spec_from_file_location(module, REPO / (module.replace(".", "/") + ".py"))
        fresh[module] = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, module, fresh[module])  # the pipelines import the fresh component
        spec.loader.exec_module(fresh[module])

    component = _compiled(fresh["components.s2_preprocess.component"].s2_preprocess, tmp_path)
    assert component["root"]["inputDefinitions"]["parameters"]["sharpen"] == {
        "defaultValue": 0.5, "isOptional": True, "parameterType": "NUMBER_DOUBLE"}
    assert "'sharpen': sharpen," in component["deploymentSpec"]["executors"]["exec-s2-preprocess"]["container"][
        "command"][-1]
    for pipeline in (fresh["pipelines.s2_ard"].s2_ard, fresh["pipelines.s2_change"].s2_change):
        spec = _compiled(pipeline, tmp_path)
        assert spec["root"]["inputDefinitions"]["parameters"]["sharpen"]["defaultValue"] == 0.5, pipeline.name
        steps = [t for t in _tasks(spec) if t["componentRef"]["name"].startswith("comp-s2-preprocess")]
        assert steps and all(_passed(t, "sharpen", "sharpen") for t in steps), pipeline.name
    assert "sharpen" not in in_use.component_spec.inputs  # the component in use is untouched


def test_generated_component_runs_from_its_embedded_source(kfp_local):
    echo = params_component(_echo_params, SharpenedParams, base_image=EO_IMAGE, include=(
        "resolution", "bands", "aoi", "toa", "sharpen"))
    assert set(echo.component_spec.inputs) == {"label", "resolution", "bands", "aoi", "toa", "sharpen"}
    task = echo(label="x", bands="B2,B11", toa=True)
    received = json.loads(Path(task.outputs["record"].path).read_text())
    assert received == {"label": "x", "resolution": 10.0, "bands": "B2,B11", "aoi": "", "toa": True, "sharpen": 0.5}
    params = SharpenedParams.from_strings({k: v for k, v in received.items() if k != "label"})
    assert (params.bands, params.aoi, params.sharpen) == (("B2", "B11"), None, 0.5)


# -- the factory refuses what it cannot generate --------------------------------------------------

def _component_params(record: Output[Artifact], resolution: float = 1.0, *, params: dict):
    pass


def _no_params(record: Output[Artifact]):
    pass


def test_factory_refuses_bodies_it_cannot_wrap():
    with pytest.raises(ValueError, match="declares service parameters itself: resolution"):
        params_component(_component_params, S2PreprocessParams, base_image=EO_IMAGE)
    with pytest.raises(ValueError, match="last parameter must be 'params'"):
        params_component(_no_params, S2PreprocessParams, base_image=EO_IMAGE)
    with pytest.raises(ValueError, match="named _<component function>"):
        params_component(test_factory_refuses_bodies_it_cannot_wrap, S2PreprocessParams, base_image=EO_IMAGE)
    with pytest.raises(ValueError, match="declares no sharpness"):
        params_component(_echo_params, S2PreprocessParams, base_image=EO_IMAGE, include=("sharpness",))


def _pipeline_body(uri: str, params):
    return params


@dataclasses.dataclass(frozen=True)
class _WGS84Params(S2PreprocessParams):
    projection: str = param("WGS84", "Output CRS")


def test_pipeline_params_union_and_its_checks():
    a = params_component(_echo_params, S2PreprocessParams, base_image=EO_IMAGE, include=("resolution", "cloudmask"))
    b = params_component(_echo_params, SharpenedParams, base_image=EO_IMAGE, include=("resolution", "sharpen"))
    func = pipeline_params(a, b, defaults={"cloudmask": "L2A"})(_pipeline_body)
    signature = inspect.signature(func)
    assert [(p.name, p.default) for p in signature.parameters.values()] == [
        ("uri", inspect.Parameter.empty), ("resolution", 10.0), ("cloudmask", "L2A"), ("sharpen", 0.5)]
    params = func("s3://b/k", 20.0, "None", 1.5)  # as kfp calls it: positionally
    assert params == {"resolution": 20.0, "cloudmask": "None", "sharpen": 1.5}
    assert isinstance(params, StepParams) and params.of(b, sharpen=0.0) == {"resolution": 20.0, "sharpen": 0.0}
    with pytest.raises(ValueError, match="declares no cloudmask"):
        params.of(b, cloudmask="L2A")

    with pytest.raises(InvalidParameter, match="cloudmask"):
        pipeline_params(a, defaults={"cloudmask": "L3"})(_pipeline_body)
    with pytest.raises(ValueError, match="no step declares dem"):
        pipeline_params(a, exclude=("dem",))(_pipeline_body)
    other = params_component(_echo_params, _WGS84Params, base_image=EO_IMAGE, include=("projection",))
    c = params_component(_echo_params, S2PreprocessParams, base_image=EO_IMAGE, include=("projection",))
    with pytest.raises(ValueError, match="steps declare projection differently"):
        pipeline_params(c, other)(_pipeline_body)
    assert pipeline_params(c, other, defaults={"projection": "WGS84"})(_pipeline_body)("u") == {"projection": "WGS84"}
