"""A compiled pipeline must read back as the pipeline: kfp (``load_component_from_file``,
``ComponentSpec.from_ir_dicts``) takes a pipeline named like one of its components for that
single component, its inputs and its container."""

from __future__ import annotations

import pytest
from kfp import components
from kfp.dsl import utils

from pipelines.compile import PIPELINES


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipeline_name_is_no_component_name(name, tmp_path):
    from kfp import compiler

    path = tmp_path / f"{name}.yaml"
    compiler.Compiler().compile(PIPELINES[name], str(path))
    spec = PIPELINES[name].pipeline_spec
    assert utils.sanitize_component_name(spec.pipeline_info.name) not in spec.components, \
        f"pipeline {spec.pipeline_info.name!r} is named like one of its components"
    loaded = components.load_component_from_file(str(path))
    assert loaded.component_spec.implementation.graph is not None
    assert set(loaded.component_spec.inputs or {}) == set(PIPELINES[name].component_spec.inputs or {})
