"""AI4EU Experiments: the generated model.proto is self-contained and lints clean with buf, a real
gRPC client runs a real service through the server, the data broker feeds the blueprint, and the
blueprint runs with the messages of the orchestrator's merged proto."""

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
from google.protobuf.descriptor_pb2 import DescriptorProto

from components.common.ai4eu import (BROKERS, SERVICES, WRAPPERS, _request_params, compare_messages,
                                     listen_address, listen_host, load_api, make_server, message_prefix, models,
                                     proto_for, request_message, response_message, shared_path)
from components.common.errors import ServiceError
from tests.deploy.test_ai4eu_orchestrator import blueprint_models, blueprint_protofiles, merge_protos, merged_apis
from tests.s2_change_detection.pairs import write_pair
from tests.fixtures.s2_products import write_s2_product
from tests.fixtures.timesen2crop_archive import write_archive

# The orchestrator links two models by a message both protos declare, so a request cannot be named
# after the rpc that takes it (S2-CD's Compare takes S2PreprocessResponse): buf's two rules on
# request/response names are off.
BUF_CONFIG = """version: v2
lint:
  use: [STANDARD]
  except: [PACKAGE_DEFINED, PACKAGE_DIRECTORY_MATCH, PACKAGE_VERSION_SUFFIX, PACKAGE_SAME_DIRECTORY,
           RPC_REQUEST_STANDARD_NAME, RPC_RESPONSE_STANDARD_NAME]
"""


def _message(text: str, name: str) -> str:
    return re.search(rf"^message {name} {{\n.*?^}}\n", text, re.M | re.S)[0]


