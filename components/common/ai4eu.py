"""AI4EU Experiments packaging: any service as a gRPC server on port 8061.

The marketplace wants one self-contained ``model.proto`` per image (one service, no package,
import or enum, ``syntax = "proto3";``). It is generated from the service's declared parameters,
so the proto, the CLI and the KFP component cannot drift apart. Large inputs and outputs travel
through the shared folder ``SHARED_FOLDER_PATH``: relative paths in a request are resolved there.

The generic orchestrator merges the protos of a solution into one file, so message names are
unique per service (``S2PreprocessRequest``, ``S2PreprocessResponse``, ...) and a message that
links two models is declared identically in both protos: the change detections take a stream of
their pre-processing service's replies (``rpc Compare``), and the data broker ``product-broker``,
the first node of a pipeline, answers an ``Empty`` with the request of the service it feeds.

Usage: ``eo-ai4eu list``, ``eo-ai4eu proto S2-preprocess > model.proto`` and
``eo-ai4eu serve S2-preprocess`` (the model defaults to ``$AI4EU_SERVICE``, as in the images).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from .errors import ServiceError
from .params import ServiceParams

log = logging.getLogger(__name__)

PORT = 8061
SERVICE_ENV = "AI4EU_SERVICE"  # the model (service or broker) an AI4EU image serves
PARAMS_ENV = "AI4EU_PARAMS"  # parameters of streamed comparisons and of brokered requests, a JSON object
OUTPUT_ENV = "AI4EU_OUTPUT_PATH"  # their output folder, relative to the shared folder
PRODUCTS_ENV = "AI4EU_PRODUCTS"  # the broker's products: paths, or @file in the shared folder
PRODUCTS_DEFAULT = "@products.txt"
PROTO_TYPES = {"str": "string", "optional_str": "string", "list": "string", "float": "double", "int": "int64",
               "bool": "bool"}
# One-field messages for the parameters that need presence (see _wrapped); identical in every
# proto, as the orchestrator's merge requires of a message declared twice.
WRAPPERS = {"float": "DoubleValue", "int": "Int64Value", "bool": "BoolValue"}


@dataclass(frozen=True)
class ServiceEntry:
    """How to call one service: its params, its path inputs, its run function and result fields."""

    name: str
    params: str  # "module:Class"
    run: str  # "module:function", called as run(*inputs, params, output_path)
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    values: tuple[str, ...] = ()  # inputs that are names, not paths in the shared folder
    image: str = "eo"  # the project image (images/) its AI4EU image builds on
    # Two-input services also take their inputs as a stream of upstream products (rpc Compare)
    compare: bool = False
    # The service whose replies feed Compare (its Response is Compare's input message); none: a
    # <Prefix>CompareRequest of one product path
    compare_from: str = ""

    def params_cls(self) -> type[ServiceParams]:
        return _load(self.params)

    def run_fn(self):
        return _load(self.run)


SERVICES: dict[str, ServiceEntry] = {
    "S2-preprocess": ServiceEntry("S2-preprocess", "components.s2_preprocess.params:S2PreprocessParams",
                                  "components.s2_preprocess.service:run", ("input",),
                                  ("product", "stac", "quicklook", "run_record")),
    "S2-CD": ServiceEntry("S2-CD", "components.s2_change_detection.params:S2ChangeParams",
                          "components.s2_change_detection.service:run", ("input1", "input2"),
                          ("product", "cva", "stac", "report", "run_record"), compare=True,
                          compare_from="S2-preprocess"),
    "S1-GRD-preprocess": ServiceEntry("S1-GRD-preprocess", "components.s1_preprocess.params:S1GRDParams",
                                      "components.s1_preprocess.service:run_grd", ("input",),
                                      ("product", "stac", "quicklook", "run_record")),
    "S1-SLC-preprocess": ServiceEntry("S1-SLC-preprocess", "components.s1_preprocess.params:S1SLCParams",
                                      "components.s1_preprocess.service:run_slc", ("input",),
                                      ("product", "stac", "quicklook", "run_record")),
    "S1-CD": ServiceEntry("S1-CD", "components.s1_change_detection.params:S1CDParams",
                          "components.s1_change_detection.service:run", ("input1", "input2"),
                          ("product", "stac", "run_record"), compare=True),
    "osm-features": ServiceEntry("osm-features", "components.osm_features.params:OsmFeaturesParams",
                                 "components.osm_features.service:run", ("input",),
                                 ("product", "stac", "quicklook", "run_record")),
    "energy-datasets": ServiceEntry("energy-datasets", "components.energy_datasets.params:StageParams",
                                    "components.energy_datasets.stage:run", ("dataset",), ("folder", "manifest"),
                                    values=("dataset",)),
    "s2-patch-classifier": ServiceEntry("s2-patch-classifier",
                                        "components.s2_patch_classifier.params:S2PatchClassifierParams",
                                        "components.s2_patch_classifier.service:run", ("input",),
                                        ("product", "model", "metrics", "patches", "encoder", "run_record"),
                                        image="ml"),
    "timesen2crop": ServiceEntry("timesen2crop", "components.timesen2crop.params:TimeSen2CropParams",
                                 "components.timesen2crop.service:run", ("input_dir",),
                                 ("train", "y_train", "val", "test", "dataset", "run_record")),
    "monthlycomposite": ServiceEntry("monthlycomposite", "components.s2_harmonization.params:MonthlyCompositeParams",
                                     "components.s2_harmonization.service:run", ("input_dir",),
                                     ("composites", "stac", "quicklook", "run_record")),
    "train_lstm": ServiceEntry("train_lstm", "components.crop_lstm.params:TrainParams",
                               "components.crop_lstm.train_service:run", ("input_dir",),
                               ("model", "onnx", "metrics_file", "run_record"), image="ml"),
    "tile_classifier": ServiceEntry("tile_classifier", "components.crop_lstm.params:ClassifyParams",
                                    "components.crop_lstm.classify_service:run", ("input_dir", "mc_dir"),
                                    ("crop_map", "stac", "quicklook", "run_record"), image="ml"),
    "aqgan-predict": ServiceEntry("aqgan-predict", "components.aq_downscaling.params:PredictParams",
                                  "components.aq_downscaling.service:predict_to_folder", ("input_file", "model_file"),
                                  ("product",), image="ml"),
}


@dataclass(frozen=True)
class BrokerEntry:
    """A data broker: the first node of a pipeline. Its rpc takes an ``Empty`` and answers with the
    ``Run`` request of ``target`` (a one-input service) for the next product of its list."""

    name: str
    target: str
    image: str = "eo"


BROKERS: dict[str, BrokerEntry] = {
    "product-broker": BrokerEntry("product-broker", "S2-preprocess"),
}


def models() -> list[str]:
    """Everything an AI4EU image can serve: the services and the data brokers."""
    return sorted([*SERVICES, *BROKERS])


def _entry(name: str) -> ServiceEntry | BrokerEntry:
    return SERVICES[name] if name in SERVICES else BROKERS[name]


def _load(ref: str):
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def snake(name: str) -> str:
    """Proto field names are lower_snake_case: numberClasses -> number_classes."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def message_prefix(service: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", service) if part)


