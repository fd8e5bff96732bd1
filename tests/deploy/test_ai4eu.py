"""AI4EU Experiments: the generated model.proto is self-contained and lints clean with buf, and a
real gRPC client runs a real service through the server."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import rasterio

from components.common.ai4eu import SERVICES, make_server, proto_for
from tests.fixtures.s2_products import write_s2_product

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
    numbers = [int(n) for n in re.findall(r"^\s+\w[\w ]* = (\d+);", text, re.M)]
    entry = SERVICES[service]
    expected = list(range(1, len(entry.inputs) + len(params) + 2))
    assert numbers[: len(numbers) - len(entry.outputs)] == expected
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
    server, port, protos, services = make_server("S2-preprocess", port=0)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = services.S2PreprocessServiceStub(channel)
            reply = stub.Run(protos.RunRequest(input=product.name, output_path="out", resolution=20,
                                               bands="B2,B8", cloudmask="L2A"), timeout=120)
            with rasterio.open(reply.product) as ds:
                assert ds.count == 2 and ds.res == (20.0, 20.0)
            assert Path(reply.product).parent == shared / "out"
            with pytest.raises(grpc.RpcError) as e:
                stub.Run(protos.RunRequest(input=product.name, output_path="out2", bands="B13"), timeout=60)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "invalid value 'B13' for parameter 'bands'" in e.value.details()
            assert not (shared / "out2").exists()
    finally:
        server.stop(0)
