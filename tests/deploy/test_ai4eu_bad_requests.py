"""AI4EU gRPC server: bad requests against a real server.

Every path of a request (inputs, ``output_path``, path parameters, the products of a ``Compare``
stream) and of the server's settings (``AI4EU_PRODUCTS``, ``AI4EU_OUTPUT_PATH``) stays inside
``SHARED_FOLDER_PATH``; a refusal is one line naming the field and its value; a failed request
writes nothing, neither outside the shared folder nor in it. The server listens on the loopback
interface unless ``--host`` / ``AI4EU_HOST`` says otherwise.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from components.common.ai4eu import make_server
from tests.fixtures.s2_products import write_s2_product

REPO = Path(__file__).resolve().parents[2]
AOI = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": {
    "type": "Polygon", "coordinates": [[[-9, 53], [-8, 53], [-8, 54], [-9, 54], [-9, 53]]]}}]}


@dataclass(frozen=True)
class Case:
    id: str
    model: str
    fields: dict = field(default_factory=dict)  # Run's request; Compare: {"products": [...]}
    code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT
    named: tuple[str, ...] = ()  # what the details must name: the field and its value
    env: dict = field(default_factory=dict)
    rpc: str = "Run"


S2 = "S2-preprocess"
IA, FP = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION
LONG = "a" * 2000

CASES = [
    # output_path
    Case("output-dotdot", S2, {"input": "in.zip", "output_path": "../outside/x"},
         named=("output_path", "'../outside/x'")),
    Case("output-dotdot-inside", S2, {"input": "in.zip", "output_path": "out/../../outside/x"},
         named=("output_path", "'out/../../outside/x'")),
    Case("output-absolute", S2, {"input": "in.zip", "output_path": "{outside}/x"},
         named=("output_path", "'{outside}/x'")),
    Case("output-symlink", S2, {"input": "in.zip", "output_path": "escape/x"}, named=("output_path", "'escape/x'")),
    Case("output-empty", S2, {"input": "in.zip", "output_path": ""}, named=("output_path", "''")),
    Case("output-shared-folder", S2, {"input": "in.zip", "output_path": "."}, named=("output_path", "'.'")),
    Case("output-too-long", S2, {"input": "in.zip", "output_path": LONG}, named=("output_path", "'aaaaaaaa")),
    # inputs
    Case("input-dotdot", S2, {"input": "../outside/secret.zip", "output_path": "out"},
         named=("input", "'../outside/secret.zip'")),
    Case("input-absolute", S2, {"input": "{outside}/secret.zip", "output_path": "out"},
         named=("input", "'{outside}/secret.zip'")),
    Case("input-system-file", S2, {"input": "/etc/passwd", "output_path": "out"}, named=("input", "'/etc/passwd'")),
    Case("input-symlink", S2, {"input": "escape.zip", "output_path": "out"}, named=("input", "'escape.zip'")),
    Case("input-file-uri", S2, {"input": "file:///etc/passwd", "output_path": "out"},
         named=("input", "'file:///etc/passwd'")),
    Case("input-nul", S2, {"input": "in\x00.zip", "output_path": "out"}, named=("input", r"'in\x00.zip'")),
    Case("input-empty", S2, {"input": "", "output_path": "out"}, named=("input", "''")),
    Case("input-not-found-deep-output", S2, {"input": "missing.zip", "output_path": "deep/a/b"},
         named=("missing.zip",)),
    # path parameters
    Case("dem-absolute", S2, {"input": "in.zip", "output_path": "out", "dem": "{outside}/dem.tif"},
         named=("dem", "'{outside}/dem.tif'")),
    Case("dem-s3", S2, {"input": "in.zip", "output_path": "out", "dem": "s3://bucket/dem.tif"},
         named=("dem", "'s3://bucket/dem.tif'")),
    Case("aoi-dotdot", S2, {"input": "in.zip", "output_path": "out", "aoi": "../outside/aoi.geojson"},
         named=("aoi", "'../outside/aoi.geojson'")),
    Case("aoi-wkt-lookalike", S2, {"input": "in.zip", "output_path": "out",
                                   "aoi": "POLYGON((0 0))/../../outside/aoi.geojson"},
         named=("aoi", "'POLYGON((0 0))/../../outside/aoi.geojson'")),
    Case("aoi-too-long", S2, {"input": "in.zip", "output_path": "out", "aoi": "POLYGON((" + "0 0," * 20000 + "0 0))"},
         named=("aoi", "'POLYGON((0 0,0 0,")),
    Case("dictionary-system-file", "osm-features", {"input": "in.pbf", "output_path": "out",
                                                    "dictionary": "/etc/passwd"},
         named=("dictionary", "'/etc/passwd'")),
    Case("workdir-outside", "energy-datasets", {"dataset": "era5", "output_path": "out",
                                                "workdir": "../outside/cache"},
         named=("workdir", "'../outside/cache'")),
    Case("val-outside", "train_lstm", {"input_dir": "arrays", "output_path": "out", "val": "{outside}"},
         named=("val", "'{outside}'")),
    # the products of a Compare stream, and the server's own settings
    Case("compare-dotdot", "S2-CD", {"products": ["../outside/a.tif", "b.tif"]}, rpc="Compare",
         named=("product", "'../outside/a.tif'")),
    Case("compare-absolute", "S2-CD", {"products": ["a.tif", "{outside}/b.tif"]}, rpc="Compare",
         named=("product", "'{outside}/b.tif'")),
    Case("compare-output-setting", "S2-CD", {"products": ["a.tif", "b.tif"]}, rpc="Compare", code=FP,
         env={"AI4EU_OUTPUT_PATH": "../outside/cd"}, named=("AI4EU_OUTPUT_PATH", "'../outside/cd'")),
    Case("broker-product", "product-broker", rpc="Next", code=FP,
         env={"AI4EU_PRODUCTS": "a.zip,../outside/secret.zip"}, named=("AI4EU_PRODUCTS", "'../outside/secret.zip'")),
    Case("broker-listing", "product-broker", rpc="Next", code=FP,
         env={"AI4EU_PRODUCTS": "@../outside/list.txt"}, named=("AI4EU_PRODUCTS", "'../outside/list.txt'")),
    Case("broker-output-setting", "product-broker", rpc="Next", code=FP,
         env={"AI4EU_PRODUCTS": "a.zip", "AI4EU_OUTPUT_PATH": "{outside}/ard"},
         named=("AI4EU_OUTPUT_PATH", "'{outside}/ard'")),
]


@pytest.fixture
def area(tmp_path, monkeypatch):
    """tmp/shared (the shared folder) next to tmp/outside, which no request may reach: the
    symbolic links shared/escape and shared/escape.zip point there."""
    shared, outside = tmp_path / "shared", tmp_path / "outside"
    shared.mkdir()
    outside.mkdir()
    (outside / "secret.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    (outside / "aoi.geojson").write_text(json.dumps(AOI))
    (outside / "list.txt").write_text("a.zip\n")
    (shared / "in.zip").write_bytes(b"not a product")
    (shared / "escape").symlink_to(outside, target_is_directory=True)
    (shared / "escape.zip").symlink_to(outside / "secret.zip")
    monkeypatch.setenv("SHARED_FOLDER_PATH", str(shared))
    for name in ("AI4EU_PRODUCTS", "AI4EU_PARAMS", "AI4EU_OUTPUT_PATH"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _tree(root: Path) -> dict[str, object]:
    """Every entry below ``root`` (links not followed) with its content or link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            out[rel] = ("link", os.readlink(p)) if p.is_symlink() else ("dir",) if p.is_dir() else p.read_bytes()
    return out


