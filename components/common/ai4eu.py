"""AI4EU Experiments packaging: any service as a gRPC server on port 8061.

The marketplace wants one self-contained ``model.proto`` per image (one service, no package,
import or enum, ``syntax = "proto3";``). It is generated from the service's declared parameters,
so the proto, the CLI and the KFP component cannot drift apart. Large inputs and outputs travel
through the shared folder ``SHARED_FOLDER_PATH``: every path of a request is resolved there, and
one that leads outside it (absolute elsewhere, ``..``, a symbolic link out) is refused.

The generic orchestrator merges the protos of a solution into one file, so message names are
unique per service (``S2PreprocessRequest``, ``S2PreprocessResponse``, ...) and a message that
links two models is declared identically in both protos: the change detections take a stream of
their pre-processing service's replies (``rpc Compare``), and the data broker ``product-broker``,
the first node of a pipeline, answers an ``Empty`` with the request of the service it feeds.

The server has no authentication: it listens on 127.0.0.1 unless ``--host`` or ``$AI4EU_HOST``
says otherwise (the images listen on every interface, for the orchestrator's container), so only
the solution's own network may reach it. Requests are small (1 MiB at most; data travel through
the shared folder). Failures follow :mod:`components.common.contract`: a ``ServiceError`` is
INVALID_ARGUMENT, an ``EnvironmentFailure`` UNAVAILABLE, each with its one line; a defect is
INTERNAL "internal error", its traceback in the server's log only. A failed request leaves no
folder it created behind.

Usage: ``eo-ai4eu list``, ``eo-ai4eu proto S2-preprocess > model.proto`` and
``eo-ai4eu serve S2-preprocess [--host ADDRESS] [--port N]`` (the model defaults to
``$AI4EU_SERVICE``, as in the images).
"""

from __future__ import annotations

import argparse
import contextlib
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
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

from .contract import failure_of, guarded
from .errors import EnvironmentFailure, Interrupted, ServiceError
from .params import ServiceParams

log = logging.getLogger(__name__)

PORT = 8061
SERVICE_ENV = "AI4EU_SERVICE"  # the model (service or broker) an AI4EU image serves
PARAMS_ENV = "AI4EU_PARAMS"  # parameters of streamed comparisons and of brokered requests, a JSON object
OUTPUT_ENV = "AI4EU_OUTPUT_PATH"  # their output folder, relative to the shared folder
PRODUCTS_ENV = "AI4EU_PRODUCTS"  # the broker's products: paths, or @file in the shared folder
PRODUCTS_DEFAULT = "@products.txt"
HOST_ENV = "AI4EU_HOST"  # the address to listen on; the images set it to every interface
DEFAULT_HOST = "127.0.0.1"  # no authentication: this machine only unless told otherwise
SHARED_ENV = "SHARED_FOLDER_PATH"
# Limits of a request: data travel through the shared folder, never in messages
MAX_MESSAGE = 1 << 20  # bytes of one message (larger: RESOURCE_EXHAUSTED before it is read)
MAX_PATH = 1024  # characters of a path
MAX_VALUE = 64 << 10  # characters of any other text (an inline WKT area of interest, a projection)
MAX_CONCURRENT_RPCS = 16  # calls in progress at once; more: RESOURCE_EXHAUSTED
MAX_DETAILS = 500  # characters of a status message
GEOMETRY_PARAMS = ("aoi",)  # a path, or an inline WKT polygon
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
    # Text parameters (optional_str) that are names or dates, not paths: every other one is a path
    # in the shared folder (see _request_params)
    value_params: tuple[str, ...] = ()
    # Path parameters the service also reads from object storage (s3://)
    s3_params: tuple[str, ...] = ()

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
                                    values=("dataset",), value_params=("start", "end")),
    "s2-patch-classifier": ServiceEntry("s2-patch-classifier",
                                        "components.s2_patch_classifier.params:S2PatchClassifierParams",
                                        "components.s2_patch_classifier.service:run", ("input",),
                                        ("product", "model", "metrics", "patches", "encoder", "run_record"),
                                        image="ml", s3_params=("model_file", "pretrained_weights", "predict_input")),
    "timesen2crop": ServiceEntry("timesen2crop", "components.timesen2crop.params:TimeSen2CropParams",
                                 "components.timesen2crop.service:run", ("input_dir",),
                                 ("train", "y_train", "val", "test", "dataset", "run_record")),
    "monthlycomposite": ServiceEntry("monthlycomposite", "components.s2_harmonization.params:MonthlyCompositeParams",
                                     "components.s2_harmonization.service:run", ("input_dir",),
                                     ("composites", "stac", "quicklook", "run_record"), value_params=("tile",)),
    "train_lstm": ServiceEntry("train_lstm", "components.crop_lstm.params:TrainParams",
                               "components.crop_lstm.train_service:run", ("input_dir",),
                               ("model", "onnx", "metrics_file", "run_record"), image="ml", s3_params=("val",)),
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
        "// comma- or newline-separated, or @FILE: a file of the shared folder, one per line; default",
        f"// {PRODUCTS_DEFAULT}), with the parameters of the JSON object in {PARAMS_ENV} and the output",
        f"// folder {OUTPUT_ENV}/product-NNNN; NOT_FOUND after the last one.",
        "message Empty {", "}", "",
        f"// The request of {target}, as its proto declares it.", _presence(used), *request, "",
        *_wrapper_lines(used),
        f"service {message_prefix(name)}Service {{", f"  rpc Next(Empty) returns ({request_message(target)});",
        "}", ""])


