"""AI4EU Experiments: the generated model.proto is self-contained and lints clean with buf, and a
real gRPC client runs a real service through the server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AI4EU = REPO / "manifests" / "ai4eu"

import grpc
import numpy as np
import pytest
import rasterio

from components import __version__
from components.common.ai4eu import SERVICES, _shared, image_for, load_api, make_server, proto_for
from tests.s2_change_detection.pairs import write_pair
from tests.fixtures.s2_products import write_s2_product
from tests.fixtures.timesen2crop_archive import write_archive

BUF_CONFIG = """version: v2
lint:
  use: [STANDARD]
  except: [PACKAGE_DEFINED, PACKAGE_DIRECTORY_MATCH, PACKAGE_VERSION_SUFFIX, PACKAGE_SAME_DIRECTORY]
"""


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_proto_is_self_contained(service):
    text = proto_for(service)
    params = SERVICES[service].params_cls().specs()
    assert text.startswith('syntax = "proto3";')
    assert not re.search(r"^\s*(package|import|enum)\b", text, re.M)
    assert len(re.findall(r"^service ", text, re.M)) == 1
    request = text[text.index("message RunRequest {"):text.index("message RunResponse {")]
    numbers = [int(n) for n in re.findall(r"^\s+\w[\w ]* = (\d+);", request, re.M)]
    entry = SERVICES[service]
    assert numbers == list(range(1, len(entry.inputs) + len(params) + 2))
    assert ("rpc Compare(stream CompareRequest) returns (stream CompareResponse);" in text) == entry.compare
    assert len(re.findall(r"^\s+optional (string|double|int64|bool) \w+ = \d+;", text, re.M)) == len(params)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_proto_passes_buf_lint(service, tmp_path):
    exe = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
    if not exe:
        pytest.skip("buf is not installed (make install provides it)")
    (tmp_path / "buf.yaml").write_text(BUF_CONFIG)
    (tmp_path / "model.proto").write_text(proto_for(service))
    proc = subprocess.run([exe, "lint"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_grpc_round_trip_runs_s2_preprocess(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    product = write_s2_product(shared, size_10m=60)
    monkeypatch.setenv("SHARED_FOLDER_PATH", str(shared))
    server, port, api = make_server("S2-preprocess", port=0)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub, request = api.client(channel), api.messages["RunRequest"]
            reply = stub.Run(request(input=product.name, output_path="out", resolution=20,
                                     bands="B2,B8", cloudmask="L2A"), timeout=120)
            with rasterio.open(reply.product) as ds:
                assert ds.count == 2 and ds.res == (20.0, 20.0)
            assert Path(reply.product).parent == shared / "out"
            with pytest.raises(grpc.RpcError) as e:
                stub.Run(request(input=product.name, output_path="out2", bands="B13"), timeout=60)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "invalid value 'B13' for parameter 'bands'" in e.value.details()
            assert not (shared / "out2").exists()
    finally:
        server.stop(0)


def test_grpc_round_trip_runs_timesen2crop(tmp_path, monkeypatch):
    """Lists travel comma-separated; an output the run did not write comes back empty."""
    shared = tmp_path / "shared"
    write_archive(shared / "archive", tiles=("33UVP", "33TVN"), classes=(2, 9), per_class=4)
    monkeypatch.setenv("SHARED_FOLDER_PATH", str(shared))
    server, port, api = make_server("timesen2crop", port=0)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = api.client(channel).Run(
                api.messages["RunRequest"](input_dir="archive", output_path="arrays", val_tiles="33TVN", workers=1),
                timeout=120)
    finally:
        server.stop(0)
    assert Path(reply.train).parent == shared / "arrays"
    assert np.load(reply.train).shape == (8, 12, 9) and np.load(reply.val).shape == (8, 12, 9)
    assert reply.test == ""


def test_shared_folder_resolves_paths_only(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARED_FOLDER_PATH", str(tmp_path))
    assert _shared("aoi.gpkg") == str(tmp_path / "aoi.gpkg")
    for value in ("POLYGON((1 2, 3 4, 5 6, 1 2))", '{"type": "Polygon"}', "s3://eo/a.zip", "/data/a.zip", ""):
        assert _shared(value) == value


def _blueprint_services() -> dict:
    """container name -> service, from the blueprint's image names (which name this version)."""
    by_image = {image_for(name): name for name in SERVICES}
    nodes = json.loads((AI4EU / "blueprint.json").read_text())["nodes"]
    assert all(n["image"].endswith(f":{__version__}") for n in nodes)
    return {n["container_name"]: by_image[n["image"]] for n in nodes}