def _fill(value, root: Path):
    if isinstance(value, str):
        return value.replace("{outside}", str(root / "outside")).replace("{shared}", str(root / "shared"))
    if isinstance(value, list):
        return [_fill(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, root) for k, v in value.items()}
    return value


def _call(case: Case, root: Path):
    """The case's rpc against a real server; the grpc.RpcError it ends with."""
    server, port, api = make_server(case.model, port=0)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = api.client(channel)
            with pytest.raises(grpc.RpcError) as e:
                if case.rpc == "Run":
                    request = api.messages[api.methods["Run"].input_type.name]
                    stub.Run(request(**_fill(case.fields, root)), timeout=60)
                elif case.rpc == "Compare":
                    message = api.messages[api.methods["Compare"].input_type.name]
                    list(stub.Compare(iter([message(product=p) for p in _fill(case.fields["products"], root)]),
                                      timeout=60))
                else:
                    stub.Next(api.messages["Empty"](), timeout=60)
    finally:
        server.stop(0)
    return e.value


def _check_details(details: str, named) -> None:
    assert details and "\n" not in details and details == details.strip(), repr(details)
    for text in named:
        assert text in details, (text, details)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_request_is_refused_in_one_line_and_writes_nothing(case, area, monkeypatch):
    for name, value in case.env.items():
        monkeypatch.setenv(name, _fill(value, area))
    before = _tree(area)
    error = _call(case, area)
    assert error.code() == case.code, (error.code(), error.details())
    _check_details(error.details(), _fill(list(case.named), area))
    assert _tree(area) == before