def request_message(service: str) -> str:
    """The message of ``rpc Run``: e.g. S2PreprocessRequest."""
    return f"{message_prefix(service)}Request"


def response_message(service: str) -> str:
    return f"{message_prefix(service)}Response"


def compare_messages(service: str) -> tuple[str, str]:
    """Input and output message of ``rpc Compare``."""
    entry = SERVICES[service]
    prefix = message_prefix(service)
    return (response_message(entry.compare_from) if entry.compare_from else f"{prefix}CompareRequest",
            f"{prefix}CompareResponse")


def _zero_is_a_setting(field: dataclasses.Field) -> bool:
    """Whether the proto3 zero value of a number or flag is a valid setting other than the default."""
    if isinstance(field.default, bool):
        return field.default
    if field.default == 0:
        return False
    lo, hi = field.metadata.get("minimum"), field.metadata.get("maximum")
    strict = field.metadata.get("exclusive_minimum")
    return not (lo is not None and (lo >= 0 if strict else lo > 0)) and not (hi is not None and hi < 0)


def _wrapped(service: str) -> set[str]:
    """The fields of the parameters that are wrapper messages.

    No proto3 ``optional``: the orchestrator compiles the merged protos as one file without it.
    Presence comes from the defaults instead: a field left at its zero value ("", 0, false) means
    the declared default. Only where that zero value is itself a setting (a flag on by default, a
    number with another default whose bounds admit 0) is the field a wrapper message (BoolValue,
    Int64Value, DoubleValue), set when present."""
    cls = SERVICES[service].params_cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return {snake(s.name) for s in cls.specs() if s.kind in WRAPPERS and _zero_is_a_setting(fields[s.name])}


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    return "none" if value in (None, "") else str(value)