def test_blueprint_matches_the_services():
    """Every node names an rpc of its service's model.proto with its messages and streaming, every
    link goes to a node of the blueprint, and each upstream reply parses as the downstream request
    (the orchestrator forwards it unchanged)."""
    blueprint = json.loads((AI4EU / "blueprint.json").read_text())
    assert blueprint["type"] == "pipeline-topology/v2"
    services = _blueprint_services()
    apis = {c: load_api(s) for c, s in services.items()}
    docker = {d["container_name"]: d for d in json.loads((AI4EU / "dockerinfo.json").read_text())["docker_info_list"]}
    assert set(docker) == set(services) and all(d["port"] == "8061" for d in docker.values())
    links = 0
    for node in blueprint["nodes"]:
        api = apis[node["container_name"]]
        for op in node["operation_signature_list"]:
            sig = op["operation_signature"]
            method = api.methods[sig["operation_name"]]
            assert (method.input_type.name, method.output_type.name) == (sig["input_message_name"],
                                                                          sig["output_message_name"])
            assert (method.client_streaming, method.server_streaming) == (sig["input_message_stream"],
                                                                          sig["output_message_stream"])
            for target in op["connected_to"]:
                links += 1
                downstream = apis[target["container_name"]].methods[target["operation_signature"]["operation_name"]]
                sent = {f.number: (f.name, f.type) for f in method.output_type.fields}
                for field in downstream.input_type.fields:
                    assert sent.get(field.number) == (field.name, field.type), (node["container_name"], field.name)
    assert links == 1


def test_blueprint_runs_s2_preprocess_into_s2_change_detection(tmp_path, monkeypatch):
    """The test plays the orchestrator of blueprint.json: two pre-processing runs, whose replies go
    as they are into the change detection's Compare stream."""
    shared = tmp_path / "shared"
    first, second = write_pair(shared)
    monkeypatch.setenv("SHARED_FOLDER_PATH", str(shared))
    monkeypatch.setenv("AI4EU_PARAMS", json.dumps({"resolution": 20, "projection": "UTM(Auto)", "numberClasses": 2}))
    monkeypatch.setenv("AI4EU_OUTPUT_PATH", "changes")
    servers = {c: make_server(s, port=0) for c, s in _blueprint_services().items()}
    for server, _, _ in servers.values():
        server.start()
    try:
        channels = {c: grpc.insecure_channel(f"127.0.0.1:{port}") for c, (_, port, _) in servers.items()}
        pre_api, cd_api = servers["s2-preprocess"][2], servers["s2-cd"][2]
        pre, cd = pre_api.client(channels["s2-preprocess"]), cd_api.client(channels["s2-cd"])
        replies = [pre.Run(pre_api.messages["RunRequest"](input=str(p.relative_to(shared)), output_path=f"ard/{i}",
                                                          resolution=20, cloudmask="L2A"), timeout=120)
                   for i, p in enumerate((first, second))]
        forwarded = (cd_api.messages["CompareRequest"].FromString(r.SerializeToString()) for r in replies)
        (change,) = list(cd.Compare(forwarded, timeout=300))
        for channel in channels.values():
            channel.close()
    finally:
        for server, _, _ in servers.values():
            server.stop(0)
    assert Path(change.product).parent == shared / "changes" / "pair-0001"
    with rasterio.open(change.product) as ds:
        classes = ds.read(1)
        assert ds.res == (20.0, 20.0) and ds.crs.to_epsg() == 32629
    assert set(np.unique(classes)) - {0, 255} <= {1, 2} and (classes == 1).any() | (classes == 2).any()
    assert json.loads(Path(change.run_record).read_text())["inputs"]


def test_compare_refuses_bad_parameters(monkeypatch):
    monkeypatch.setenv("AI4EU_PARAMS", '{"numberClasses": 0}')
    server, port, api = make_server("S2-CD", port=0)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as e:
                list(api.client(channel).Compare(iter([api.messages["CompareRequest"](product="a.tif")]), timeout=60))
    finally:
        server.stop(0)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert e.value.details().startswith("AI4EU_PARAMS: invalid value 0 for parameter 'numberClasses'")
