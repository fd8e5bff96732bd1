"""Inputs and outputs as local paths or ``s3://bucket/key`` URIs.

Object storage is read and written with the ``minio`` client; the endpoint and the keys come
from the environment (see :func:`s3_client`). Every service calls :func:`fetch_input` for its
inputs, :func:`output_folder` (or :func:`check_writable`) on its output destination before doing
any work, and :func:`publish` once its products are complete.

Failures
    Each failure is one line (:mod:`components.common.errors`). :class:`ServiceError` (exit 2)
    is what the user can fix: a malformed URI or setting, a missing object or bucket, refused
    credentials. :class:`EnvironmentFailure` (exit 3) is the object store or the network
    failing: connection refused, host name not found, no answer within the timeouts, server
    errors (5xx) after the retries, a transfer cut off again and again. A key is refused before
    any request when it has ``.`` or ``..`` segments, empty segments (``a//b``; a trailing ``/``
    marks a prefix and is allowed), control characters or more than 1024 bytes: S3 would store
    such keys as they are, but they cannot be fetched back into a folder unchanged.

Timeouts (environment variables, read by every :func:`s3_client` call)
    ``EO_S3_CONNECT_TIMEOUT`` (seconds, default 10): to open a connection. An object store in
    the same cluster or region connects in milliseconds; 10 s still covers a slow DNS answer
    and two lost SYN packets (resent after 1 s and 3 s).
    ``EO_S3_READ_TIMEOUT`` (seconds, default 60): the longest silence of an open connection,
    waiting for an answer or between two pieces of a body. S3 servers answer within a second
    and stream without pauses; 60 s leaves room for a loaded server completing a large upload,
    and a hung one is noticed within a minute.
    ``EO_S3_RETRIES`` (0 to 20, default 3): further attempts of a request that got no answer,
    a refused connection or a 5xx status, after pauses of 0, 2, 4, 8, ... s (at most 10 s
    each): about 6 s in all with the default, enough for a restarting server or a load
    balancer switching over. A ``Retry-After`` header is not obeyed: it could ask for hours.
    A request therefore fails after at most ``(retries + 1) x (connect + read)`` seconds plus
    the pauses (4 min 46 s with the defaults, 4 min 6 s for a server that accepts connections
    and never answers), with one line naming the endpoint, the URI and what did not answer.
    Values that are not numbers in range stop the run at once (exit 2).

Secrets
    :func:`redact` removes user names and passwords from URLs (``http://***@host``), the values
    of signing parameters in query strings (``X-Amz-Signature=***``, ``X-Amz-Credential=***``,
    tokens) and the configured secret key and session token from a text. Every message of the
    failures raised here, every URI or endpoint they echo, and every line of this module's log
    goes through it (the logger also has a filter that applies it). A user name and password in
    the endpoint URL are not used: the keys come from the variables listed in :func:`s3_client`.

Publishing (all or nothing, as far as object storage allows)
    :func:`publish` checks every destination key first, then uploads the files one by one under
    their final keys: the data files, then the JSON metadata (STAC items, which name the data
    files), a top-level ``run.json`` (the run record) last, so that its presence means the
    product is complete. When an upload fails or the run is stopped (:class:`Interrupted`
    on SIGTERM/SIGINT, or any other ``BaseException``) the objects this publish wrote are
    deleted again, a multipart upload in flight is aborted, and the bucket is removed when this
    process created it (the write check or the publish) and it is empty; then the failure goes
    on. Objects that the failed publish had already overwritten are gone too: the destination
    holds no product rather than a mix of two runs. The cleanup makes each request once, gives
    up at its first failure (an endpoint that stopped answering is not waited for again and
    again) and says in a warning what it left. A local destination is handled the same way:
    files placed by the failed publish and folders it created are removed.

    The write check of an ``s3://`` destination creates its bucket when it is missing (that is
    what proves the keys may create it) and remembers it; :func:`output_folder` removes it again
    when the run then fails and the bucket is still empty, as :func:`publish` does when its own
    upload fails. A caller that uses :func:`check_writable` without :func:`output_folder` calls
    :func:`remove_created_bucket` on its failure path. "Empty" is checked by listing just before
    the removal (some servers, SeaweedFS among them, delete a bucket with its objects).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import mimetypes
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Iterator
from urllib.parse import urlsplit

from .contract import checkpoint
from .errors import EnvironmentFailure, ServiceError, from_os_error
from .redaction import RedactingFilter, redact

if TYPE_CHECKING:
    import minio

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"
ENDPOINT_VARIABLES = ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")

CONNECT_TIMEOUT_VARIABLE, CONNECT_TIMEOUT_S = "EO_S3_CONNECT_TIMEOUT", 10.0
READ_TIMEOUT_VARIABLE, READ_TIMEOUT_S = "EO_S3_READ_TIMEOUT", 60.0
RETRIES_VARIABLE, RETRIES = "EO_S3_RETRIES", 3
MAX_TIMEOUT_S, MAX_RETRIES = 3600.0, 20
_BACKOFF_FACTOR_S, _BACKOFF_MAX_S = 1.0, 10.0
MAX_KEY_BYTES = 1024

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_CREDENTIAL_CODES = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied",
                     "InvalidToken", "ExpiredToken", "AllAccessDisabled",
                     "AuthorizationHeaderMalformed", "InvalidSecurity"}
_MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"}
_SERVER_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout",
                 "RequestTimeTooSkewed", "OperationAborted", "XMinioServerNotInitialized"}
_CHUNK = 1024 * 1024
TRANSFER_ATTEMPTS = 3
_PROGRESS_EVERY_S = 30.0
_RUN_RECORD = "run.json"

log.addFilter(RedactingFilter())


def _shown(text, limit: int = 300) -> str:
    """``text`` redacted, on one line (control characters escaped), at most ``limit`` characters."""
    text = redact(text)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(text) > limit:
        text = f"{text[:limit - 60]}...{text[-50:]}"
    return text


def _quoted(text) -> str:
    return f"'{_shown(text)}'"


def _one_line(text) -> str:
    return " ".join(_shown(text, 400).split())


# ------------------------------------------------------------------------------------------
# URIs


def is_s3(uri) -> bool:
    """True when ``uri`` is an ``s3://`` URI (anything else is a local path)."""
    return isinstance(uri, str) and uri[:5].lower() == S3_SCHEME


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``. The key may be empty, and may end
    with ``/`` (a prefix); see :func:`check_key` for the keys refused."""
    if not is_s3(uri):
        raise ServiceError(f"not an s3 URI: {_quoted(uri)} (expected s3://bucket/key)")
    bucket, _, key = uri[5:].partition("/")
    if "@" in bucket:
        raise ServiceError(f"malformed s3 URI {_quoted(uri)}: a user name or password does not "
                           "belong in it (the keys come from AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY)")
    if not bucket:
        raise ServiceError(f"malformed s3 URI {_quoted(uri)}: no bucket name "
                           "(expected s3://bucket/key)")
    if not _BUCKET_RE.match(bucket) or any(p in bucket for p in ("..", ".-", "-.")) or _IP_RE.match(bucket):
        raise ServiceError(f"malformed s3 URI {_quoted(uri)}: {_quoted(bucket)} is not a valid "
                           "bucket name (3-63 characters: lower-case letters, digits, '.', '-'; "
                           "no '..', '.-' or '-.'; not an IP address)")
    check_key(key, uri)
    return bucket, key


def check_key(key: str, uri: str) -> None:
    """Refuse an object key that would be misread: ``.``/``..`` or empty segments (a trailing
    ``/`` is allowed), control characters, more than 1024 bytes. ``uri`` names it in the line."""
    if not key:
        return
    problem = None
    bad = [c for c in key if ord(c) < 32 or 127 <= ord(c) < 160]
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # bytes of another encoding on the command line (surrogate escapes)
        raise ServiceError(f"malformed s3 URI {_quoted(uri)}: the key is not valid UTF-8 text") from None
    segments = key.split("/")
    if key.endswith("/"):
        segments = segments[:-1]
    if bad:
        problem = f"the key has a control character {_quoted(bad[0])}"
    elif size > MAX_KEY_BYTES:
        problem = f"the key is {size} bytes long (S3 allows at most {MAX_KEY_BYTES})"
    elif any(s in (".", "..") for s in segments):
        dots = next(s for s in segments if s in (".", ".."))
        problem = (f"the key has a {_quoted(dots)} segment (object keys are not paths: "
                   "write the key without it)")
    elif "" in segments:
        problem = "the key has an empty segment ('//' or a leading '/')"
    if problem:
        raise ServiceError(f"malformed s3 URI {_quoted(uri)}: {problem}")


# ------------------------------------------------------------------------------------------
# Client


@dataclass(frozen=True)
class Limits:
    """Timeouts and retries of every request (see the module's docstring)."""

    connect_s: float = CONNECT_TIMEOUT_S
    read_s: float = READ_TIMEOUT_S
    retries: int = RETRIES

    @property
    def attempts(self) -> int:
        return self.retries + 1


def _seconds_from_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_TIMEOUT_S:  # also refuses nan and inf
        raise ServiceError(f"{name}={_quoted(raw)} is not a number of seconds above 0 and at "
                           f"most {MAX_TIMEOUT_S:g} (default {default:g})")
    return value


def limits_from_env() -> Limits:
    """The timeouts and retry count set by ``EO_S3_CONNECT_TIMEOUT``, ``EO_S3_READ_TIMEOUT`` and
    ``EO_S3_RETRIES``; a value out of range is a :class:`ServiceError`."""
    connect = _seconds_from_env(CONNECT_TIMEOUT_VARIABLE, CONNECT_TIMEOUT_S)
    read = _seconds_from_env(READ_TIMEOUT_VARIABLE, READ_TIMEOUT_S)
    raw = os.environ.get(RETRIES_VARIABLE)
    retries = RETRIES
    if raw is not None and raw.strip():
        text = raw.strip()
        if not (text.isascii() and text.isdigit()) or int(text) > MAX_RETRIES:
            raise ServiceError(f"{RETRIES_VARIABLE}={_quoted(raw)} is not a whole number from 0 "
                               f"to {MAX_RETRIES} (default {RETRIES})")
        retries = int(text)
    return Limits(connect, read, retries)


def _endpoint_from_env() -> tuple[str, str]:
    for name in ENDPOINT_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return name, value
    raise ServiceError("no S3 endpoint configured: set S3_ENDPOINT_URL (or AWS_ENDPOINT_URL) "
                       "to the object store's URL, e.g. http://127.0.0.1:8333")


def _first_env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


_warned: set[str] = set()


def _retry(limits: Limits):
    import urllib3

    options = dict(total=limits.retries, backoff_factor=_BACKOFF_FACTOR_S,
                   status_forcelist=[500, 502, 503, 504], respect_retry_after_header=False)
    try:
        return urllib3.Retry(**options, backoff_max=_BACKOFF_MAX_S)
    except TypeError:  # urllib3 1.x: the cap on the pauses is a class attribute
        capped = type("Retry", (urllib3.Retry,), {"BACKOFF_MAX": _BACKOFF_MAX_S,
                                                   "DEFAULT_BACKOFF_MAX": _BACKOFF_MAX_S})
        return capped(**options)


def s3_client(limits: Limits | None = None) -> "minio.Minio":
    """A ``minio.Minio`` client configured from the environment.

    - endpoint: ``S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``), a full
      URL such as ``http://127.0.0.1:8333``; ``http://`` means plain HTTP, ``https://`` TLS
      (CA bundle from ``SSL_CERT_FILE`` if set); a user name and password in it are not used;
    - keys: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (or ``MINIO_ACCESS_KEY`` /
      ``MINIO_SECRET_KEY``), optional ``AWS_SESSION_TOKEN``; without keys the requests are
      anonymous. In Kubeflow Pipelines the keys come from the secret
      ``mlpipeline-minio-artifact`` (keys ``accesskey`` and ``secretkey``), mapped to these
      variables with kfp-kubernetes ``use_secret_as_env``;
    - region: ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``), optional;
    - timeouts and retries: ``EO_S3_CONNECT_TIMEOUT``, ``EO_S3_READ_TIMEOUT``,
      ``EO_S3_RETRIES`` (see the module's docstring), unless ``limits`` is given.
    """
    import certifi
    import minio
    import urllib3

    variable, endpoint = _endpoint_from_env()
    shown = f"{variable}={_quoted(endpoint)}"
    try:
        parts = urlsplit(endpoint)
    except ValueError:  # an unclosed IPv6 bracket
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in endpoint):
        raise ServiceError(f"{shown} is not a URL: expected http://host:port or https://host:port")
    try:
        parts.port
    except ValueError:
        raise ServiceError(f"{shown} has an invalid port: expected http://host:port with a "
                           "port from 1 to 65535") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ServiceError(f"{shown}: the endpoint must not have a path "
                           "(buckets and keys go in the s3:// URIs)")
    limits = limits or limits_from_env()
    access_key = _first_env("AWS_ACCESS_KEY_ID", "MINIO_ACCESS_KEY")
    secret_key = _first_env("AWS_SECRET_ACCESS_KEY", "MINIO_SECRET_KEY")
    if bool(access_key) != bool(secret_key):
        missing = "AWS_SECRET_ACCESS_KEY" if access_key else "AWS_ACCESS_KEY_ID"
        raise ServiceError(f"incomplete S3 credentials: set {missing} as well")
    if "@" in parts.netloc and endpoint not in _warned:
        _warned.add(endpoint)
        log.warning("%s: the user name and password in the URL are not used; the keys come "
                    "from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", redact(endpoint))
    if not access_key:
        log.debug("no S3 keys in the environment: anonymous requests to %s", redact(endpoint))
    log.debug("S3 endpoint %s: connect timeout %g s, read timeout %g s, %d retries",
              redact(endpoint), limits.connect_s, limits.read_s, limits.retries)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=limits.connect_s, read=limits.read_s),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=_retry(limits),
    )
    try:
        return minio.Minio(parts.netloc.rpartition("@")[2], access_key=access_key,
                           secret_key=secret_key,
                           session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
                           secure=parts.scheme == "https",
                           region=_first_env("AWS_REGION", "AWS_DEFAULT_REGION"),
                           http_client=http)
    except ValueError as exc:
        raise ServiceError(f"{shown} is not usable: {_one_line(exc)}") from None