def _request_lines(service: str) -> tuple[list[str], set[str]]:
    """The Run request of a service, and the wrapper messages it uses."""
    entry = SERVICES[service]
    wrapped = _wrapped(service)
    fields = [f"  string {snake(n)} = {i};" for i, n in enumerate(entry.inputs, 1)]
    fields.append(f"  string output_path = {len(fields) + 1};")
    number, used = len(fields), set()
    for spec in entry.params_cls().specs():
        number += 1
        name = snake(spec.name)
        kind = PROTO_TYPES[spec.kind]
        if name in wrapped:
            kind = WRAPPERS[spec.kind]
            used.add(kind)
        fields.append(f"  // {spec.doc} [default: {_shown(spec.default)}]")
        fields.append(f"  {kind} {name} = {number};")
    return [f"message {request_message(service)} {{", *fields, "}"], used


def _outputs_lines(message: str, service: str) -> list[str]:
    outputs = [f"  string {snake(n)} = {i};" for i, n in enumerate(SERVICES[service].outputs, 1)]
    return [f"message {message} {{", *outputs, "}"]


def _wrapper_lines(used: set[str]) -> list[str]:
    lines = []
    for kind, wrapper in WRAPPERS.items():
        if wrapper in used:
            lines += [f"message {wrapper} {{", f"  {PROTO_TYPES[kind]} value = 1;", "}", ""]
    return lines


def _presence(used: set[str]) -> str:
    text = '// A parameter left unset ("", 0, false) means its declared default'
    return text + ("; one of a *Value message is set when present." if used else ".")


def proto_for(name: str) -> str:
    """The self-contained model.proto of a service or a broker."""
    if name in BROKERS:
        return _broker_proto(name)
    entry = SERVICES[name]
    request, used = _request_lines(name)
    rpcs = [f"  rpc Run({request_message(name)}) returns ({response_message(name)});"]
    compare = []
    if entry.compare:
        compare_in, compare_out = compare_messages(name)
        rpcs.append(f"  rpc Compare(stream {compare_in}) returns (stream {compare_out});")
        if entry.compare_from:
            what = f"the reply of {entry.compare_from}, as its proto declares it."
            declared = _outputs_lines(compare_in, entry.compare_from)
        else:
            what = "a path in the shared folder."
            declared = [f"message {compare_in} {{", "  string product = 1;", "}"]
        compare = [
            f"// One upstream product per message: {what}",
            f"// Every two products make one comparison (parameters: the JSON object in {PARAMS_ENV}, else",
            f"// the defaults; outputs under {OUTPUT_ENV}/pair-NNNN).", *declared, "",
            *_outputs_lines(compare_out, name), ""]
    return "\n".join([
        'syntax = "proto3";', "",
        f"// {name}: request parameters as declared by the service; paths relative to SHARED_FOLDER_PATH.",
        _presence(used), *request, "",
        *_outputs_lines(response_message(name), name), "", *compare, *_wrapper_lines(used),
        f"service {message_prefix(name)}Service {{", *rpcs, "}", ""])


def _broker_proto(name: str) -> str:
    target = BROKERS[name].target
    request, used = _request_lines(target)
    return "\n".join([
        'syntax = "proto3";', "",
        f"// {name}: the first node of a pipeline. Each call of Next answers with the request of",
        f"// {target} for the next product listed in {PRODUCTS_ENV} (paths relative to SHARED_FOLDER_PATH,",
        f"// comma- or newline-separated, or @FILE: a file of the shared folder, one per line; default",
        f"// {PRODUCTS_DEFAULT}), with the parameters of the JSON object in {PARAMS_ENV} and the output",
        f"// folder {OUTPUT_ENV}/product-NNNN; NOT_FOUND after the last one.",
        "message Empty {", "}", "",
        f"// The request of {target}, as its proto declares it.", _presence(used), *request, "",
        *_wrapper_lines(used),
        f"service {message_prefix(name)}Service {{", f"  rpc Next(Empty) returns ({request_message(target)});",
        "}", ""])


def _shared(path: str) -> str:
    """A relative path of a request, resolved in the shared folder. Values that are not paths
    (a WKT polygon, inline GeoJSON) pass unchanged."""
    if not path or "://" in path or os.path.isabs(path) or re.search(r"[\s(){}]", path):
        return path
    return str(Path(os.environ.get("SHARED_FOLDER_PATH", ".")) / path)


