"""KFP component and pipeline signatures generated from a service's parameter dataclass, so that
a parameter is declared once, in the service's ``params.py``.

A component is written as a *body*: a plain function whose own parameters are the component's
artifacts and other inputs (``product: Output[Dataset]``, ``product_uri: str = ""``) and whose
last parameter, ``params``, receives the service parameters as a dict of KFP values.
:func:`params_component` generates the component function around it: the body's parameters
followed by one input per dataclass field, in KFP types (lists as comma-separated strings, "not
given" as ""), calling the body.

KFP runs a lightweight component by embedding the function's *source* in the container command
(``inspect.getsource``) and calling it there by name, so the generated function is compiled from
generated source text registered in ``linecache``; the body goes along as an additional function.
Both run in the container's module, where only ``kfp.dsl`` and ``typing`` names are imported: the
body's annotations must use those names and it must import what it needs inside.

:func:`pipeline_params` does the same for a pipeline: its parameters are its own (the body's)
plus the union of its steps' service parameters, less the ones it does not expose.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import inspect
import linecache
import textwrap
from typing import Any, Callable, Iterable, Mapping

# the KFP input type of each params kind (components.common.params.Spec.kind)
KFP_ANNOTATIONS = {"str": str, "optional_str": str, "list": str, "float": float, "int": int, "bool": bool}
PARAMS = "params"  # the body's parameter that receives the service parameters


@dataclasses.dataclass(frozen=True)
class KfpParam:
    """One service parameter as a KFP input."""

    name: str
    annotation: type
    default: Any


def kfp_default(spec) -> Any:
    """A declared default as a KFP value: a tuple as a comma-separated string, None as ""."""
    if spec.default is None:
        return ""
    if isinstance(spec.default, tuple):
        return ",".join(map(str, spec.default))
    return spec.default


def kfp_params(params_cls, include: Iterable[str] | None = None) -> list[KfpParam]:
    """The fields of ``params_cls`` (those named in ``include``, when given) as KFP inputs."""
    specs = params_cls.specs()
    if include is not None:
        include = tuple(include)
        unknown = sorted(set(include) - {s.name for s in specs})
        if unknown:
            raise ValueError(f"{params_cls.__name__} declares no {', '.join(unknown)}")
        specs = [s for s in specs if s.name in include]
    return [KfpParam(s.name, KFP_ANNOTATIONS[s.kind], kfp_default(s)) for s in specs]


def params_component(body: Callable, params_cls, *, base_image: str, include: Iterable[str] | None = None):
    """The KFP component named like ``body`` without its leading underscore: ``body``'s own
    parameters, then the fields of ``params_cls`` (or those in ``include``, for a component that
    runs one action of a service). ``body`` gets the field values as ``params``."""
    if not body.__name__.startswith("_"):
        raise ValueError(f"{body.__name__}: a component body is named _<component function>")
    name = body.__name__[1:]
    own = _own_parameters(body)
    generated = kfp_params(params_cls, include)
    clash = sorted({p.name for p in generated} & set(own))
    if clash:
        raise ValueError(f"{body.__name__} declares service parameters itself: {', '.join(clash)}")
    func = _compile(name, _component_source(name, body, own, generated), body)
    component = _component(func, body, base_image)
    component.params_cls = params_cls
    component.kfp_params = tuple(generated)
    return component


def on_image(component, base_image: str, name: str):
    """``component`` (made by :func:`params_component`) on another image, under another component
    name: the same function runs, so the container's executor finds it by the same name."""
    variant = _component(component.python_func, component.body, base_image)
    variant.component_spec.name = variant.name = name
    variant.params_cls, variant.kfp_params = component.params_cls, component.kfp_params
    return variant


def _component(func, body, base_image):
    from kfp import dsl

    component = dsl.component(func, base_image=base_image, install_kfp_package=False, additional_funcs=[body])
    component.body = body
    return component


def _own_parameters(body: Callable) -> dict[str, str]:
    """The body's parameters but ``params``, as source text (``name: Annotation = default``)."""
    node = ast.parse(textwrap.dedent(inspect.getsource(body))).body[0]
    args = node.args
    if args.posonlyargs or args.vararg or args.kwarg:
        raise ValueError(f"{body.__name__}: only named parameters")
    names = [a.arg for a in args.args + args.kwonlyargs]
    if names[-1:] != [PARAMS]:
        raise ValueError(f"{body.__name__}: the last parameter must be {PARAMS!r}")
    defaults = [None] * (len(args.args) - len(args.defaults)) + list(args.defaults) + list(args.kw_defaults)
    own = {}
    for arg, default in zip(args.args + args.kwonlyargs, defaults):
        if arg.arg == PARAMS:
            continue
        text = arg.arg if arg.annotation is None else f"{arg.arg}: {ast.unparse(arg.annotation)}"
        own[arg.arg] = text if default is None else f"{text} = {ast.unparse(default)}"
    return own


