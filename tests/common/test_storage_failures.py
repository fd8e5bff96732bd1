"""How storage fails: malformed URIs and settings, an endpoint that never answers, and secrets
kept out of every message and log line. Each failure is one line of the right class
(:class:`ServiceError`, exit 2: the user can fix it; :class:`EnvironmentFailure`, exit 3: the
object store or the network failed)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from components.common import contract, storage
from components.common.errors import EnvironmentFailure, ServiceError
from tests.fixtures.black_hole import BlackHole, FullBacklog
from tests.fixtures.storage_env import bucket, clean_env, s3_env  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[2]
AK = "AKIAEXAMPLEUSER"
SECRET = "Sup3rS3cretValue"
FAST = {"EO_S3_CONNECT_TIMEOUT": "0.5", "EO_S3_READ_TIMEOUT": "0.5", "EO_S3_RETRIES": "1"}


def _failure(call, cls) -> str:
    """The message of the failure ``call()`` raises, checked to be one clean line of ``cls``."""
    with pytest.raises(ServiceError) as info:
        call()
    exc = info.value
    assert type(exc) is cls, f"{type(exc).__name__}: {exc}"
    text = str(exc)
    assert exc.one_line() == text, repr(text)
    assert not [c for c in text if ord(c) < 32 or ord(c) == 127], repr(text)
    return text


def _within(seconds: float, call):
    """``call()`` in a thread; fails when it has not returned within ``seconds``."""
    outcome: dict = {}

    def body():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    start = time.monotonic()
    worker = threading.Thread(target=body, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"no answer within {seconds} s"
    outcome["seconds"] = time.monotonic() - start
    return outcome


# ------------------------------------------------------------------------------------------
# Bad URIs and settings: one line, the right class, no secret


def _fetch(uri):
    return lambda tmp: storage.fetch_input(uri, tmp / "work")


def _check(uri):
    return lambda tmp: storage.check_writable(uri)


def _publish(uri):
    def call(tmp):
        src = tmp / "src"
        src.mkdir(exist_ok=True)
        (src / "a.txt").write_text("a")
        return storage.publish(src, uri)
    return call


REFUSED = "http://127.0.0.1:1"  # nothing listens: a request that got through would fail later
CASES = [
    # (id, environment, call, class, expected in the line, never in the line)
    ("dot-dot segment", {}, _fetch("s3://inbox/prods/../prods/full.zip"), ServiceError,
     ["s3://inbox/prods/../prods/full.zip", "'..'"], []),
    ("dot segment", {}, _check("s3://inbox/out/./run1"), ServiceError,
     ["s3://inbox/out/./run1", "'.'"], []),
    ("empty segment", {}, _fetch("s3://inbox/a//b.zip"), ServiceError,
     ["s3://inbox/a//b.zip", "empty"], []),
    ("leading slash", {}, _publish("s3://inbox//out"), ServiceError,
     ["s3://inbox//out", "empty"], []),
    ("NUL in key", {}, _fetch("s3://inbox/a\x00b.zip"), ServiceError,
     ["control character", r"\x00"], []),
    ("newline in key", {}, _fetch("s3://inbox/a\nb.zip"), ServiceError,
     ["control character", r"\n"], []),
    ("tab in key", {}, _check("s3://inbox/out\trun"), ServiceError,
     ["control character", r"\t"], []),
    ("key over 1024 bytes", {}, _fetch("s3://inbox/" + "k" * 1025), ServiceError,
     ["1025 bytes", "1024"], []),
    ("multi-byte key over 1024 bytes", {}, _fetch("s3://inbox/" + "é" * 600), ServiceError,
     ["1200 bytes", "1024"], []),
    ("credentials in the s3 URI", {}, _fetch(f"s3://{AK}:{SECRET}@inbox/x.zip"), ServiceError,
     ["s3://***@inbox/x.zip"], [SECRET, AK]),
    ("credentials in an unreachable endpoint", {"S3_ENDPOINT_URL": f"http://{AK}:{SECRET}@127.0.0.1:1"},
     _fetch("s3://inbox/x.zip"), EnvironmentFailure,
     ["cannot reach S3 endpoint http://***@127.0.0.1:1", "s3://inbox/x.zip"], [SECRET, AK]),
    ("credentials in an endpoint of another scheme", {"S3_ENDPOINT_URL": f"ftp://{AK}:{SECRET}@store:21"},
     _check("s3://inbox/out"), ServiceError, ["S3_ENDPOINT_URL", "ftp://***@store:21"], [SECRET, AK]),
    ("credentials in an endpoint with a bad port", {"S3_ENDPOINT_URL": f"http://{AK}:{SECRET}@store:99999"},
     _check("s3://inbox/out"), ServiceError, ["S3_ENDPOINT_URL", "http://***@store:99999"],
     [SECRET, AK]),
    ("presigned query in the endpoint",
     {"S3_ENDPOINT_URL": f"https://store.example/eo?X-Amz-Credential={AK}%2F20240101&X-Amz-Signature={SECRET}"},
     _check("s3://inbox/out"), ServiceError, ["S3_ENDPOINT_URL", "X-Amz-Signature=***"], [SECRET, AK]),
    ("presigned URL as an input", {},
     _fetch(f"https://store.example/x.zip?X-Amz-Credential={AK}%2F20240101&X-Amz-Signature={SECRET}"),
     ServiceError, ["input not found", "X-Amz-Signature=***", "X-Amz-Credential=***"], [SECRET, AK]),
    ("connect timeout not a number", {"EO_S3_CONNECT_TIMEOUT": "abc"}, _check("s3://inbox/out"),
     ServiceError, ["EO_S3_CONNECT_TIMEOUT", "'abc'"], []),
    ("read timeout zero", {"EO_S3_READ_TIMEOUT": "0"}, _fetch("s3://inbox/x.zip"), ServiceError,
     ["EO_S3_READ_TIMEOUT", "'0'"], []),
    ("read timeout negative", {"EO_S3_READ_TIMEOUT": "-5"}, _fetch("s3://inbox/x.zip"), ServiceError,
     ["EO_S3_READ_TIMEOUT", "'-5'"], []),
    ("read timeout nan", {"EO_S3_READ_TIMEOUT": "nan"}, _publish("s3://inbox/out"), ServiceError,
     ["EO_S3_READ_TIMEOUT", "'nan'"], []),
    ("retries fractional", {"EO_S3_RETRIES": "2.5"}, _check("s3://inbox/out"), ServiceError,
     ["EO_S3_RETRIES", "'2.5'"], []),
    ("retries negative", {"EO_S3_RETRIES": "-1"}, _check("s3://inbox/out"), ServiceError,
     ["EO_S3_RETRIES", "'-1'"], []),
    ("retries too many", {"EO_S3_RETRIES": "1000"}, _check("s3://inbox/out"), ServiceError,
     ["EO_S3_RETRIES", "'1000'"], []),
    ("unknown host", {"S3_ENDPOINT_URL": "http://no-such-host.invalid:9000", "EO_S3_RETRIES": "0"},
     _fetch("s3://inbox/x.zip"), EnvironmentFailure,
     ["S3 endpoint http://no-such-host.invalid:9000", "s3://inbox/x.zip"], []),
    ("half the keys", {"AWS_SECRET_ACCESS_KEY": SECRET}, _check("s3://inbox/out"), ServiceError,
     ["AWS_ACCESS_KEY_ID"], [SECRET]),
]


@pytest.mark.parametrize("env, call, cls, expected, forbidden",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_uri_or_setting(clean_env, tmp_path, capsys, env, call, cls, expected, forbidden):
    clean_env.setenv("S3_ENDPOINT_URL", REFUSED)
    clean_env.setenv("EO_S3_RETRIES", "0")
    for name, value in env.items():
        clean_env.setenv(name, value)
    text = _failure(lambda: call(tmp_path), cls)
    for part in expected:
        assert part in text, text
    for part in forbidden:
        assert part not in text, text

    # the same through the failure contract: one line on stderr, the class's exit status
    assert contract.exit_status("svc", lambda: call(tmp_path)) == cls.exit_code
    err = capsys.readouterr().err  # log lines too, when a handler writes them there
    lines = [line for line in err.splitlines() if line.startswith("svc: error: ")]
    assert len(lines) == 1 and err.splitlines()[-1] == lines[0], err
    assert not any(part in err for part in forbidden), err


def test_keys_that_are_valid():
    assert storage.split_s3("s3://inbox/a/b c/ü.zip") == ("inbox", "a/b c/ü.zip")
    assert storage.split_s3("s3://inbox/x.SAFE/") == ("inbox", "x.SAFE/")
    assert storage.split_s3("s3://inbox/" + "k" * 1024) == ("inbox", "k" * 1024)
    assert storage.split_s3("s3://inbox/a..b/.hidden/c.") == ("inbox", "a..b/.hidden/c.")


def test_timeout_settings(clean_env):
    import urllib3

    clean_env.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:8333")
    http = storage.s3_client()._http
    timeout, retries = http.connection_pool_kw["timeout"], http.connection_pool_kw["retries"]
    assert (timeout.connect_timeout, timeout.read_timeout) == (10.0, 60.0)
    assert isinstance(retries, urllib3.Retry) and retries.total == 3
    assert not retries.respect_retry_after_header  # a Retry-After of an hour would not be bounded

    clean_env.setenv("EO_S3_CONNECT_TIMEOUT", "2.5")
    clean_env.setenv("EO_S3_READ_TIMEOUT", " 30 ")
    clean_env.setenv("EO_S3_RETRIES", "0")
    http = storage.s3_client()._http
    timeout, retries = http.connection_pool_kw["timeout"], http.connection_pool_kw["retries"]
    assert (timeout.connect_timeout, timeout.read_timeout, retries.total) == (2.5, 30.0, 0)


# ------------------------------------------------------------------------------------------
# An endpoint that accepts connections and never answers


@pytest.mark.parametrize("operation", ["fetch", "check", "publish"])
def test_black_hole_endpoint(clean_env, tmp_path, operation):
    with BlackHole() as hole:
        clean_env.setenv("S3_ENDPOINT_URL", f"http://{AK}:{SECRET}@127.0.0.1:{hole.port}")
        for name, value in {**FAST, "AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SECRET,
                            "AWS_REGION": "us-east-1"}.items():
            clean_env.setenv(name, value)
        call = {"fetch": _fetch, "check": _check, "publish": _publish}[operation]("s3://inbox/out")
        outcome = _within(15, lambda: call(tmp_path))
        assert outcome["seconds"] < 5, outcome
        exc = outcome.get("error")
        assert type(exc) is EnvironmentFailure, repr(exc)
        text = exc.one_line()
        assert f"S3 endpoint http://***@127.0.0.1:{hole.port} did not answer" in text, text
        assert "s3://inbox/out" in text and "EO_S3_READ_TIMEOUT" in text, text
        assert SECRET not in text and AK not in text
        assert hole.accepted >= 2  # the one retry went out on a new connection


def test_black_hole_exit_status(clean_env, tmp_path):
    """The whole process: one line on stderr, exit status 3, within a few seconds."""
    with BlackHole() as hole:
        endpoint = f"http://{AK}:{SECRET}@127.0.0.1:{hole.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "EO_S3_"))}
        env.update(FAST, S3_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=AK,
                   AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1",
                   PYTHONPATH=str(REPO))
        script = ("import sys\n"
                  "from components.common import storage\n"
                  "from components.common.contract import exit_status\n"
                  "sys.exit(exit_status('S2-preprocess', "
                  "lambda: storage.fetch_input('s3://inbox/S2A.zip', 'work')))\n")
        start = time.monotonic()
        try:
            done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("no answer within 20 s")
        seconds = time.monotonic() - start
    assert done.returncode == EnvironmentFailure.exit_code, done.stderr
    lines = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert len(lines) == 1 and done.stderr.splitlines()[-1] == lines[0], done.stderr
    assert SECRET not in done.stderr and AK not in done.stderr
    assert lines[0].startswith("S2-preprocess: error: S3 endpoint "
                               f"http://***@127.0.0.1:{hole.port} did not answer"), lines
    assert "s3://inbox/S2A.zip" in lines[0] and SECRET not in lines[0] and AK not in lines[0]
    assert seconds < 10


@pytest.mark.skipif(sys.platform != "linux", reason="relies on Linux dropping SYNs to a full accept queue")
def test_endpoint_that_never_accepts(clean_env, tmp_path):
    with FullBacklog() as host:
        clean_env.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{host.port}")
        for name, value in FAST.items():
            clean_env.setenv(name, value)
        outcome = _within(15, lambda: storage.check_writable("s3://inbox/out"))
    assert outcome["seconds"] < 5, outcome
    exc = outcome.get("error")
    assert type(exc) is EnvironmentFailure, repr(exc)
    assert (f"S3 endpoint http://127.0.0.1:{host.port} did not accept a connection"
            in exc.one_line()), exc.one_line()
    assert "EO_S3_CONNECT_TIMEOUT" in exc.one_line()


@pytest.mark.s3
def test_server_errors_after_retries(s3_env, bucket, tmp_path, monkeypatch):
    """An object store that keeps answering 503 is the environment's failure, not the user's."""
    from tests.fixtures.s3_relay import FaultyProxy

    storage.publish(_stage(tmp_path / "src"), f"s3://{bucket}/p")
    with FaultyProxy(s3_env.ports["s3"], fail=lambda line: line.startswith("GET ")) as proxy:
        monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("EO_S3_RETRIES", "2")
        uri = f"s3://{bucket}/p/a.txt"
        text = _failure(lambda: storage.fetch_input(uri, tmp_path / "work"), EnvironmentFailure)
    assert f"S3 endpoint http://127.0.0.1:{proxy.port}" in text and uri in text, text
    assert "503" in text, text
    assert len(proxy.spoiled) == 3  # the first try and two retries


@pytest.mark.s3
def test_missing_and_denied_stay_user_errors(s3_env, bucket, tmp_path, monkeypatch):
    storage.publish(_stage(tmp_path / "src"), f"s3://{bucket}/p")
    _failure(lambda: storage.fetch_input(f"s3://{bucket}/nope.zip", tmp_path / "w"), ServiceError)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    _failure(lambda: storage.fetch_input(f"s3://{bucket}/p/a.txt", tmp_path / "w"), ServiceError)


def _stage(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    return folder


# ------------------------------------------------------------------------------------------
# Secrets out of messages and logs


@pytest.mark.parametrize("text, shown", [
    ("http://user:pass@host:9000", "http://***@host:9000"),
    ("https://AKIA123@s3.example.org/b", "https://***@s3.example.org/b"),
    ("s3://ak:sk@bucket/key", "s3://***@bucket/key"),
    ("http://host:9000", "http://host:9000"),
    ("s3://bucket/a@b/c.zip", "s3://bucket/a@b/c.zip"),
    ("https://h/o.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F2024"
     "&X-Amz-Date=20240101T000000Z&X-Amz-Signature=deadbeef",
     "https://h/o.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***"
     "&X-Amz-Date=20240101T000000Z&X-Amz-Signature=***"),
    ("https://h/o?x-amz-security-token=tok&AWSAccessKeyId=AK&Signature=sig&Expires=1",
     "https://h/o?x-amz-security-token=***&AWSAccessKeyId=***&Signature=***&Expires=1"),
    ("cannot reach http://u:p@h:1 and https://h/x?sig=abc: refused",
     "cannot reach http://***@h:1 and https://h/x?sig=***: refused"),
    ("/data/in/x.zip", "/data/in/x.zip"),
])
def test_redact(clean_env, text, shown):
    assert storage.redact(text) == shown


def test_redact_configured_secrets(clean_env):
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    clean_env.setenv("AWS_SESSION_TOKEN", "SessionTokenValue123")
    assert storage.redact(f"echoed {SECRET} and SessionTokenValue123") == "echoed *** and ***"


def test_credentials_in_endpoint_are_not_logged(clean_env, caplog):
    clean_env.setenv("S3_ENDPOINT_URL", f"http://{AK}:{SECRET}@127.0.0.1:8333")
    with caplog.at_level(logging.DEBUG, logger="components.common.storage"):
        storage.s3_client()  # anonymous: the user name and password in the URL are not used
    text = caplog.text
    assert "http://***@127.0.0.1:8333" in text, text
    assert SECRET not in text and AK not in text


@pytest.mark.s3
def test_no_secret_in_any_message_or_log_line(s3_env, bucket, tmp_path, monkeypatch, caplog):
    """A round trip and an interrupted download through an endpoint URL with credentials in it:
    neither the failure nor any log record shows them."""
    from tests.fixtures.s3_relay import CuttingProxy

    stage = tmp_path / "stage" / "P.SAFE"
    stage.mkdir(parents=True)
    (stage / "band.jp2").write_bytes(os.urandom(100_000))
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("S3_ENDPOINT_URL", f"http://{AK}:{SECRET}@127.0.0.1:{s3_env.ports['s3']}")
    storage.check_writable(f"s3://{bucket}/cut")
    storage.publish(stage.parent, f"s3://{bucket}/cut")
    storage.fetch_input(f"s3://{bucket}/cut/P.SAFE", tmp_path / "ok")
    with CuttingProxy(s3_env.ports["s3"], cut=lambda line: "band.jp2" in line,
                      max_cuts=storage.TRANSFER_ATTEMPTS) as proxy:
        monkeypatch.setenv("S3_ENDPOINT_URL", f"http://{AK}:{SECRET}@127.0.0.1:{proxy.port}")
        uri = f"s3://{bucket}/cut/P.SAFE/band.jp2"
        text = _failure(lambda: storage.fetch_input(uri, tmp_path / "work"), EnvironmentFailure)
    assert f"http://***@127.0.0.1:{proxy.port}" in text and "band.jp2" in text, text
    records = [r.getMessage() for r in caplog.records]
    assert any("fetching it again" in m for m in records), records
    assert any("***@127.0.0.1" in m for m in records), records
    for message in records + [text, caplog.text]:
        assert SECRET not in message and AK not in message, message