def _code(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


@pytest.mark.parametrize("name", models())
def test_proto_is_self_contained(name):
    text = proto_for(name)
    code = _code(text)
    assert text.startswith('syntax = "proto3";')
    assert not re.search(r"^\s*(package|import|enum)\b", code, re.M)
    assert not re.search(r"\boptional\b", code)
    assert len(re.findall(r"^service ", text, re.M)) == 1
    messages = re.findall(r"^message (\w+) {", text, re.M)
    assert len(messages) == len(set(messages))
    if name in BROKERS:
        target = BROKERS[name].target
        assert f"  rpc Next(Empty) returns ({request_message(target)});" in text
        assert _message(text, request_message(target)) == _message(proto_for(target), request_message(target))
        return
    entry = SERVICES[name]
    params = entry.params_cls().specs()
    request = _message(text, request_message(name))
    numbers = [int(n) for n in re.findall(r"^\s+\w+ \w+ = (\d+);", request, re.M)]
    assert numbers == list(range(1, len(entry.inputs) + len(params) + 2))
    assert f"  rpc Run({request_message(name)}) returns ({response_message(name)});" in text
    compare = "  rpc Compare(stream {}) returns (stream {});".format(*compare_messages(name)) if entry.compare else ""
    assert ("rpc Compare(" in text) == entry.compare and compare in text
    # message names are the service's own, but for the wrappers and the upstream reply Compare takes
    shared = set(WRAPPERS.values()) | ({compare_messages(name)[0]} if entry.compare_from else set())
    assert all(m.startswith(message_prefix(name)) for m in set(messages) - shared), messages
    if entry.compare_from:
        upstream = response_message(entry.compare_from)
        assert _message(text, upstream) == _message(proto_for(entry.compare_from), upstream)


@pytest.mark.parametrize("name", models())
def test_proto_passes_buf_lint(name, tmp_path):
    exe = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
    if not exe:
        pytest.skip("buf is not installed (make install provides it)")
    (tmp_path / "buf.yaml").write_text(BUF_CONFIG)
    (tmp_path / "model.proto").write_text(proto_for(name))
    proc = subprocess.run([exe, "lint"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unset_parameters_mean_their_defaults(monkeypatch, tmp_path):
    """Zero values are defaults; a flag that is on by default is turned off through its wrapper."""
    monkeypatch.setenv("SHARED_FOLDER_PATH", str(tmp_path))
    api = load_api("S1-GRD-preprocess")
    request = api.messages["S1GrdPreprocessRequest"]
    assert _request_params("S1-GRD-preprocess", request(input="a.zip", output_path="out", resolution=0)) == {}
    set_ = request(filter_size_x=5, dem="dem.tif", thermal_noise_removal={"value": False},
                   border_limit={"value": 0}, polarization="VH")
    assert _request_params("S1-GRD-preprocess", set_) == {
        "filter_size_x": 5, "dem": str(tmp_path / "dem.tif"), "thermal_noise_removal": False, "border_limit": 0,
        "polarization": "VH"}
    assert "  BoolValue thermal_noise_removal = " in proto_for("S1-GRD-preprocess")
    assert "  bool toa = " in proto_for("S2-preprocess")  # off by default: false is the default


def test_grpc_round_trip_runs_s2_preprocess(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    product = write_s2_product(shared, size_10m=60)
    monkeypatch.setenv("SHARED_FOLDER_PATH", str(shared))
    server, port, api = make_server("S2-preprocess", port=0)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub, request = api.client(channel), api.messages["S2PreprocessRequest"]
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
                api.messages["Timesen2cropRequest"](input_dir="archive", output_path="arrays", val_tiles="33TVN",
                                                    workers=1),
                timeout=120)
    finally:
        server.stop(0)
    assert Path(reply.train).parent == shared / "arrays"
    assert np.load(reply.train).shape == (8, 12, 9) and np.load(reply.val).shape == (8, 12, 9)
    assert reply.test == ""


def test_shared_folder_resolves_paths_only(tmp_path, monkeypatch):
    """Paths are taken in the shared folder; an inline WKT area (aoi) and s3:// URIs where the
    service reads object storage pass unchanged; anything leading outside is refused."""
    monkeypatch.setenv("SHARED_FOLDER_PATH", str(tmp_path))
    assert shared_path("aoi", "aoi.gpkg", geometry=True) == str(tmp_path / "aoi.gpkg")
    assert shared_path("input", str(tmp_path / "in" / "a.zip")) == str(tmp_path / "in" / "a.zip")
    assert shared_path("input", ".") == str(tmp_path)
    assert shared_path("aoi", "POLYGON((1 2, 3 4, 5 6, 1 2))", geometry=True) == "POLYGON((1 2, 3 4, 5 6, 1 2))"
    assert shared_path("input", "s3://eo/a.zip", s3=True) == "s3://eo/a.zip"
    for value, kwargs in (("/data/a.zip", {}), ("../a.zip", {}), ("s3://eo/a.zip", {}), ("", {}),
                          ("POLYGON((1 2))/../../a.zip", {"geometry": True}), (".", {"output": True})):
        with pytest.raises(ServiceError, match="^input "):
            shared_path("input", value, **kwargs)


def test_names_and_dates_are_not_paths(tmp_path, monkeypatch):
    """A tile code or a date is not taken in the shared folder."""
    monkeypatch.setenv("SHARED_FOLDER_PATH", str(tmp_path))
    mc = load_api("monthlycomposite").messages["MonthlycompositeRequest"]
    assert _request_params("monthlycomposite", mc(input_dir="in", output_path="out", tile="33UVP")) == {
        "tile": "33UVP"}
    energy = load_api("energy-datasets").messages["EnergyDatasetsRequest"]
    assert _request_params("energy-datasets", energy(dataset="era5", start="2024-01-01", workdir="cache")) == {
        "start": "2024-01-01", "workdir": str(tmp_path / "cache")}


def test_listen_address(monkeypatch):
    """127.0.0.1 unless --host or AI4EU_HOST says otherwise; the image listens on every interface."""
    monkeypatch.delenv("AI4EU_HOST", raising=False)
    assert listen_host() == "127.0.0.1"
    monkeypatch.setenv("AI4EU_HOST", "::")
    assert (listen_host(), listen_host("10.0.0.5")) == ("::", "10.0.0.5")
    assert (listen_address("::", 8061), listen_address("[::1]", 1), listen_address("0.0.0.0", 8061)) == (
        "[::]:8061", "[::1]:1", "0.0.0.0:8061")
    dockerfile = (REPO / "images" / "ai4eu" / "Dockerfile").read_text()
    assert re.search(r"^\s+AI4EU_HOST=:: \\$", dockerfile, re.M)


def _serve(name: str):
    server, port, api = make_server(name, port=0)
    server.start()
    return server, grpc.insecure_channel(f"127.0.0.1:{port}"), api


def test_broker_lists_the_products_then_says_not_found(tmp_path, monkeypatch):
    """Each Next answers with S2-preprocess's request for the next product (parameters from
    AI4EU_PARAMS, an output folder per product), NOT_FOUND after the last; the list is read again
    on the call after that, here from the default file in the shared folder."""
    monkeypatch.setenv("SHARED_FOLDER_PATH", str(tmp_path))
    monkeypatch.setenv("AI4EU_PRODUCTS", "a.zip,\nin/b.zip")
    monkeypatch.setenv("AI4EU_PARAMS", json.dumps({"resolution": 20, "bands": ["B2", "B8"], "toa": True}))
    monkeypatch.setenv("AI4EU_OUTPUT_PATH", "ard")
    server, channel, api = _serve("product-broker")
    try:
        stub, empty = api.client(channel), api.messages["Empty"]
        replies = [stub.Next(empty(), timeout=30) for _ in range(2)]
        with pytest.raises(grpc.RpcError) as e:
            stub.Next(empty(), timeout=30)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and e.value.details() == "no more products (2 sent)"
        monkeypatch.delenv("AI4EU_PRODUCTS")
        monkeypatch.delenv("AI4EU_PARAMS")
        with pytest.raises(grpc.RpcError) as e:
            stub.Next(empty(), timeout=30)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert e.value.details() == "AI4EU_PRODUCTS: no file products.txt in the shared folder"
        (tmp_path / "products.txt").write_text("# the earlier date first\nc.zip\n\n")
        again = stub.Next(empty(), timeout=30)
        monkeypatch.setenv("AI4EU_PARAMS", '{"resolution": -1}')
        with pytest.raises(grpc.RpcError):
            stub.Next(empty(), timeout=30)  # the end of the second list
        with pytest.raises(grpc.RpcError) as e:
            stub.Next(empty(), timeout=30)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert e.value.details().startswith("AI4EU_PARAMS: invalid value -1")
    finally:
        channel.close()
        server.stop(0)
    assert [(r.input, r.output_path) for r in replies] == [("a.zip", "ard/product-0001"),
                                                           ("in/b.zip", "ard/product-0002")]
    assert (replies[0].resolution, replies[0].bands, replies[0].toa, replies[0].cloudmask) == (20.0, "B2,B8", True, "")
    assert (again.input, again.output_path, again.resolution) == ("c.zip", "ard/product-0001", 0.0)
    assert type(replies[0]).DESCRIPTOR.full_name == "S2PreprocessRequest"


def test_blueprint_matches_the_models():
    """Every node names an rpc of its model's proto with its messages and streaming, and every link
    joins an output to an input of the same message, declared identically in both protos."""
    blueprint = json.loads((AI4EU / "blueprint.json").read_text())
    assert blueprint["type"] == "pipeline-topology/v2"
    models_ = blueprint_models()
    apis = {c: load_api(m) for c, m in models_.items()}
    docker = {d["container_name"]: d for d in json.loads((AI4EU / "dockerinfo.json").read_text())["docker_info_list"]}
    assert set(docker) == set(models_) and all(d["port"] == "8061" for d in docker.values())
    assert models_ == {"product-broker": "product-broker", "s2-preprocess": "S2-preprocess", "s2-cd": "S2-CD"}
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
                sent, taken = DescriptorProto(), DescriptorProto()
                method.output_type.CopyToProto(sent)
                downstream.input_type.CopyToProto(taken)
                assert sent == taken, (node["container_name"], target["container_name"])
    assert links == 2


def test_blueprint_runs_broker_s2_preprocess_and_s2_change_detection(tmp_path, monkeypatch):
    """The test plays the orchestrator of blueprint.json with the messages of the merged proto (one
    module for all models, as the orchestrator generates it): the broker's requests go as they are
    to S2-preprocess, whose replies stream as they are into the change detection's Compare."""
    shared = tmp_path / "shared"
    first, second = write_pair(shared)
    monkeypatch.setenv("SHARED_FOLDER_PATH", str(shared))
    monkeypatch.setenv("AI4EU_PRODUCTS", ",".join(str(p.relative_to(shared)) for p in (first, second)))
    monkeypatch.setenv("AI4EU_PARAMS", json.dumps({"resolution": 20, "cloudmask": "L2A"}))
    monkeypatch.setenv("AI4EU_OUTPUT_PATH", "ard")
    merged = merged_apis(merge_protos(blueprint_protofiles()))
    protos = blueprint_protofiles()
    servers = {c: _serve(m) for c, m in blueprint_models().items()}
    try:
        stubs = {}
        for container, (_, channel, _) in servers.items():
            service = re.search(r"^service (\w+)", protos[f"{container}.proto"], re.M)[1]
            stubs[container] = merged[service].client(channel)
        empty = merged["ProductBrokerService"].messages["Empty"]
        requests = []
        while True:
            try:
                requests.append(stubs["product-broker"].Next(empty(), timeout=30))
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.NOT_FOUND
                break
        replies = [stubs["s2-preprocess"].Run(r, timeout=120) for r in requests]
        # S2-CD's own parameters and output folder (its container's environment)
        monkeypatch.setenv("AI4EU_PARAMS", json.dumps({"resolution": 20, "projection": "UTM(Auto)",
                                                       "numberClasses": 2}))
        monkeypatch.setenv("AI4EU_OUTPUT_PATH", "changes")
        (change,) = list(stubs["s2-cd"].Compare(iter(replies), timeout=300))
    finally:
        for server, channel, _ in servers.values():
            channel.close()
            server.stop(0)
    assert [Path(r.product).parent for r in replies] == [shared / "ard" / "product-0001",
                                                         shared / "ard" / "product-0002"]
    assert type(change).DESCRIPTOR.full_name == "S2CdCompareResponse"
    assert Path(change.product).parent == shared / "changes" / "pair-0001"
    with rasterio.open(change.product) as ds:
        classes = ds.read(1)
        assert ds.res == (20.0, 20.0) and ds.crs.to_epsg() == 32629
    assert set(np.unique(classes)) - {0, 255} <= {1, 2} and (classes == 1).any() | (classes == 2).any()
    assert json.loads(Path(change.run_record).read_text())["inputs"]


def test_compare_refuses_bad_parameters(monkeypatch):
    monkeypatch.setenv("AI4EU_PARAMS", '{"numberClasses": 0}')
    server, channel, api = _serve("S2-CD")
    try:
        with pytest.raises(grpc.RpcError) as e:
            list(api.client(channel).Compare(iter([api.messages["S2PreprocessResponse"](product="a.tif")]),
                                             timeout=60))
    finally:
        channel.close()
        server.stop(0)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert e.value.details().startswith("AI4EU_PARAMS: invalid value 0 for parameter 'numberClasses'")