def _component_source(name: str, body: Callable, own: dict[str, str], generated: list[KfpParam]) -> str:
    node = ast.parse(textwrap.dedent(inspect.getsource(body))).body[0]
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    signature = [*own.values(), *(f"{p.name}: {p.annotation.__name__} = {p.default!r}" for p in generated)]
    doc = inspect.getdoc(body)
    lines = [f"def {name}(", *(f"    {s}," for s in signature), f"){returns}:",
             *([f"    {ast.unparse(ast.Constant(doc))}"] if doc else []),
             f"    return {body.__name__}(", *(f"        {n}={n}," for n in own),
             # a dict display, not dict(): a field may be named like a builtin
             f"        {PARAMS}={{", *(f"            {p.name!r}: {p.name}," for p in generated), "        },",
             "    )", ""]
    return "\n".join(lines)


def _compile(name: str, source: str, body: Callable) -> Callable:
    # inspect.getsource (which KFP calls) reads a function's source through linecache: an entry
    # with no modification time is never checked against a file, so it stays
    # (one entry per source text: a component built again from other params keeps its own)
    filename = f"<kfp component {body.__module__}.{name} {hashlib.sha1(source.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, Any] = {"__name__": body.__module__, body.__name__: body}
    # the names the container's module imports before the function (kfp's component_factory)
    exec("from kfp.dsl import *\nfrom typing import *", namespace)
    # dont_inherit: this module's postponed annotations would make the generated ones strings
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)
    return namespace[name]


# -- pipelines ----------------------------------------------------------------------------------

class StepParams(dict):
    """A pipeline's service parameters (pipeline channels by name), handed to its steps."""

    def of(self, component, **fixed) -> dict:
        """The parameters ``component`` declares, with ``fixed`` values in place of some."""
        names = {p.name for p in component.kfp_params}
        unknown = sorted(set(fixed) - names)
        if unknown:
            raise ValueError(f"{component.name} declares no {', '.join(unknown)}")
        return {**{n: v for n, v in self.items() if n in names}, **fixed}


def pipeline_params(*steps, exclude: Iterable[str] = (), defaults: Mapping[str, Any] | None = None):
    """Decorator of a pipeline body: the pipeline's parameters are the body's own, then the union
    of the service parameters of ``steps`` (components made by :func:`params_component`) less
    ``exclude``, with ``defaults`` replacing declared defaults. The body gets the latter as
    ``params`` (a :class:`StepParams`). A name two steps declare with different defaults must be
    given in ``defaults``: the pipeline passes one value to both."""
    exclude, defaults = set(exclude), dict(defaults or {})

    def decorate(body: Callable) -> Callable:
        union: dict[str, KfpParam] = {}
        for step in steps:
            for p in step.kfp_params:
                if p.name in exclude:
                    continue
                if p.name in defaults:
                    step.params_cls.from_strings({p.name: defaults[p.name]})  # a default the service accepts
                    p = dataclasses.replace(p, default=defaults[p.name])
                seen = union.setdefault(p.name, p)
                if seen != p:
                    raise ValueError(f"{body.__name__}: steps declare {p.name} differently "
                                     f"({seen.annotation.__name__} = {seen.default!r}, "
                                     f"{p.annotation.__name__} = {p.default!r}): give its default")
        declared = {p.name for step in steps for p in step.kfp_params}
        unknown = sorted((exclude | set(defaults)) - declared)
        if unknown:
            raise ValueError(f"{body.__name__}: no step declares {', '.join(unknown)}")
        own = [p for p in inspect.signature(body).parameters.values() if p.name != PARAMS]
        clash = sorted({p.name for p in own} & set(union))
        if clash:
            raise ValueError(f"{body.__name__} declares service parameters itself: {', '.join(clash)}")
        signature = inspect.Signature(own + [
            inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=p.annotation,
                              default=p.default) for p in union.values()])

        def pipeline(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = bound.arguments
            return body(**{p.name: values[p.name] for p in own},
                        params=StepParams({n: values[n] for n in union}))

        # dsl.pipeline reads the parameters from inspect.signature, which honours __signature__
        pipeline.__signature__ = signature
        for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
            setattr(pipeline, attr, getattr(body, attr))
        pipeline.body = body
        return pipeline

    return decorate