class _Refused(ServiceError):
    """A refusal with a status of its own: FAILED_PRECONDITION for the server's settings (its
    environment variables), NOT_FOUND at the end of the broker's list."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


def _quoted(value: str) -> str:
    return repr(value if len(value) <= 200 else value[:200] + "...")


def _bad(field: str, value: str, reason: str) -> ServiceError:
    """The one-line refusal of a field's value."""
    return ServiceError(f"{field} {_quoted(value)}: {reason}")


def _text_value(field: str, value: str, limit: int = MAX_VALUE, *, lines: bool = True) -> str:
    """A text field within its length, without control characters (but tabs and line breaks in
    free text, e.g. inline WKT)."""
    if len(value) > limit:
        raise _bad(field, value, f"longer than {limit} characters")
    allowed = "\t\n\r" if lines else ""
    if any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in value):
        raise _bad(field, value, "control characters are not allowed")
    return value


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_WKT = re.compile(r"^(SRID\s*=\s*\d+\s*;\s*)?[A-Za-z]+\s*(ZM|Z|M)?\s*(\(|EMPTY\b)", re.IGNORECASE)


def shared_root() -> str:
    """The shared folder, absolute (``$SHARED_FOLDER_PATH``, default the working folder)."""
    root = os.path.abspath(os.environ.get(SHARED_ENV) or ".")
    if not os.path.isdir(root):
        raise EnvironmentFailure(f"the shared folder {root} ({SHARED_ENV}) is not a folder")
    return root


def shared_path(field: str, value: str, *, output: bool = False, s3: bool = False, geometry: bool = False) -> str:
    """The path ``value`` of the field ``field`` resolved in the shared folder, or a
    ``ServiceError`` naming the field and the value.

    A relative path is taken from the shared folder; an absolute path only when it is inside it
    (the replies of the services carry such paths). ``..`` is refused, and so is a path whose
    symbolic links lead outside the shared folder; those inside are resolved. ``output``: the
    shared folder itself is refused (a run writes into a folder of its own). ``s3``: an
    ``s3://`` URI passes unchanged (not a local path: the service reads or writes the object
    store). ``geometry``: an inline WKT polygon passes unchanged."""
    value = _text_value(field, value, MAX_VALUE if geometry else MAX_PATH, lines=geometry)
    text = value.strip()
    if not text:
        raise _bad(field, value, "empty: give a path in the shared folder")
    if geometry and _WKT.match(text) and "/" not in text:
        return text
    if len(text) > MAX_PATH:
        raise _bad(field, value, f"longer than {MAX_PATH} characters")
    if s3 and text[:5].lower() == "s3://":
        return text
    if _SCHEME.match(text):
        taken = "a path in the shared folder" + (" or an s3:// URI" if s3 else "")
        raise _bad(field, value, f"not {taken}")
    path = PurePosixPath(text)
    if ".." in path.parts:
        raise _bad(field, value, "'..' is not allowed: give a path inside the shared folder")
    root = shared_root()
    real_root = os.path.realpath(root)
    if path.is_absolute():
        inside = [os.path.relpath(text, r) for r in (root, real_root) if _within(os.path.normpath(text), r)]
        if not inside:
            raise _bad(field, value, "outside the shared folder: give a path relative to it")
        text = inside[0]
    real = os.path.realpath(os.path.join(root, text))
    if not _within(real, real_root):
        raise _bad(field, value, "a symbolic link leads outside the shared folder")
    rel = os.path.relpath(real, real_root)
    if rel == ".":
        if output:
            raise _bad(field, value, "the shared folder itself: give a folder inside it")
        return root
    return os.path.join(root, rel)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@contextlib.contextmanager