def test_oversize_request_is_refused(area):
    """Large data goes through the shared folder: a message over the server's limit (1 MiB) is
    refused before it is read (here a valid request with 2 MiB in a field the service ignores)."""
    server, port, api = make_server(S2, port=0)
    server.start()
    request = api.messages["S2PreprocessRequest"](input="in.zip", output_path="out").SerializeToString()
    padding = b"\xba\x3e\x80\x80\x80\x01" + bytes(2 << 20)  # field 999, 2 MiB long
    before = _tree(area)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as e:
                channel.unary_unary("/S2PreprocessService/Run")(request + padding, timeout=30)
    finally:
        server.stop(0)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value.details()
    _check_details(e.value.details(), ("larger than max",))
    assert _tree(area) == before


def test_undecodable_request_is_an_invalid_argument(area):
    """A string field that is not UTF-8: the request cannot be parsed, which is the caller's
    mistake, not the server's."""
    server, port, _ = make_server(S2, port=0)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            raw = channel.unary_unary("/S2PreprocessService/Run")
            with pytest.raises(grpc.RpcError) as e:
                raw(b"\x0a\x01\xff", timeout=30)  # field 1 (input), one byte 0xff
    finally:
        server.stop(0)
    assert e.value.code() == IA
    _check_details(e.value.details(), ("S2PreprocessRequest",))


@pytest.mark.parametrize("raised, code, details", [
    (OSError(errno.ENOSPC, "No space left on device", "/shared/out/x.tif"), grpc.StatusCode.UNAVAILABLE,
     "no space left on the device (/shared/out/x.tif)"),
    (KeyError("a private detail"), grpc.StatusCode.INTERNAL, "internal error"),
], ids=["environment", "defect"])
def test_failures_map_through_the_contract(raised, code, details, area, monkeypatch, caplog):
    """The environment failing is UNAVAILABLE with its line, a defect INTERNAL with "internal
    error" (its traceback in the server's log only); the output folder the run created is gone."""
    def failing(input_uri, params, outdir):
        Path(outdir).mkdir(parents=True)
        raise raised

    monkeypatch.setattr("components.s2_preprocess.service.run", failing)
    before = _tree(area)
    with caplog.at_level(logging.ERROR):
        error = _call(Case("failing", S2, {"input": "in.zip", "output_path": "new/out"}), area)
    assert (error.code(), error.details()) == (code, details)
    assert _tree(area) == before
    if code == grpc.StatusCode.INTERNAL:
        assert any(r.exc_info and r.exc_info[1] is raised for r in caplog.records)