def _text(value) -> str:
    """A result field as a proto string: lists comma-separated; a field the run did not write (e.g.
    a SNAP graph written instead of a product, no validation split) empty."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


@dataclass(frozen=True)
class ProtoApi:
    """The messages and methods of one proto service, from a descriptor pool of its own (no
    generated modules: several models can live in one process)."""

    service: str  # the proto service name, e.g. S2PreprocessService
    messages: dict
    methods: dict

    def client(self, channel):
        """A client with one callable per rpc (streaming where the proto says so)."""
        calls = {}
        for name, m in self.methods.items():
            kind = f"{'stream' if m.client_streaming else 'unary'}_{'stream' if m.server_streaming else 'unary'}"
            calls[name] = getattr(channel, kind)(f"/{self.service}/{name}",
                                                 request_serializer=self.messages[m.input_type.name].SerializeToString,
                                                 response_deserializer=self.messages[m.output_type.name].FromString)
        return SimpleNamespace(**calls)


def apis_from_descriptors(files, name: str) -> dict[str, ProtoApi]:
    """A ``ProtoApi`` per service of the file ``name`` of a ``FileDescriptorSet``."""
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    proto = pool.FindFileByName(name)
    messages = {n: message_factory.GetMessageClass(d) for n, d in proto.message_types_by_name.items()}
    return {svc.full_name: ProtoApi(svc.full_name, messages, {m.name: m for m in svc.methods})
            for svc in proto.services_by_name.values()}


def load_api(name: str) -> ProtoApi:
    """The API of a model's model.proto, compiled by protoc."""
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory(prefix="ai4eu-") as folder:
        (Path(folder) / "model.proto").write_text(proto_for(name))
        if protoc.main(["protoc", f"-I{folder}", f"--descriptor_set_out={folder}/model.pb", "model.proto"]):
            raise RuntimeError(f"protoc rejected the model.proto of {name}")
        files = descriptor_pb2.FileDescriptorSet.FromString((Path(folder) / "model.pb").read_bytes())
    (api,) = apis_from_descriptors(files, "model.proto").values()
    return api


def _request_params(service: str, request) -> dict:
    """The parameters a Run request sets, by declared name (see _wrapped: zero or absent = default)."""
    wrapped = _wrapped(service)
    values = {}
    for spec in SERVICES[service].params_cls().specs():
        field = snake(spec.name)
        if field in wrapped:
            if not request.HasField(field):
                continue
            value = getattr(request, field).value
        else:
            value = getattr(request, field)
            if not value:
                continue
        values[spec.name] = _shared(value) if spec.kind == "optional_str" else value
    return values


def _set_params(service: str, request, params: ServiceParams, names) -> None:
    """Write the parameters ``names`` of ``params`` into a Run request of ``service``."""
    wrapped = _wrapped(service)
    for name in names:
        value, field = getattr(params, name), snake(name)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        if field in wrapped:
            getattr(request, field).value = value
        else:
            setattr(request, field, value)


def make_server(name: str, port: int = PORT, workers: int = 2):
    """A gRPC server (not started yet) for the model ``name`` (a service or a broker), the port it
    bound, and its ``ProtoApi`` (messages, and clients through ``api.client(channel)``)."""
    import grpc

    api = load_api(name)
    rpcs = _broker_rpcs(name, api) if name in BROKERS else _service_rpcs(name, api)
    handlers = {}
    for rpc, fn in rpcs.items():
        m = api.methods[rpc]
        kind = f"{'stream' if m.client_streaming else 'unary'}_{'stream' if m.server_streaming else 'unary'}"
        handlers[rpc] = getattr(grpc, f"{kind}_rpc_method_handler")(
            fn, request_deserializer=api.messages[m.input_type.name].FromString,
            response_serializer=api.messages[m.output_type.name].SerializeToString)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(api.service, handlers),))
    bound = server.add_insecure_port(f"[::]:{port}")
    return server, bound, api


def _service_rpcs(service: str, api: ProtoApi) -> dict:
    import grpc

    entry = SERVICES[service]

    def response(rpc, result):
        message = api.messages[api.methods[rpc].output_type.name]
        return message(**{snake(n): _text(getattr(result, n, None)) for n in entry.outputs})

    def run(request, context):
        try:
            params = entry.params_cls().from_strings(_request_params(service, request))
            args = [getattr(request, snake(n)) if n in entry.values else _shared(getattr(request, snake(n)))
                    for n in entry.inputs]
            result = entry.run_fn()(*args, params, _shared(request.output_path))
        except ServiceError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.one_line())
        return response("Run", result)

    def compare(requests, context):
        try:
            params = entry.params_cls().from_strings(_json_params())
        except ServiceError as e:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{PARAMS_ENV}: {e.one_line()}")
        output = os.environ.get(OUTPUT_ENV, f"{service}-output")
        pending, done = [], 0
        for request in requests:
            pending.append(_shared(request.product))
            if len(pending) < 2:
                continue
            done += 1
            try:
                result = entry.run_fn()(*pending, params, _shared(f"{output}/pair-{done:04d}"))
            except ServiceError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.one_line())
            pending = []
            yield response("Compare", result)
        if pending:
            log.warning("the stream ended with an unpaired product %s: not compared", pending[0])

    return {"Run": run, "Compare": compare} if entry.compare else {"Run": run}