def _no_leftovers(dest: str):
    """Run a block that writes into the folder ``dest``: when it fails, the folders it created
    for ``dest`` are removed again if empty (a service removes only the last one)."""
    created = []
    if not dest.lower().startswith("s3://"):
        root, folder = os.path.realpath(shared_root()), Path(dest)
        while not os.path.lexists(folder) and _within(os.path.realpath(folder), root) and folder != folder.parent:
            created.append(folder)
            folder = folder.parent
    try:
        yield
    except BaseException:
        for folder in created:
            try:
                folder.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                break
        raise


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
    """The parameters a Run request sets, by declared name (see _wrapped: zero or absent = default),
    its paths resolved in the shared folder (see shared_path)."""
    entry = SERVICES[service]
    wrapped = _wrapped(service)
    values = {}
    for spec in entry.params_cls().specs():
        field = snake(spec.name)
        if field in wrapped:
            if not request.HasField(field):
                continue
            value = getattr(request, field).value
        else:
            value = getattr(request, field)
            if not value:
                continue
        if spec.kind == "optional_str" and spec.name not in entry.value_params:
            value = shared_path(field, value, s3=spec.name in entry.s3_params, geometry=spec.name in GEOMETRY_PARAMS)
        elif isinstance(value, str):
            value = _text_value(field, value)
        values[spec.name] = value
    return values


def _request_inputs(service: str, request) -> list[str]:
    """The inputs of a Run request: paths in the shared folder (or s3:// URIs), or names."""
    entry = SERVICES[service]
    return [_text_value(snake(n), getattr(request, snake(n)), MAX_PATH, lines=False) if n in entry.values
            else shared_path(snake(n), getattr(request, snake(n)), s3=True) for n in entry.inputs]


def _output_path(field: str, value: str) -> str:
    return shared_path(field, value, output=True, s3=True)


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


def listen_host(host: str | None = None) -> str:
    """The address to listen on: ``host``, else ``$AI4EU_HOST``, else 127.0.0.1."""
    return (host or os.environ.get(HOST_ENV, "")).strip() or DEFAULT_HOST


