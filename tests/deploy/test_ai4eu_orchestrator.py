"""AI4EU Experiments: the blueprint's protos go through the generic orchestrator's proto merge and
its protoc step, and its rules for linking the blueprint's rpcs hold.

The rules are those of AI4EU-Graphene/generic-parallel-orchestrator, reproduced here:

- ``orchestrator_container/src/ai4eu/orchestrator.py``, ``ProtobufMerger.merge``: each proto file
  (named by its key in the ``protofiles`` map, ``<container_name>.proto``, written to disk with a
  second ``.proto`` suffix) is parsed alone by protoc into a descriptor set (no ``--include_imports``).
  A file whose syntax is not ``proto3`` is refused. ``package`` is not checked (that check is
  commented out) and imports are dropped: the merged file has neither a package nor
  dependencies, so a type from a package or from another file no longer resolves there. Messages
  and services are collected by name; a name seen again must have an identical descriptor, else
  the merge fails. File-level enums and extensions are refused.
- ``Core.merge_and_compile_protobuf_files``: the merged ``FileDescriptorProto`` (name
  ``all_in_one.proto``, the messages and services only: no syntax, hence proto2) is written as a
  descriptor set and compiled by ``python -m grpc_tools.protoc --descriptor_set_in=...
  --python_out=. --grpc_python_out=. all_in_one.proto``. A proto3 ``optional`` field fails here.
- ``Core.parse_service_name_from_protofile``: a node's gRPC service is the first line of
  ``<container_name>.proto`` that starts with ``service ``; the orchestrator then calls
  ``all_in_one_pb2_grpc.<Service>Stub`` (``othread.OrchestrationThreadBase``).
- ``Core.merge_protobuf_collect_node_infos`` / ``collect_rpc_and_link_infos`` and
  ``orchestratorservice.OrchestratorImpl.initialize``: every blueprint node is in dockerinfo; an
  rpc whose input message is named ``Empty`` is called with a fresh ``Empty`` and must have no
  incoming link; one thread per (container, rpc).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from google.protobuf.descriptor_pb2 import FileDescriptorProto, FileDescriptorSet

from components import __version__
from components.common import ai4eu

REPO = Path(__file__).resolve().parents[2]
AI4EU = REPO / "manifests" / "ai4eu"
MERGED = "all_in_one.proto"


class MergeError(ValueError):
    pass


def _protoc(*args: str) -> None:
    """protoc as the orchestrator runs it (``python -m grpc_tools.protoc``: the well-known types
    on the include path)."""
    import importlib.resources

    from grpc_tools import protoc

    include = str(importlib.resources.files("grpc_tools") / "_proto")
    if protoc.main(["protoc", f"-I{include}", *args]):
        raise MergeError(f"protoc failed: {' '.join(args)}")


def merge_protos(protofiles: dict[str, str], output_filename: str = MERGED) -> FileDescriptorSet:
    """``ProtobufMerger.merge`` of the orchestrator."""
    messages, services = {}, {}
    with tempfile.TemporaryDirectory() as tdir:
        for fname, content in protofiles.items():
            disk_fname = os.path.join(tdir, fname + ".proto")
            Path(disk_fname).write_text(content)
            out = os.path.join(tdir, "out.pb")
            _protoc(f"--descriptor_set_out={out}", f"--proto_path={tdir}", disk_fname)
            fds = FileDescriptorSet.FromString(Path(out).read_bytes())
            for f in fds.file:
                if f.syntax != "proto3":
                    raise MergeError(f"cannot process syntax '{f.syntax}' in file '{fname}'")
                for msg in f.message_type:
                    if msg.name in messages and msg != messages[msg.name]:
                        raise MergeError(f"message '{msg.name}' present in several files with different content "
                                         f"(last: {fname})")
                    messages.setdefault(msg.name, msg)
                if len(f.enum_type) > 0:
                    raise MergeError(f"cannot process protobuf input with enums in '{fname}'")
                if len(f.extension) > 0:
                    raise MergeError(f"cannot process protobuf input with extensions in '{fname}'")
                for srv in f.service:
                    if srv.name in services and srv != services[srv.name]:
                        raise MergeError(f"service '{srv.name}' present in several files with different content "
                                         f"(last: {fname})")
                    services.setdefault(srv.name, srv)
    fdp = FileDescriptorProto(name=output_filename, message_type=messages.values(), service=services.values())
    return FileDescriptorSet(file=[fdp])


def compile_merged(merged: FileDescriptorSet, out_dir: Path, output_filename: str = MERGED) -> None:
    """``Core.merge_and_compile_protobuf_files``: the merged descriptor compiled to Python and gRPC
    modules (``all_in_one_pb2.py``, ``all_in_one_pb2_grpc.py``) in ``out_dir``."""
    descriptor = out_dir / "merged.pb"
    descriptor.write_bytes(merged.SerializeToString())
    _protoc(f"--descriptor_set_in={descriptor}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
            output_filename)


def service_name(protofile: str) -> str:
    """``Core.parse_service_name_from_protofile``."""
    lines = [line.strip() for line in protofile.split("\n") if line.startswith("service ")]
    return lines[0].split("{", 1)[0].strip().split(" ", 1)[1].strip()


def blueprint_models() -> dict[str, str]:
    """container name -> model (service or broker), from the blueprint's image names."""
    by_image = {ai4eu.image_for(name): name for name in ai4eu.models()}
    nodes = json.loads((AI4EU / "blueprint.json").read_text())["nodes"]
    assert all(n["image"].endswith(f":{__version__}") for n in nodes)
    return {n["container_name"]: by_image[n["image"]] for n in nodes}