def _products() -> list[str]:
    """The broker's products: $AI4EU_PRODUCTS, paths separated by commas or new lines, or @FILE
    (in the shared folder: one path per line, # comments)."""
    text = os.environ.get(PRODUCTS_ENV, "").strip() or PRODUCTS_DEFAULT
    if text.startswith("@"):
        listing = Path(_shared(text[1:]))
        if not listing.is_file():
            raise ServiceError(f"{PRODUCTS_ENV}: no file {text[1:]} in the shared folder")
        lines = [line.split("#", 1)[0] for line in listing.read_text().splitlines()]
    else:
        lines = re.split(r"[,\n]", text)
    products = [line.strip() for line in lines if line.strip()]
    if not products:
        raise ServiceError(f"{PRODUCTS_ENV}: no product listed")
    return products


def _broker_rpcs(name: str, api: ProtoApi) -> dict:
    """Next: the target's request for the next product, NOT_FOUND after the last one (which ends
    the orchestrator's calls); the list is read again on the call after that, so a solution can run
    again once the shared folder holds new products."""
    import grpc

    target = BROKERS[name].target
    entry = SERVICES[target]
    (field,) = (snake(n) for n in entry.inputs)
    request_cls = api.messages[request_message(target)]
    state = {"queue": None, "sent": 0}
    lock = threading.Lock()

    def next_request(_empty, context):
        with lock:
            if state["queue"] is None:
                try:
                    values = _json_params()
                    state.update(params=entry.params_cls().from_strings(values), names=list(values))
                except ServiceError as e:
                    context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{PARAMS_ENV}: {e.one_line()}")
                try:
                    state.update(queue=_products(), sent=0)
                except ServiceError as e:
                    context.abort(grpc.StatusCode.FAILED_PRECONDITION, e.one_line())
            if not state["queue"]:
                state["queue"] = None
                context.abort(grpc.StatusCode.NOT_FOUND, f"no more products ({state['sent']} sent)")
            product = state["queue"].pop(0)
            state["sent"] += 1
            sent, params, names = state["sent"], state["params"], state["names"]
        output = os.environ.get(OUTPUT_ENV, f"{target}-output")
        request = request_cls(**{field: product, "output_path": f"{output}/product-{sent:04d}"})
        _set_params(target, request, params, names)
        log.info("product %d: %s", sent, product)
        return request

    return {"Next": next_request}


def _json_params() -> dict:
    text = os.environ.get(PARAMS_ENV, "").strip()
    if not text:
        return {}
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise ServiceError(f"not a JSON object ({e.msg})") from None
    if not isinstance(values, dict):
        raise ServiceError("not a JSON object")
    return values


def image_name(service: str) -> str:
    """The name of a model's AI4EU image (images/ai4eu/Dockerfile on its project image)."""
    return f"ai4eu-{service.lower().replace('_', '-')}"


def image_for(service: str) -> str:
    from components import __version__
    from components.images import REGISTRY

    return f"{REGISTRY}/{image_name(service)}:{__version__}"


def main(argv: list[str] | None = None) -> int:
    from .logs import setup_logging

    default = os.environ.get(SERVICE_ENV)
    ap = argparse.ArgumentParser(prog="eo-ai4eu", description="AI4EU Experiments packaging of the services")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print each model (service or data broker), the project image it builds on and "
                                "its AI4EU image name")
    for name, text in (("proto", "print the model's model.proto"), ("serve", "serve the model over gRPC")):
        p = sub.add_parser(name, help=text)
        p.add_argument("service", nargs="?" if default else None, default=default, choices=models(),
                       help=f"default: ${SERVICE_ENV}")
    sub.choices["serve"].add_argument("--port", type=int, default=PORT)
    args = ap.parse_args(argv)
    if args.command == "list":
        for name in models():
            print(name, _entry(name).image, image_name(name))
        return 0
    if args.command == "proto":
        sys.stdout.write(proto_for(args.service))
        return 0
    setup_logging()
    server, port, _ = make_server(args.service, args.port)
    server.start()
    log.info("%s listening on port %d (shared folder %s)", args.service, port,
             os.environ.get("SHARED_FOLDER_PATH", "."))
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())

