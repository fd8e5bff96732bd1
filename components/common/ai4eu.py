"""AI4EU Experiments packaging: any service as a gRPC server on port 8061.

The marketplace wants one self-contained ``model.proto`` per image (one service, no package,
import or enum, ``syntax = "proto3";``). It is generated from the service's declared parameters,
so the proto, the CLI and the KFP component cannot drift apart. Large inputs and outputs travel
through the shared folder ``SHARED_FOLDER_PATH``: relative paths in a request are resolved there.
The change detections also take a stream of upstream products (``rpc Compare``), so that the
replies of a pre-processing model feed them unchanged in an orchestrated pipeline.

Usage: ``eo-ai4eu list``, ``eo-ai4eu proto S2-preprocess > model.proto`` and
``eo-ai4eu serve S2-preprocess`` (the service defaults to ``$AI4EU_SERVICE``, as in the images).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import sys
import tempfile
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from .errors import ServiceError
from .params import ServiceParams

log = logging.getLogger(__name__)

PORT = 8061
SERVICE_ENV = "AI4EU_SERVICE"  # the service an AI4EU image serves
PARAMS_ENV = "AI4EU_PARAMS"  # parameters of streamed comparisons (rpc Compare), a JSON object
OUTPUT_ENV = "AI4EU_OUTPUT_PATH"  # their output folder, relative to the shared folder
PROTO_TYPES = {"str": "string", "optional_str": "string", "list": "string", "float": "double", "int": "int64",
               "bool": "bool"}


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
                          ("product", "cva", "stac", "report", "run_record"), compare=True),
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


def _load(ref: str):
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def snake(name: str) -> str:
    """Proto field names are lower_snake_case: numberClasses -> number_classes."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def message_prefix(service: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", service) if part)


def proto_for(service: str) -> str:
    """The self-contained model.proto of a service."""
    entry = SERVICES[service]
    prefix = message_prefix(service)
    fields = [f"  string {snake(n)} = {i};" for i, n in enumerate(entry.inputs, 1)]
    fields.append(f"  string output_path = {len(fields) + 1};")
    number = len(fields)
    for spec in entry.params_cls().specs():
        number += 1
        fields.append(f"  // {spec.doc}")
        # optional: an unset field means "the declared default", not proto3's zero value
        fields.append(f"  optional {PROTO_TYPES[spec.kind]} {snake(spec.name)} = {number};")
    outputs = [f"  string {snake(n)} = {i};" for i, n in enumerate(entry.outputs, 1)]
    rpcs = ["  rpc Run(RunRequest) returns (RunResponse);"]
    compare = []
    if entry.compare:
        rpcs.append("  rpc Compare(stream CompareRequest) returns (stream CompareResponse);")
        compare = [
            "// One upstream product per message: field 1 of a pre-processing service's RunResponse, so that",
            "// its replies feed Compare unchanged. Every two products make one comparison (parameters: the",
            f"// JSON object in {PARAMS_ENV}, else the defaults; outputs under {OUTPUT_ENV}/pair-NNNN).",
            "message CompareRequest {", "  string product = 1;", "}", "",
            "message CompareResponse {", *outputs, "}", ""]
    return "\n".join([
        'syntax = "proto3";', "",
        f"// {service}: request parameters as declared by the service; paths relative to SHARED_FOLDER_PATH.",
        "message RunRequest {", *fields, "}", "",
        "message RunResponse {", *outputs, "}", "", *compare,
        f"service {prefix}Service {{", *rpcs, "}", ""])


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
    """The messages and methods of a service's model.proto, compiled by protoc into a descriptor
    pool of its own (no generated modules: several services can live in one process)."""

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


def load_api(service: str) -> ProtoApi:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory(prefix="ai4eu-") as folder:
        (Path(folder) / "model.proto").write_text(proto_for(service))
        if protoc.main(["protoc", f"-I{folder}", f"--descriptor_set_out={folder}/model.pb", "model.proto"]):
            raise RuntimeError(f"protoc rejected the model.proto of {service}")
        files = descriptor_pb2.FileDescriptorSet.FromString((Path(folder) / "model.pb").read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    proto = pool.FindFileByName("model.proto")
    (svc,) = proto.services_by_name.values()
    return ProtoApi(svc.full_name, {n: message_factory.GetMessageClass(d) for n, d in proto.message_types_by_name.items()},
                    {m.name: m for m in svc.methods})


def make_server(service: str, port: int = PORT, workers: int = 2):
    """A gRPC server (not started yet) for ``service``, the port it bound, and its ``ProtoApi``
    (messages, and clients through ``api.client(channel)``)."""
    import grpc

    entry = SERVICES[service]
    api = load_api(service)
    msg = api.messages
    specs = {snake(s.name): s for s in entry.params_cls().specs()}

    def response(message, result):
        return message(**{snake(n): _text(getattr(result, n, None)) for n in entry.outputs})

    def run(request, context):
        values = {}
        for field, spec in specs.items():
            if request.HasField(field):
                value = getattr(request, field)
                values[spec.name] = _shared(value) if spec.kind == "optional_str" and value else value
        try:
            params = entry.params_cls().from_strings(values)
            args = [getattr(request, snake(n)) if n in entry.values else _shared(getattr(request, snake(n)))
                    for n in entry.inputs]
            result = entry.run_fn()(*args, params, _shared(request.output_path))
        except ServiceError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.one_line())
        return response(msg["RunResponse"], result)

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
            yield response(msg["CompareResponse"], result)
        if pending:
            log.warning("the stream ended with an unpaired product %s: not compared", pending[0])

    def handler(kind, fn, name):
        return getattr(grpc, f"{kind}_rpc_method_handler")(
            fn, request_deserializer=msg[f"{name}Request"].FromString,
            response_serializer=msg[f"{name}Response"].SerializeToString)

    handlers = {"Run": handler("unary_unary", run, "Run")}
    if entry.compare:
        handlers["Compare"] = handler("stream_stream", compare, "Compare")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(api.service, handlers),))
    bound = server.add_insecure_port(f"[::]:{port}")
    return server, bound, api


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
    """The name of a service's AI4EU image (images/ai4eu/Dockerfile on its project image)."""
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
    sub.add_parser("list", help="print each service, the project image it builds on and its AI4EU image name")
    for name, text in (("proto", "print the service's model.proto"), ("serve", "serve the service over gRPC")):
        p = sub.add_parser(name, help=text)
        p.add_argument("service", nargs="?" if default else None, default=default, choices=sorted(SERVICES),
                       help=f"default: ${SERVICE_ENV}")
    sub.choices["serve"].add_argument("--port", type=int, default=PORT)
    args = ap.parse_args(argv)
    if args.command == "list":
        for name, entry in sorted(SERVICES.items()):
            print(name, entry.image, image_name(name))
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

