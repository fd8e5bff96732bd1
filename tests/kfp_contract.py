"""The contract between a service's declared parameters and its KFP component: same names,
KFP types and defaults (lists as comma-separated strings, "not given" as an empty string).

The components are generated from the params dataclasses (components.common.kfp_signature); this
states the mapping again independently, in the compiled spec's type names, to check the generator."""

from __future__ import annotations

KFP_TYPES = {"str": "String", "optional_str": "String", "list": "String", "float": "Float", "int": "Integer",
             "bool": "Boolean"}


def component_default(spec):
    if spec.default is None:
        return ""
    if isinstance(spec.default, tuple):
        return ",".join(map(str, spec.default))
    return spec.default


def assert_inputs_match_params(component, params_cls, component_only: set[str]) -> None:
    inputs = component.component_spec.inputs
    specs = {s.name: s for s in params_cls.specs()}
    assert set(inputs) - set(component_only) == set(specs)
    for name, spec in specs.items():
        assert inputs[name].type == KFP_TYPES[spec.kind], name
        assert inputs[name].default == component_default(spec), name
