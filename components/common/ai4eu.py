"""AI4EU Experiments packaging: any service as a gRPC server on port 8061.

The marketplace wants one self-contained ``model.proto`` per image (one service, no package,
import or enum, ``syntax = "proto3";``). It is generated from the service's declared parameters,
so the proto, the CLI and the KFP component cannot drift apart. Large inputs and outputs travel
through the shared folder ``SHARED_FOLDER_PATH``: relative paths in a request are resolved there.

Usage: ``eo-ai4eu proto S2-preprocess > model.proto`` and ``eo-ai4eu serve S2-preprocess``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
import tempfile
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

from .errors import ServiceError
from .params import ServiceParams

log = logging.getLogger(__name__)

PORT = 8061
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
                          ("product", "cva", "stac", "report", "run_record")),
    "S1-GRD-preprocess": ServiceEntry("S1-GRD-preprocess", "components.s1_preprocess.params:S1GRDParams",
                                      "components.s1_preprocess.service:run_grd", ("input",),
                                      ("product", "stac", "quicklook", "run_record")),
    "S1-SLC-preprocess": ServiceEntry("S1-SLC-preprocess", "components.s1_preprocess.params:S1SLCParams",
                                      "components.s1_preprocess.service:run_slc", ("input",),
                                      ("product", "stac", "quicklook", "run_record")),
    "S1-CD": ServiceEntry("S1-CD", "components.s1_change_detection.params:S1CDParams",
                          "components.s1_change_detection.service:run", ("input1", "input2"),
                          ("product", "stac", "run_record")),
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
    return "\n".join([
        'syntax = "proto3";', "",
        f"// {service}: request parameters as declared by the service; paths relative to SHARED_FOLDER_PATH.",
        "message RunRequest {", *fields, "}", "",
        "message RunResponse {", *outputs, "}", "",
        f"service {prefix}Service {{", "  rpc Run(RunRequest) returns (RunResponse);", "}", ""])


def _shared(path: str) -> str:
    if not path or "://" in path or os.path.isabs(path):
        return path
    return str(Path(os.environ.get("SHARED_FOLDER_PATH", ".")) / path)


def make_server(service: str, port: int = PORT, workers: int = 2):
    """A gRPC server (not started yet) for ``service``, the port it bound, and the generated
    message and service modules (for clients)."""
    import grpc

    entry = SERVICES[service]
    folder = Path(tempfile.mkdtemp(prefix="ai4eu-"))
    (folder / "model.proto").write_text(proto_for(service))
    sys.path.insert(0, str(folder))
    try:
        protos, services = grpc.protos_and_services("model.proto")
    finally:
        sys.path.remove(str(folder))
    specs = {snake(s.name): s for s in entry.params_cls().specs()}
    prefix = message_prefix(service)

    def run(request, context):
        values = {}
        for field, spec in specs.items():
            if request.HasField(field):
                value = getattr(request, field)
                values[spec.name] = _shared(value) if spec.kind == "optional_str" and value else value
        try:
            params = entry.params_cls().from_strings(values)
            args = [_shared(getattr(request, snake(n))) for n in entry.inputs]
            result = entry.run_fn()(*args, params, _shared(request.output_path))
        except ServiceError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.one_line())
        # a result without some field (e.g. a SNAP graph written instead of a product) leaves it empty
        return protos.RunResponse(**{snake(n): str(getattr(result, n, "")) for n in entry.outputs})

    servicer_cls = getattr(services, f"{prefix}ServiceServicer")
    servicer = type(f"{prefix}Servicer", (servicer_cls,), {"Run": lambda self, req, ctx: run(req, ctx)})()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    getattr(services, f"add_{prefix}ServiceServicer_to_server")(servicer, server)
    bound = server.add_insecure_port(f"[::]:{port}")
    return server, bound, protos, services


def main(argv: list[str] | None = None) -> int:
    from .logs import setup_logging

    ap = argparse.ArgumentParser(prog="eo-ai4eu", description="AI4EU Experiments packaging of the services")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("proto", help="print the service's model.proto")
    p.add_argument("service", choices=sorted(SERVICES))
    s = sub.add_parser("serve", help="serve the service over gRPC")
    s.add_argument("service", choices=sorted(SERVICES))
    s.add_argument("--port", type=int, default=PORT)
    args = ap.parse_args(argv)
    if args.command == "proto":
        sys.stdout.write(proto_for(args.service))
        return 0
    setup_logging()
    server, port, _, _ = make_server(args.service, args.port)
    server.start()
    log.info("%s listening on port %d (shared folder %s)", args.service, port,
             os.environ.get("SHARED_FOLDER_PATH", "."))
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())