def blueprint_protofiles() -> dict[str, str]:
    """What the orchestrator client sends: ``microservice/*.proto`` by file name."""
    blueprint = json.loads((AI4EU / "blueprint.json").read_text())
    models = blueprint_models()
    files = {}
    for node in blueprint["nodes"]:
        uri = node["proto_uri"]
        assert uri == f"microservice/{node['container_name']}.proto"
        files[os.path.basename(uri)] = ai4eu.proto_for(models[node["container_name"]])
    return files


def merged_apis(merged: FileDescriptorSet) -> dict:
    """A ``ProtoApi`` per service of the merged file: clients whose messages are the merged file's
    classes, as the orchestrator's threads use them."""
    return ai4eu.apis_from_descriptors(merged, MERGED)


def test_blueprint_protos_merge_compile_and_link(tmp_path):
    blueprint = json.loads((AI4EU / "blueprint.json").read_text())
    docker = json.loads((AI4EU / "dockerinfo.json").read_text())["docker_info_list"]
    protofiles = blueprint_protofiles()
    merged = merge_protos(protofiles)
    compile_merged(merged, tmp_path)

    # node infos: a service per dockerinfo container (from <container>.proto), every node there
    services = {d["container_name"]: service_name(protofiles[d["container_name"] + ".proto"]) for d in docker}
    assert len(services) == len(docker) and {n["container_name"] for n in blueprint["nodes"]} <= set(services)

    # rpcs and links
    (merged_file,) = merged.file
    methods = {(s.name, m.name): m for s in merged_file.service for m in s.method}
    rpcs, incoming, links = {}, {}, []
    for node in blueprint["nodes"]:
        for op in node["operation_signature_list"]:
            sig = op["operation_signature"]
            rpcid = f"{node['container_name']}_{sig['operation_name']}"
            assert rpcid not in rpcs, "rpcid must be unique in the solution"
            rpcs[rpcid] = sig
            method = methods[(services[node["container_name"]], sig["operation_name"])]
            assert (method.input_type, method.output_type) == (f".{sig['input_message_name']}",
                                                               f".{sig['output_message_name']}")
            assert (method.client_streaming, method.server_streaming) == (sig["input_message_stream"],
                                                                          sig["output_message_stream"])
            for con in op["connected_to"]:
                target = f"{con['container_name']}_{con['operation_signature']['operation_name']}"
                incoming[target] = incoming.get(target, 0) + 1
                links.append((rpcid, target))
    for rpcid, sig in rpcs.items():
        if sig["input_message_name"] == "Empty":
            assert incoming.get(rpcid, 0) == 0, rpcid
    # the Design Studio connects an output to an input of the same message type
    for source, target in links:
        assert rpcs[source]["output_message_name"] == rpcs[target]["input_message_name"], (source, target)
    # the pipeline starts at the first node, whose rpc takes Empty
    first = blueprint["nodes"][0]
    starts = [f"{first['container_name']}_{op['operation_signature']['operation_name']}"
              for op in first["operation_signature_list"]]
    assert [r for r, s in rpcs.items() if s["input_message_name"] == "Empty"] == starts

    # the generated modules import and hold what the orchestrator's threads look up
    lookups = {"stubs": sorted({f"{s}Stub" for s in services.values()}),
               "messages": sorted({s[k] for s in rpcs.values() for k in ("input_message_name", "output_message_name")})}
    check = ("import json, sys; import all_in_one_pb2 as pb, all_in_one_pb2_grpc as rpc; "
             "want = json.loads(sys.argv[1]); "
             "[getattr(rpc, s) for s in want['stubs']]; [getattr(pb, m)() for m in want['messages']]")
    proc = subprocess.run([sys.executable, "-c", check, json.dumps(lookups)], cwd=tmp_path, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_model_merges_with_every_other(tmp_path):
    """Message and service names are unique per model, and shared messages are identical: any
    blueprint of these models merges."""
    protofiles = {f"{name}.proto": ai4eu.proto_for(name) for name in ai4eu.models()}
    merged = merge_protos(protofiles)
    compile_merged(merged, tmp_path)
    assert len(merged.file[0].service) == len(protofiles)


@pytest.mark.parametrize("files, error", [
    ({"a.proto": 'syntax = "proto3";\nmessage RunRequest { string input = 1; }\n',
      "b.proto": 'syntax = "proto3";\nmessage RunRequest { string input1 = 1; }\n'}, "message 'RunRequest'"),
    ({"a.proto": 'syntax = "proto2";\nmessage A { optional string x = 1; }\n'}, "syntax ''"),
    ({"a.proto": 'syntax = "proto3";\nenum E { E_UNSPECIFIED = 0; }\n'}, "enums"),
    ({"a.proto": 'syntax = "proto3";\nmessage A { optional string x = 1; }\n'}, "protoc failed"),
    ({"a.proto": 'syntax = "proto3";\npackage p;\nmessage A {}\nmessage B { A a = 1; }\n'}, "protoc failed"),
])
def test_the_merge_rules_refuse_what_the_orchestrator_refuses(files, error, tmp_path):
    with pytest.raises(MergeError, match=error):
        compile_merged(merge_protos(files), tmp_path)


def test_identical_messages_merge():
    def proto(service):
        return ('syntax = "proto3";\nmessage Empty {}\nmessage A { string x = 1; }\n'
                f"service {service} {{ rpc Run(Empty) returns (A); }}\n")

    merged = merge_protos({"a.proto": proto("AService"), "b.proto": proto("BService")})
    assert [m.name for m in merged.file[0].message_type] == ["Empty", "A"]
    assert [s.name for s in merged.file[0].service] == ["AService", "BService"]