def test_paths_inside_the_shared_folder_are_taken(area):
    """Absolute paths inside the shared folder (as the replies of an upstream service carry them)
    and symbolic links that stay inside it are taken; the links are resolved."""
    shared = area / "shared"
    product = write_s2_product(shared / "products", size_10m=60)
    (shared / "latest").symlink_to(product, target_is_directory=True)
    (shared / "results").mkdir()
    (shared / "out").symlink_to(shared / "results", target_is_directory=True)
    server, port, api = make_server(S2, port=0)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = api.client(channel).Run(api.messages["S2PreprocessRequest"](
                input=str(shared / "latest"), output_path="out/run", resolution=60, bands="B2"), timeout=120)
    finally:
        server.stop(0)
    assert Path(reply.product).parent == shared / "results" / "run"
    assert json.loads(Path(reply.run_record).read_text())["inputs"]


# --- where the server listens -------------------------------------------------------------------

def _reachable(address: str, seconds: float) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=seconds)
            return True
        except grpc.FutureTimeoutError:
            return False


def _start_cli(args: list[str], env: dict, tmp_path: Path):
    """``eo-ai4eu serve`` in a process of its own; the process and the port it logs."""
    environ = {k: v for k, v in os.environ.items() if k not in ("AI4EU_HOST", "AI4EU_SERVICE")}
    environ.update(env, SHARED_FOLDER_PATH=str(tmp_path), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "components.common.ai4eu", "serve", S2, "--port", "0", *args],
                            cwd=REPO, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found, lines = {}, []

    def read():
        for line in proc.stderr:
            lines.append(line)
            m = re.search(r"listening on (\S+):(\d+)\b", line)
            if m and "port" not in found:
                found.update(host=m[1], port=int(m[2]))
                ready.set()
        ready.set()

    ready = threading.Event()
    threading.Thread(target=read, daemon=True).start()
    ready.wait(60)
    if "port" not in found:
        proc.kill()
        pytest.fail("the server did not say where it listens: " + "".join(lines))
    return proc, found


def _stop(proc) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()


needs_linux = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="needs the whole of 127.0.0.0/8 on the loopback interface (Linux)")


@needs_linux
def test_default_bind_is_loopback_only(tmp_path):
    """Without --host or AI4EU_HOST the server listens on 127.0.0.1 only: another local address
    (127.0.0.2, the same interface) does not reach it. SIGTERM stops it."""
    proc, found = _start_cli([], {}, tmp_path)
    try:
        assert found["host"] == "127.0.0.1"
        assert _reachable(f"127.0.0.1:{found['port']}", 10)
        assert not _reachable(f"127.0.0.2:{found['port']}", 2)
    finally:
        status = _stop(proc)
    assert status == 128 + signal.SIGTERM


@needs_linux
@pytest.mark.parametrize("args, env, host, reached, unreached", [
    ([], {"AI4EU_HOST": "0.0.0.0"}, "0.0.0.0", ("127.0.0.1", "127.0.0.2"), ()),
    ([], {"AI4EU_HOST": "::"}, "[::]", ("127.0.0.1", "127.0.0.2"), ()),  # as in the images
    (["--host", "127.0.0.2"], {"AI4EU_HOST": "0.0.0.0"}, "127.0.0.2", ("127.0.0.2",), ("127.0.0.1",)),
], ids=["env", "env-every-interface", "option-over-env"])
def test_host_option_and_environment_choose_the_address(args, env, host, reached, unreached, tmp_path):
    proc, found = _start_cli(args, env, tmp_path)
    try:
        assert found["host"] == host
        for address in reached:
            assert _reachable(f"{address}:{found['port']}", 10), address
        for address in unreached:
            assert not _reachable(f"{address}:{found['port']}", 2), address
    finally:
        _stop(proc)