def _endpoint_label() -> str:
    try:
        return _shown(_endpoint_from_env()[1])
    except ServiceError:
        return "(no endpoint)"


def _endpoint_id() -> str:
    """The endpoint's host and port, to tell apart the buckets of different object stores."""
    try:
        return urlsplit(_endpoint_from_env()[1]).netloc.rpartition("@")[2].lower()
    except ServiceError:
        return ""


def _attempts(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def _transport_failure(exc, uri: str) -> ServiceError:
    """The one-line failure for a urllib3 transport error met on ``uri``."""
    import urllib3.exceptions as ux

    try:
        limits = limits_from_env()
    except ServiceError:
        limits = Limits()
    endpoint = _endpoint_label()
    attempts = limits.attempts if isinstance(exc, ux.MaxRetryError) else 1
    reason = exc.reason if isinstance(exc, ux.MaxRetryError) and exc.reason else exc
    tries = _attempts(attempts)
    text = _one_line(reason)
    if "Failed to" in text:
        text = text[text.index("Failed to"):]
        text = re.sub(r"^Failed to (establish a new connection|resolve '[^']*')[^:]*: ", "", text)
    text = re.sub(r"^\[Errno -?\d+\] ", "", text)
    name_error = getattr(ux, "NameResolutionError", ())
    if isinstance(reason, ux.SSLError):
        return ServiceError(f"TLS with S3 endpoint {endpoint} failed for {uri}: {text} (check "
                            "the endpoint's scheme and SSL_CERT_FILE)")
    if (name_error and isinstance(reason, name_error)) or (
            isinstance(reason, ux.NewConnectionError) and "resolution" in text.lower()):
        host = urlsplit(_endpoint_from_env()[1]).hostname if endpoint != "(no endpoint)" else ""
        return EnvironmentFailure(f"cannot reach S3 endpoint {endpoint} for {uri}: host name "
                                  f"{_shown(host)} not found ({tries})")
    if isinstance(reason, ux.NewConnectionError):
        return EnvironmentFailure(f"cannot reach S3 endpoint {endpoint} for {uri}: {text} "
                                  f"({tries})")
    if isinstance(reason, ux.ConnectTimeoutError):
        return EnvironmentFailure(
            f"S3 endpoint {endpoint} did not accept a connection within {limits.connect_s:g} s "
            f"for {uri} ({tries}; {CONNECT_TIMEOUT_VARIABLE}, {RETRIES_VARIABLE})")
    if isinstance(reason, (ux.ReadTimeoutError, TimeoutError)):
        return EnvironmentFailure(
            f"S3 endpoint {endpoint} did not answer within {limits.read_s:g} s for {uri} "
            f"({tries}; {READ_TIMEOUT_VARIABLE}, {RETRIES_VARIABLE})")
    if isinstance(reason, ux.ResponseError):
        status = re.search(r"\b([1-5]\d\d)\b", text)
        answer = f"HTTP {status.group(1)}" if status else "with errors"
        return EnvironmentFailure(f"S3 endpoint {endpoint} answered {answer} for {uri} "
                                  f"({tries}; {RETRIES_VARIABLE})")
    if isinstance(reason, ux.ProtocolError):
        return EnvironmentFailure(f"S3 endpoint {endpoint} broke the connection for {uri}: "
                                  f"{text[:200]} ({tries})")
    return EnvironmentFailure(f"cannot reach S3 endpoint {endpoint} for {uri}: {text[:200]} "
                              f"({tries})")


@contextlib.contextmanager
def _s3_errors(uri: str) -> Iterator[None]:
    """Turn client and transport failures into one-line failures naming ``uri``: a
    :class:`ServiceError` for what the user can fix, else an :class:`EnvironmentFailure`."""
    import urllib3
    from minio.error import InvalidResponseError, S3Error, ServerError

    uri = _shown(uri)
    try:
        yield
    except S3Error as exc:
        code = exc.code or "error"
        status = getattr(exc.response, "status", 0) or 0
        if code in _MISSING_CODES:
            raise ServiceError(f"not found in object storage: {uri} ({code})") from None
        if code in _CREDENTIAL_CODES:
            hint = ("the credentials lack the permission" if code == "AccessDenied" else
                    "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
            raise ServiceError(f"S3 refused access to {uri}: {code} ({hint})") from None
        if status >= 500 or code in _SERVER_CODES:
            raise EnvironmentFailure(f"S3 endpoint {_endpoint_label()} failed on {uri}: {code}: "
                                     f"{_one_line(exc.message or '')[:200]}") from None
        raise ServiceError(f"S3 request on {uri} failed: {code}: "
                           f"{_one_line(exc.message or '')[:200]}") from None
    except ServerError as exc:
        failure = EnvironmentFailure if exc.status_code >= 500 else ServiceError
        raise failure(f"S3 endpoint {_endpoint_label()} answered HTTP {exc.status_code} for "
                      f"{uri}") from None
    except InvalidResponseError as exc:
        status = getattr(exc, "_code", 0) or 0
        if status >= 500:
            raise EnvironmentFailure(f"S3 endpoint {_endpoint_label()} answered HTTP {status} "
                                     f"for {uri}: {_one_line(exc)[:200]}") from None
        raise ServiceError(f"S3 endpoint {_endpoint_label()} answered unexpectedly for {uri} "
                           f"(is it an S3 endpoint?): {_one_line(exc)[:200]}") from None
    except urllib3.exceptions.HTTPError as exc:
        raise _transport_failure(exc, uri) from None


# ------------------------------------------------------------------------------------------
# Fetch


def _safe_join(root: Path, rel: str, uri: str) -> Path:
    """``root / rel`` for an object key relative to a prefix, refusing to leave ``root``."""
    parts = PurePosixPath(rel).parts
    if not parts or rel.startswith("/") or any(p in ("..", ".") for p in parts):
        raise ServiceError(f"unsafe object key {_quoted(rel)} under {_shown(uri)}: it would be "
                           f"written outside {root}")
    path = root.joinpath(*parts)
    if not path.resolve().is_relative_to(root.resolve()):
        raise ServiceError(f"unsafe object key {_quoted(rel)} under {_shown(uri)}: it would be "
                           f"written outside {root}")
    return path


def _get_or_none(client, bucket: str, key: str):
    """The GET response for an object, or None when no object has that key.

    A GET (not a HEAD) so that errors carry the server's code: HEAD answers have no body and
    the client reports every 403 as AccessDenied.
    """
    from minio.error import S3Error

    try:
        return client.get_object(bucket, key)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject"):
            return None
        raise


class _CutOff(Exception):
    """A transfer cut off before its last byte."""


def _download(client, bucket: str, key: str, target: Path, size: int | None, response=None) -> int:
    """Download one object to ``target`` through a temporary name in the same folder.

    The client's own retries cover requests that fail before an answer; a body cut off on the
    way (connection reset, short read, a silence longer than the read timeout) is fetched again
    here, up to ``TRANSFER_ATTEMPTS`` times. Only such transport failures are retried: an error
    answer (missing key, denied) is final.
    """
    import urllib3

    for attempt in range(1, TRANSFER_ATTEMPTS + 1):
        try:
            return _stream(response or client.get_object(bucket, key), key, target, size)
        except (_CutOff, urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError) as exc:
            if attempt == TRANSFER_ATTEMPTS:
                reason = exc if isinstance(exc, _CutOff) else getattr(exc, "args", [exc])[0]
                raise EnvironmentFailure(
                    f"download of {_shown(f's3://{bucket}/{key}')} from S3 endpoint "
                    f"{_endpoint_label()} was cut off {TRANSFER_ATTEMPTS} times "
                    f"({_one_line(reason)[:200]})") from None
            log.warning("%s: transfer interrupted (%s); fetching it again (attempt %d of %d)",
                        _shown(key), _one_line(exc)[:120], attempt + 1, TRANSFER_ATTEMPTS)
            time.sleep(0.5 * attempt)
            response = None
    raise AssertionError("unreachable")


def _stream(response, key: str, target: Path, size: int | None) -> int:
    tmp = target.with_name(f".{uuid.uuid4().hex[:12]}.part")  # not the name: a 250-byte one + 15 is too long
    written, start = 0, time.monotonic()
    last = start
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            raise ServiceError(f"cannot fetch {_shown(key)}: {target} is a folder")
        with open(tmp, "wb") as out:
            for chunk in response.stream(_CHUNK):
                out.write(chunk)
                written += len(chunk)
                now = time.monotonic()
                if now - last >= _PROGRESS_EVERY_S:
                    last = now
                    total = f" of {size / 1e6:.1f} MB" if size else ""
                    log.info("  %s: %.1f MB%s (%.0f s)", _shown(key), written / 1e6, total,
                             now - start)
        if size is not None and written != size:
            raise _CutOff(f"{written} of {size} bytes")
        os.replace(tmp, target)
    except OSError as exc:  # a key beside keys below it (X and X/...), a segment over 255 bytes
        raise from_os_error(exc, f"cannot store {_shown(key)} as the local file {target}") from None
    finally:
        response.close()
        response.release_conn()
        with contextlib.suppress(OSError):  # FileNotFoundError, or NotADirectoryError as above
            tmp.unlink()
    log.debug("  %s -> %s (%d bytes, %.2f s)", _shown(key), target, written,
              time.monotonic() - start)
    return written


def fetch_input(uri: str, workdir: Path) -> Path:
    """A local path for the input ``uri``.

    A local path is returned as it is. ``s3://bucket/key`` of an object (e.g. a product
    ``.zip``) is downloaded to ``workdir/<name>``; ``s3://bucket/prefix`` (with or without a
    trailing slash, e.g. an unzipped ``.SAFE``) is downloaded recursively to
    ``workdir/<last prefix component>`` keeping the layout below the prefix, and that folder
    is returned.
    """
    if not is_s3(uri):
        if not str(uri).strip():  # Path("") is the current folder: an unset parameter, not a choice
            raise ServiceError("input not given (an empty path)")
        path = Path(uri)
        if not path.exists():
            raise ServiceError(f"input not found: {_shown(uri)}")
        return path

    bucket, key = split_s3(uri)
    workdir = Path(workdir)
    client = s3_client()
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    log.info("fetching %s into %s", _shown(uri), workdir)

    with _s3_errors(uri):
        if key and not key.endswith("/"):
            target = _safe_join(workdir, PurePosixPath(key).name, uri)
            response = _get_or_none(client, bucket, key)
            if response is not None:
                length = response.headers.get("content-length")
                size = _download(client, bucket, key, target, int(length) if length else None, response)
                _log_done(uri, 1, size, start)
                return target

        prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        root = _safe_join(workdir, PurePosixPath(prefix).name if prefix else bucket, uri)
        count = total = 0
        for obj in client.list_objects(bucket, prefix=prefix or None, recursive=True):
            rel = obj.object_name[len(prefix):]
            if not rel or rel.endswith("/"):
                if rel:
                    _safe_join(root, rel.rstrip("/"), uri).mkdir(parents=True, exist_ok=True)
                continue
            target = _safe_join(root, rel, uri)
            total += _download(client, bucket, obj.object_name, target, obj.size)
            count += 1
        if count == 0:
            raise ServiceError(f"not found in object storage: {_shown(uri)} (no object or prefix)")
    _log_done(uri, count, total, start)
    return root


def _log_done(what: str, count: int, nbytes: int, start: float) -> None:
    seconds = time.monotonic() - start
    rate = nbytes / 1e6 / seconds if seconds > 0 else 0.0
    log.info("%s: %d file(s), %.1f MB in %.1f s (%.1f MB/s)", _shown(what), count, nbytes / 1e6,
             seconds, rate)


# ------------------------------------------------------------------------------------------
# Buckets this process created


_created_buckets: set[tuple[str, str]] = set()
_created_lock = threading.Lock()


def _note_created(bucket: str) -> None:
    with _created_lock:
        _created_buckets.add((_endpoint_id(), bucket))


def _forget_created(bucket: str) -> bool:
    """Stop tracking ``bucket``; True when this process had created it."""
    with _created_lock:
        entry = (_endpoint_id(), bucket)
        created = entry in _created_buckets
        _created_buckets.discard(entry)
        return created


def _with_bucket(client, bucket: str, write):
    """``write()``, creating the bucket first if it does not exist; a bucket created here is
    remembered as created by this process.

    The bucket is created explicitly (some servers would create it implicitly on the first
    write, unnoticed). Its existence is asked with HEAD, but a refusal there is left for the
    write to report: HEAD answers have no body and the client reports every 403 as AccessDenied.
    """
    from minio.error import S3Error

    try:
        exists = client.bucket_exists(bucket)
    except S3Error:
        exists = True  # not allowed to ask: the write tells what is wrong
    if not exists:
        _make_bucket(client, bucket)
    try:
        return write()
    except S3Error as exc:
        if exc.code != "NoSuchBucket":
            raise
    _make_bucket(client, bucket)  # removed in the meantime
    return write()


def _make_bucket(client, bucket: str) -> None:
    from minio.error import S3Error

    try:
        client.make_bucket(bucket)
    except S3Error as exc:
        if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        return
    _note_created(bucket)
    log.info("created bucket %s", bucket)


def _cleanup_client():
    """A client for cleaning up after a failure: each request is made once."""
    try:
        limits = limits_from_env()
    except ServiceError:
        limits = Limits()
    return s3_client(Limits(limits.connect_s, limits.read_s, 0))


def _remove_bucket_if_empty(client, bucket: str) -> bool:
    if next(iter(client.list_objects(bucket, recursive=True)), None) is not None:
        return False
    client.remove_bucket(bucket)
    log.info("removed bucket %s, created by this run, which failed", bucket)
    return True


def remove_created_bucket(dest: str) -> bool:
    """Remove the bucket of ``dest`` (an ``s3://`` URI) when this process created it (in
    :func:`check_writable` or :func:`publish`) and it is still empty; True when removed.

    For the failure path of a run that called :func:`check_writable` itself:
    :func:`output_folder` and :func:`publish` call it on theirs. Never raises for a failed
    request: a bucket left behind is reported as a warning.
    """
    if not is_s3(dest):
        return False
    bucket = split_s3(dest)[0]
    if not _forget_created(bucket):
        return False
    try:
        return _remove_bucket_if_empty(_cleanup_client(), bucket)
    except Exception as exc:  # noqa: BLE001 - the run's own failure is what matters
        log.warning("could not remove the empty bucket %s created by this run: %s", bucket,
                    _one_line(exc)[:200])
        return False


# ------------------------------------------------------------------------------------------
# Publish


def _files_under(local_dir: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(local_dir):
        dirnames.sort()
        files.extend(Path(dirpath) / f for f in sorted(filenames))
    files = [f for f in files if f.is_file()]
    # data first, then the JSON metadata (STAC items name the data files: a reader that finds an
    # item finds its assets), the run record last: once it is there, the product is complete
    return sorted(files, key=lambda f: (f.parent == local_dir and f.name == _RUN_RECORD,
                                        f.suffix.lower() == ".json"))


def _join_key(prefix: str, rel: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{rel}" if prefix else rel


def publish(local_dir: Path, dest: str, *, move: bool = False) -> list[str]:
    """Copy every file under ``local_dir`` to ``dest``; the destination paths/URIs.

    ``dest`` is a local folder (created if needed; each file lands atomically: written under a
    temporary name in its destination folder, then renamed) or ``s3://bucket/prefix`` (the
    bucket is created if it does not exist). The layout below ``local_dir`` is kept, and a
    top-level ``run.json`` is written last; an earlier run's ``run.json`` at ``dest`` is removed
    first, so that one always describes a complete product. With ``move=True`` local files are
    moved instead of copied where the filesystem allows it. All or nothing: when it fails or is
    interrupted, what it had written is removed again (see the module's docstring).
    """
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise ServiceError(f"nothing to publish: {local_dir} is not a folder")
    files = _files_under(local_dir)
    start = time.monotonic()
    nbytes = sum(f.stat().st_size for f in files)

    if not is_s3(dest):
        out = _publish_local(local_dir, files, Path(dest), move)
        if out is None:
            return [str(f) for f in files]
        _log_done(f"published to {dest}", len(files), nbytes, start)
        return out

    bucket, prefix = split_s3(dest)
    keys = [_join_key(prefix, f.relative_to(local_dir).as_posix()) for f in files]
    for key in keys:  # before anything is written
        check_key(key, f"s3://{bucket}/{key}")
    from minio.error import S3Error

    client = s3_client()
    written: list[str] = []
    in_flight: tuple[str, int] | None = None
    try:
        with _s3_errors(dest):
            # an earlier run's record says its product is complete: not once this one overwrites it
            # (removing a key that is not there succeeds; a missing bucket is made by the upload)
            with contextlib.suppress(S3Error):
                client.remove_object(bucket, _join_key(prefix, _RUN_RECORD))
            for i, (f, key) in enumerate(zip(files, keys)):
                checkpoint()  # a stop that came while publishing: nothing more is uploaded
                content_type = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
                t0 = time.monotonic()
                in_flight = (key, f.stat().st_size)

                def upload(key=key, f=f, content_type=content_type):
                    client.fput_object(bucket, key, str(f), content_type=content_type)

                if i == 0:
                    _with_bucket(client, bucket, upload)
                else:
                    upload()
                written.append(key)
                in_flight = None
                log.debug("  %s -> s3://%s/%s (%.2f s)", f, bucket, _shown(key),
                          time.monotonic() - t0)
    except BaseException as exc:
        if not written and isinstance(exc, EnvironmentFailure):
            in_flight = None  # the object store did not confirm it: not stored, no request more
        _roll_back(bucket, written, in_flight, dest)
        raise
    _forget_created(bucket)  # it holds a product now
    _log_done(f"published to {dest}", len(files), nbytes, start)
    return [f"s3://{bucket}/{key}" for key in written]


def _roll_back(bucket: str, written: list[str], in_flight: tuple[str, int] | None,
               dest: str) -> None:
    """Remove what a failed publish (or write check) wrote to ``bucket``: the objects ``written``,
    the one ``in_flight`` (key, size) and its unfinished multipart upload, then the bucket if this
    process created it and it is empty. Each request is made once; never raises an Exception."""
    from minio.deleteobjects import DeleteObject
    from minio.helpers import MIN_PART_SIZE

    keys = written + ([in_flight[0]] if in_flight else [])
    step = "connecting"
    try:
        client = _cleanup_client()
        if in_flight and in_flight[1] > MIN_PART_SIZE:
            step = "aborting the upload of " + _shown(in_flight[0])
            _abort_uploads(client, bucket, in_flight[0])
        if keys:
            step = f"removing {len(written)} object(s) already published"
            errors = [e for e in client.remove_objects(bucket, [DeleteObject(k) for k in keys])
                      if e.code not in _MISSING_CODES]
            if errors:
                raise RuntimeError(f"{errors[0].code} for {_shown(errors[0].name)}"
                                   f"{f' and {len(errors) - 1} more' if len(errors) > 1 else ''}")
            if written:
                log.info("removed the %d object(s) published to %s before the failure",
                         len(written), _shown(dest))
    except Exception as exc:  # noqa: BLE001 - the publish's own failure is what matters
        log.warning("writing to %s failed, and so did the cleanup (%s: %s): up to %d object(s) "
                    "may be left there", _shown(dest), step, _one_line(exc)[:200], len(keys))
        _forget_created(bucket)
        return
    remove_created_bucket(f"s3://{bucket}")


def _abort_uploads(client, bucket: str, key: str) -> None:
    """Abort the multipart uploads of ``key`` still open (the client aborts its own upload on
    an ``Exception``, but not when the run is stopped)."""
    listing = getattr(client, "_list_multipart_uploads", None)
    abort = getattr(client, "_abort_multipart_upload", None)
    if listing is None or abort is None:
        return
    for upload in listing(bucket, prefix=key).uploads:
        if upload.object_name == key:
            abort(bucket, key, upload.upload_id)
            log.info("aborted the unfinished upload of s3://%s/%s", bucket, _shown(key))


def _publish_local(local_dir: Path, files: list[Path], dest_dir: Path, move: bool) -> list[str] | None:
    """Place ``files`` under ``dest_dir``; None when it is ``local_dir`` itself. On any failure the
    files placed and the folders created are removed again."""
    if dest_dir.exists() and dest_dir.resolve() == local_dir.resolve():
        return None
    placed: list[Path] = []
    made: list[Path] = []
    try:
        _make_folders(dest_dir, made)
        # an earlier run's record says its product is complete: not once this one overwrites it
        with contextlib.suppress(FileNotFoundError):
            (dest_dir / _RUN_RECORD).unlink()
        for f in files:
            target = dest_dir / f.relative_to(local_dir)
            _make_folders(target.parent, made)
            _place(f, target, move)
            placed.append(target)
    except BaseException as exc:
        for path in placed:
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(dest_dir) else ""
            raise from_os_error(exc, f"cannot write to {_shown(dest_dir)}{where}") from None
        raise
    return [str(p) for p in placed]


def _make_folders(folder: Path, made: list[Path]) -> None:
    """``mkdir -p folder``, appending the folders it created (outermost first) to ``made``."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p == p.parent:
            break
        p = p.parent
    for p in reversed(missing):
        try:
            p.mkdir()
        except FileExistsError:
            if not p.is_dir():
                raise
            continue
        made.append(p)


def _place(src: Path, target: Path, move: bool) -> None:
    """Put ``src`` at ``target`` atomically: a rename, or a copy under a temporary name next to
    ``target`` followed by a rename, so that ``target`` is never seen half-written."""
    checkpoint()  # a stop that came while publishing: nothing more is put in place
    if move:
        try:
            os.replace(src, target)
            return
        except OSError:
            pass  # another filesystem: copy, then remove the source
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        shutil.copy2(src, tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    if move:
        src.unlink()


# ------------------------------------------------------------------------------------------
# Early checks


@contextlib.contextmanager
def output_folder(dest: str) -> Iterator[Path | None]:
    """Check that ``dest`` (a folder or ``s3://bucket/prefix``) can be written, then yield the
    local folder (None for S3), created if needed. What the check created is removed again when
    the run fails before writing into it: the local folder, or the bucket when it is still
    empty. A failed run leaves nothing behind."""
    check_writable(dest)
    local = None if is_s3(dest) else Path(dest)
    created = local is not None and not local.exists()
    if local is not None:
        try:  # root passes the write check of /proc/x, then mkdir fails
            local.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise from_os_error(exc, f"cannot create output folder {_shown(dest)}") from None
    try:
        yield local
    except BaseException:
        if created and local.exists() and not any(local.iterdir()):
            local.rmdir()
        if local is None:
            remove_created_bucket(dest)
        raise
    if local is None:
        _forget_created(split_s3(dest)[0])


def check_writable(dest: str) -> bool:
    """Fail before any work when the output destination cannot be written.

    A local folder must exist and accept a file, or be creatable (its nearest existing
    ancestor is a writable folder); nothing is created. For ``s3://bucket/prefix`` the bucket
    is created if missing and a small probe object is written and removed. True when a bucket
    was created: :func:`remove_created_bucket` removes it again on a failure path
    (:func:`output_folder` does).
    """
    if is_s3(dest):
        return _check_s3_writable(dest)
    if not str(dest).strip():  # Path("") is the current folder: an unset parameter, not a choice
        raise ServiceError("output folder not given (an empty path)")
    path = Path(dest)
    if path.exists():
        if not path.is_dir():
            raise ServiceError(f"output folder {_shown(dest)} is not a folder (a file is there)")
        try:
            fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=path)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise from_os_error(exc, f"output folder {_shown(dest)} is not writable") from None
        return False
    ancestor = path.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ServiceError(f"cannot create output folder {_shown(dest)}: {ancestor} is a file, "
                           "not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ServiceError(f"cannot create output folder {_shown(dest)}: {ancestor} is not "
                           "writable")
    return False


def _check_s3_writable(dest: str) -> bool:
    bucket, prefix = split_s3(dest)
    client = s3_client()
    key = _join_key(prefix, f".write-check-{uuid.uuid4().hex}")
    with _created_lock:
        known = (_endpoint_id(), bucket) in _created_buckets
    try:
        with _s3_errors(dest):
            _with_bucket(client, bucket, lambda: client.put_object(bucket, key, io.BytesIO(b""), 0))
        try:
            client.remove_object(bucket, key)
        except Exception as exc:  # noqa: BLE001 - the destination is writable; leftover is harmless
            log.warning("could not remove the probe object s3://%s/%s: %s", bucket, _shown(key),
                        _one_line(exc)[:200])
    except BaseException as exc:
        # an answer refusing the probe (denied, no such bucket) or a store that failed to confirm it:
        # nothing was stored, no request more; a stop during the request may have left it
        _roll_back(bucket, [], None if isinstance(exc, ServiceError) else (key, 0), dest)
        raise
    with _created_lock:
        return not known and (_endpoint_id(), bucket) in _created_buckets