def listen_address(host: str, port: int) -> str:
    """``host:port`` as gRPC takes it (an IPv6 address in brackets)."""
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def make_server(name: str, port: int = PORT, workers: int = 2, host: str | None = None):
    """A gRPC server (not started yet) for the model ``name`` (a service or a broker), the port it
    bound, and its ``ProtoApi`` (messages, and clients through ``api.client(channel)``). It
    listens on ``listen_host(host)``: 127.0.0.1 unless told otherwise."""
    import grpc

    api = load_api(name)
    rpcs = _broker_rpcs(name, api) if name in BROKERS else _service_rpcs(name, api)
    handlers = {}
    for rpc, fn in rpcs.items():
        m = api.methods[rpc]
        kind = f"{'stream' if m.client_streaming else 'unary'}_{'stream' if m.server_streaming else 'unary'}"
        # requests reach the rpc as bytes: one that does not parse is the caller's mistake (see _parse)
        handlers[rpc] = getattr(grpc, f"{kind}_rpc_method_handler")(
            fn, response_serializer=api.messages[m.output_type.name].SerializeToString)
    options = [("grpc.max_receive_message_length", MAX_MESSAGE),
               ("grpc.so_reuseport", 0)]  # no second process on the same port
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options,
                         maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(api.service, handlers),))
    address = listen_address(listen_host(host), port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as e:
        raise ServiceError(f"cannot listen on {address}: {e}") from None
    if not bound:
        raise ServiceError(f"cannot listen on {address}")
    return server, bound, api


def _status(rpc: str, exc: BaseException) -> tuple[str, str]:
    """The gRPC status (its name) and details of a failed call, through the failure contract."""
    failure = failure_of(exc)
    if failure is None:
        log.error("%s: internal error", rpc, exc_info=exc)
        return "INTERNAL", "internal error"
    details = failure.one_line()
    details = details if len(details) <= MAX_DETAILS else details[:MAX_DETAILS - 3] + "..."
    if isinstance(failure, (EnvironmentFailure, Interrupted)):
        code = "UNAVAILABLE"
    else:
        code = failure.code if isinstance(failure, _Refused) else "INVALID_ARGUMENT"
    (log.info if code == "NOT_FOUND" else log.warning)("%s: %s: %s", rpc, code, details)
    return code, details


def _answer(rpc: str, context, call):
    """``call()``; a failure aborts the call with its status."""
    import grpc

    try:
        return call()
    except (Exception, Interrupted) as exc:  # noqa: BLE001 - sorted by _status
        code, details = _status(rpc, exc)
    context.abort(getattr(grpc.StatusCode, code), details)


def _answers(rpc: str, context, replies):
    """The replies of a streaming rpc; a failure aborts the call with its status."""
    import grpc

    while True:
        try:
            reply = next(replies)
        except StopIteration:
            return
        except grpc.RpcError:
            raise  # the caller went away
        except (Exception, Interrupted) as exc:  # noqa: BLE001 - sorted by _status
            code, details = _status(rpc, exc)
            context.abort(getattr(grpc.StatusCode, code), details)
        yield reply


def _parse(message, data: bytes):
    """A request from its bytes; ServiceError when they are not a ``message`` (e.g. a string
    field that is not UTF-8)."""
    from google.protobuf.message import DecodeError

    try:
        return message.FromString(data)
    except DecodeError:
        raise ServiceError(f"request: not a valid {message.DESCRIPTOR.name} message") from None


def _service_rpcs(service: str, api: ProtoApi) -> dict:
    entry = SERVICES[service]

    def response(rpc, result):
        message = api.messages[api.methods[rpc].output_type.name]
        return message(**{snake(n): _text(getattr(result, n, None)) for n in entry.outputs})

    def run_request(data: bytes):
        request = _parse(api.messages[request_message(service)], data)
        args = _request_inputs(service, request)
        output = _output_path("output_path", request.output_path)
        params = entry.params_cls().from_strings(_request_params(service, request))
        with _no_leftovers(output):
            result = entry.run_fn()(*args, params, output)
        return response("Run", result)

    def compare_stream(requests):
        try:
            params = entry.params_cls().from_strings(_json_params())
        except ServiceError as e:
            raise _Refused("FAILED_PRECONDITION", f"{PARAMS_ENV}: {e.one_line()}") from None
        output = _setting(lambda: _output_path(OUTPUT_ENV, os.environ.get(OUTPUT_ENV) or f"{service}-output"))
        message = api.messages[compare_messages(service)[0]]
        pending, done = [], 0
        for data in requests:
            pending.append(shared_path("product", _parse(message, data).product, s3=True))
            if len(pending) < 2:
                continue
            done += 1
            dest = f"{output.rstrip('/')}/pair-{done:04d}"
            with _no_leftovers(dest):
                result = entry.run_fn()(*pending, params, dest)
            pending = []
            yield response("Compare", result)
        if pending:
            log.warning("the stream ended with an unpaired product %s: not compared", pending[0])

    def run(data, context):
        return _answer(f"{service} Run", context, lambda: run_request(data))

    def compare(requests, context):
        yield from _answers(f"{service} Compare", context, compare_stream(requests))

    return {"Run": run, "Compare": compare} if entry.compare else {"Run": run}


def _setting(check):
    """``check()`` on the server's settings: a refusal there is FAILED_PRECONDITION."""
    try:
        return check()
    except (_Refused, EnvironmentFailure):
        raise
    except ServiceError as e:
        raise _Refused("FAILED_PRECONDITION", e.one_line()) from None


def _products() -> list[str]:
    """The broker's products: $AI4EU_PRODUCTS, paths separated by commas or new lines, or @FILE
    (in the shared folder: one path per line, # comments); each one in the shared folder."""
    text = os.environ.get(PRODUCTS_ENV, "").strip() or PRODUCTS_DEFAULT
    if text.startswith("@"):
        listing = Path(_setting(lambda: shared_path(PRODUCTS_ENV, text[1:])))
        if not listing.is_file():
            raise _Refused("FAILED_PRECONDITION", f"{PRODUCTS_ENV}: no file {text[1:]} in the shared folder")
        lines = [line.split("#", 1)[0] for line in listing.read_text().splitlines()]
    else:
        lines = re.split(r"[,\n]", text)
    products = [line.strip() for line in lines if line.strip()]
    if not products:
        raise _Refused("FAILED_PRECONDITION", f"{PRODUCTS_ENV}: no product listed")
    for product in products:
        _setting(lambda: shared_path(PRODUCTS_ENV, product, s3=True))
    return products


def _broker_rpcs(name: str, api: ProtoApi) -> dict:
    """Next: the target's request for the next product, NOT_FOUND after the last one (which ends
    the orchestrator's calls); the list is read again on the call after that, so a solution can run
    again once the shared folder holds new products. The requests it sends are those the target
    takes: their paths are in the shared folder."""
    target = BROKERS[name].target
    entry = SERVICES[target]
    (field,) = (snake(n) for n in entry.inputs)
    request_cls = api.messages[request_message(target)]
    state = {"queue": None, "sent": 0}
    lock = threading.Lock()

    def next_request(data: bytes):
        _parse(api.messages["Empty"], data)
        output = os.environ.get(OUTPUT_ENV) or f"{target}-output"
        _setting(lambda: _output_path(OUTPUT_ENV, output))
        with lock:
            if state["queue"] is None:
                try:
                    values = _json_params()
                    state.update(params=entry.params_cls().from_strings(values), names=list(values))
                except ServiceError as e:
                    raise _Refused("FAILED_PRECONDITION", f"{PARAMS_ENV}: {e.one_line()}") from None
                state.update(queue=_products(), sent=0)
            if not state["queue"]:
                state["queue"] = None
                raise _Refused("NOT_FOUND", f"no more products ({state['sent']} sent)")
            product = state["queue"].pop(0)
            state["sent"] += 1
            sent, params, names = state["sent"], state["params"], state["names"]
        request = request_cls(**{field: product, "output_path": f"{output.rstrip('/')}/product-{sent:04d}"})
        _set_params(target, request, params, names)
        try:
            _request_params(target, request)
        except EnvironmentFailure:
            raise
        except ServiceError as e:
            raise _Refused("FAILED_PRECONDITION", f"{PARAMS_ENV}: {e.one_line()}") from None
        log.info("product %d: %s", sent, product)
        return request

    def next_(data, context):
        return _answer(f"{name} Next", context, lambda: next_request(data))

    return {"Next": next_}


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
    serve = sub.choices["serve"]
    serve.add_argument("--host", help=f"address to listen on (default: ${HOST_ENV}, else {DEFAULT_HOST}: this "
                                      "machine only; 0.0.0.0 or :: for every interface). The server has no "
                                      "authentication: only the orchestrator's network may reach it")
    serve.add_argument("--port", type=int, default=PORT, help=f"port (default {PORT}; 0: any free port)")
    args = ap.parse_args(argv)
    if args.command == "list":
        for name in models():
            print(name, _entry(name).image, image_name(name))
        return 0
    if args.command == "proto":
        sys.stdout.write(proto_for(args.service))
        return 0
    setup_logging()
    with guarded("eo-ai4eu"):  # SIGTERM and SIGINT stop the server: status 128 + signal
        host = listen_host(args.host)
        server, port, _ = make_server(args.service, args.port, host=host)
        server.start()
        try:
            log.info("%s listening on %s (shared folder %s)", args.service, listen_address(host, port),
                     os.path.abspath(os.environ.get(SHARED_ENV) or "."))
            server.wait_for_termination()
        finally:
            server.stop(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
