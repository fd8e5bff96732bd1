"""Inputs and outputs as local paths or ``s3://bucket/key`` URIs.

Object storage is read and written with the ``minio`` client; the endpoint and the keys come
from the environment (see :func:`s3_client`). Every service calls :func:`fetch_input` for its
inputs, :func:`check_writable` on its output destination before doing any work, and
:func:`publish` once its products are complete.
"""

from __future__ import annotations

import contextlib
import io
import logging
import mimetypes
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Iterator
from urllib.parse import urlsplit

from .errors import ServiceError

if TYPE_CHECKING:
    import minio

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"
ENDPOINT_VARIABLES = ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,61}[a-z0-9]$")
_CREDENTIAL_CODES = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied",
                     "InvalidToken", "ExpiredToken", "AllAccessDisabled",
                     "AuthorizationHeaderMalformed", "InvalidSecurity"}
_MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"}
_CHUNK = 1024 * 1024
TRANSFER_ATTEMPTS = 3
_PROGRESS_EVERY_S = 30.0


# ------------------------------------------------------------------------------------------
# URIs


def is_s3(uri) -> bool:
    """True when ``uri`` is an ``s3://`` URI (anything else is a local path)."""
    return isinstance(uri, str) and uri[:5].lower() == S3_SCHEME


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``. The key may be empty."""
    if not is_s3(uri):
        raise ServiceError(f"not an s3 URI: {uri!r} (expected s3://bucket/key)")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ServiceError(f"malformed s3 URI {uri!r}: no bucket name (expected s3://bucket/key)")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise ServiceError(f"malformed s3 URI {uri!r}: {bucket!r} is not a valid bucket name "
                           "(3-63 characters: lower-case letters, digits, '.', '-')")
    return bucket, key


# ------------------------------------------------------------------------------------------
# Client


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


def s3_client() -> "minio.Minio":
    """A ``minio.Minio`` client configured from the environment.

    - endpoint: ``S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``), a full
      URL such as ``http://127.0.0.1:8333``; ``http://`` means plain HTTP, ``https://`` TLS
      (CA bundle from ``SSL_CERT_FILE`` if set);
    - keys: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (or ``MINIO_ACCESS_KEY`` /
      ``MINIO_SECRET_KEY``), optional ``AWS_SESSION_TOKEN``; without keys the requests are
      anonymous. In Kubeflow Pipelines the keys come from the secret
      ``mlpipeline-minio-artifact`` (keys ``accesskey`` and ``secretkey``), mapped to these
      variables with kfp-kubernetes ``use_secret_as_env``;
    - region: ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``), optional.
    """
    import certifi
    import minio
    import urllib3

    variable, endpoint = _endpoint_from_env()
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServiceError(f"{variable}={endpoint!r} is not a URL: expected "
                           "http://host:port or https://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ServiceError(f"{variable}={endpoint!r}: the endpoint must not have a path "
                           "(buckets and keys go in the s3:// URIs)")
    access_key = _first_env("AWS_ACCESS_KEY_ID", "MINIO_ACCESS_KEY")
    secret_key = _first_env("AWS_SECRET_ACCESS_KEY", "MINIO_SECRET_KEY")
    if bool(access_key) != bool(secret_key):
        missing = "AWS_SECRET_ACCESS_KEY" if access_key else "AWS_ACCESS_KEY_ID"
        raise ServiceError(f"incomplete S3 credentials: set {missing} as well")
    if not access_key:
        log.debug("no S3 keys in the environment: anonymous requests to %s", endpoint)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=300),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(total=5, connect=2, backoff_factor=0.2,
                              status_forcelist=[500, 502, 503, 504]),
    )
    try:
        return minio.Minio(parts.netloc.rpartition("@")[2], access_key=access_key,
                           secret_key=secret_key,
                           session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
                           secure=parts.scheme == "https",
                           region=_first_env("AWS_REGION", "AWS_DEFAULT_REGION"),
                           http_client=http)
    except ValueError as exc:
        raise ServiceError(f"{variable}={endpoint!r} is not usable: {exc}") from None


def _endpoint_label() -> str:
    try:
        return _endpoint_from_env()[1]
    except ServiceError:
        return "(no endpoint)"


def _one_line(text) -> str:
    return " ".join(str(text).split())


@contextlib.contextmanager
def _s3_errors(uri: str) -> Iterator[None]:
    """Turn client and transport failures into one-line ServiceErrors naming ``uri``."""
    import urllib3
    from minio.error import InvalidResponseError, S3Error, ServerError

    try:
        yield
    except S3Error as exc:
        code = exc.code or "error"
        if code in _MISSING_CODES:
            raise ServiceError(f"not found in object storage: {uri} ({code})") from None
        if code in _CREDENTIAL_CODES:
            hint = ("the credentials lack the permission" if code == "AccessDenied" else
                    "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
            raise ServiceError(f"S3 refused access to {uri}: {code} ({hint})") from None
        raise ServiceError(f"S3 request on {uri} failed: {code}: "
                           f"{_one_line(exc.message or '')}") from None
    except (InvalidResponseError, ServerError) as exc:
        raise ServiceError(f"S3 endpoint {_endpoint_label()} answered unexpectedly for {uri}: "
                           f"{_one_line(exc)[:200]}") from None
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        text = _one_line(reason)
        if "Failed to" in text:
            text = text[text.index("Failed to"):]
        raise ServiceError(f"cannot reach S3 endpoint {_endpoint_label()}: {text}") from None


# ------------------------------------------------------------------------------------------
# Fetch


def _safe_join(root: Path, rel: str, uri: str) -> Path:
    """``root / rel`` for an object key relative to a prefix, refusing to leave ``root``."""
    parts = PurePosixPath(rel).parts
    if not parts or rel.startswith("/") or any(p in ("..", ".") for p in parts):
        raise ServiceError(f"unsafe object key {rel!r} under {uri}: it would be written "
                           f"outside {root}")
    path = root.joinpath(*parts)
    if not path.resolve().is_relative_to(root.resolve()):
        raise ServiceError(f"unsafe object key {rel!r} under {uri}: it would be written "
                           f"outside {root}")
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


class _Interrupted(Exception):
    """A transfer cut off before its last byte."""


def _download(client, bucket: str, key: str, target: Path, size: int | None, response=None) -> int:
    """Download one object to ``target`` through a temporary name in the same folder.

    The client's own retries cover requests that fail before an answer; a body cut off on the
    way (connection reset, short read) is fetched again here, up to ``TRANSFER_ATTEMPTS`` times.
    Only such transport failures are retried: an error answer (missing key, denied) is final.
    """
    import urllib3

    for attempt in range(1, TRANSFER_ATTEMPTS + 1):
        try:
            return _stream(response or client.get_object(bucket, key), key, target, size)
        except (_Interrupted, urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError) as exc:
            if attempt == TRANSFER_ATTEMPTS:
                reason = exc if isinstance(exc, _Interrupted) else _one_line(getattr(exc, "args", [exc])[0])
                raise ServiceError(f"download of {key} from {_endpoint_label()} interrupted "
                                   f"{TRANSFER_ATTEMPTS} times ({reason})") from None
            log.warning("%s: transfer interrupted (%s); fetching it again (attempt %d of %d)",
                        key, _one_line(exc)[:120], attempt + 1, TRANSFER_ATTEMPTS)
            time.sleep(0.5 * attempt)
            response = None
    raise AssertionError("unreachable")


def _stream(response, key: str, target: Path, size: int | None) -> int:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    written, start = 0, time.monotonic()
    last = start
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            raise ServiceError(f"cannot fetch {key}: {target} is a folder")
        with open(tmp, "wb") as out:
            for chunk in response.stream(_CHUNK):
                out.write(chunk)
                written += len(chunk)
                now = time.monotonic()
                if now - last >= _PROGRESS_EVERY_S:
                    last = now
                    total = f" of {size / 1e6:.1f} MB" if size else ""
                    log.info("  %s: %.1f MB%s (%.0f s)", key, written / 1e6, total, now - start)
        if size is not None and written != size:
            raise _Interrupted(f"{written} of {size} bytes")
        os.replace(tmp, target)
    finally:
        response.close()
        response.release_conn()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    log.debug("  %s -> %s (%d bytes, %.2f s)", key, target, written, time.monotonic() - start)
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
        path = Path(uri)
        if not path.exists():
            raise ServiceError(f"input not found: {uri}")
        return path

    bucket, key = split_s3(uri)
    workdir = Path(workdir)
    client = s3_client()
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    log.info("fetching %s into %s", uri, workdir)

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
            raise ServiceError(f"not found in object storage: {uri} (no object or prefix)")
    _log_done(uri, count, total, start)
    return root


def _log_done(what: str, count: int, nbytes: int, start: float) -> None:
    seconds = time.monotonic() - start
    rate = nbytes / 1e6 / seconds if seconds > 0 else 0.0
    log.info("%s: %d file(s), %.1f MB in %.1f s (%.1f MB/s)", what, count, nbytes / 1e6,
             seconds, rate)


# ------------------------------------------------------------------------------------------
# Publish


def _files_under(local_dir: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(local_dir):
        dirnames.sort()
        files.extend(Path(dirpath) / f for f in sorted(filenames))
    return [f for f in files if f.is_file()]


def _with_bucket(client, bucket: str, write):
    """``write()``, creating the bucket first if the server says it does not exist.

    Writing first (rather than asking HEAD bucket) keeps the server's error code: HEAD answers
    have no body and the client reports every 403 as AccessDenied.
    """
    from minio.error import S3Error

    try:
        return write()
    except S3Error as exc:
        if exc.code != "NoSuchBucket":
            raise
    try:
        client.make_bucket(bucket)
        log.info("created bucket %s", bucket)
    except S3Error as exc:
        if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    return write()


def _join_key(prefix: str, rel: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{rel}" if prefix else rel


def publish(local_dir: Path, dest: str, *, move: bool = False) -> list[str]:
    """Copy every file under ``local_dir`` to ``dest``; the destination paths/URIs.

    ``dest`` is a local folder (created if needed; each file lands atomically: written under a
    temporary name in its destination folder, then renamed) or ``s3://bucket/prefix`` (the
    bucket is created if it does not exist). The layout below ``local_dir`` is kept. With
    ``move=True`` local files are moved instead of copied where the filesystem allows it.
    """
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise ServiceError(f"nothing to publish: {local_dir} is not a folder")
    files = _files_under(local_dir)
    start = time.monotonic()
    nbytes = sum(f.stat().st_size for f in files)
    out: list[str] = []

    if not is_s3(dest):
        dest_dir = Path(dest)
        if dest_dir.exists() and dest_dir.resolve() == local_dir.resolve():
            return [str(f) for f in files]
        try:
            dest_dir.mkdir(parents=True, exist_ok=True)
            for f in files:
                target = dest_dir / f.relative_to(local_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                _place(f, target, move)
                out.append(str(target))
        except OSError as exc:
            raise ServiceError(f"cannot write to {dest}: {exc.strerror or exc} "
                               f"({exc.filename or dest})") from None
        _log_done(f"published to {dest}", len(files), nbytes, start)
        return out

    bucket, prefix = split_s3(dest)
    client = s3_client()
    with _s3_errors(dest):
        for i, f in enumerate(files):
            rel = f.relative_to(local_dir).as_posix()
            key = _join_key(prefix, rel)
            content_type = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
            t0 = time.monotonic()

            def upload(key=key, f=f, content_type=content_type):
                client.fput_object(bucket, key, str(f), content_type=content_type)

            if i == 0:
                _with_bucket(client, bucket, upload)
            else:
                upload()
            log.debug("  %s -> s3://%s/%s (%.2f s)", f, bucket, key, time.monotonic() - t0)
            out.append(f"s3://{bucket}/{key}")
    _log_done(f"published to {dest}", len(files), nbytes, start)
    return out


def _place(src: Path, target: Path, move: bool) -> None:
    """Put ``src`` at ``target`` atomically: a rename, or a copy under a temporary name next to
    ``target`` followed by a rename, so that ``target`` is never seen half-written."""
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
    local folder (None for S3), created if needed. A folder created here is removed again when
    the run fails before writing into it: a failed run leaves nothing behind."""
    check_writable(dest)
    local = None if is_s3(dest) else Path(dest)
    created = local is not None and not local.exists()
    if local is not None:
        local.mkdir(parents=True, exist_ok=True)
    try:
        yield local
    except BaseException:
        if created and local.exists() and not any(local.iterdir()):
            local.rmdir()
        raise


def check_writable(dest: str) -> None:
    """Fail before any work when the output destination cannot be written.

    A local folder must exist and accept a file, or be creatable (its nearest existing
    ancestor is a writable folder); nothing is created. For ``s3://bucket/prefix`` the bucket
    is created if missing and a small probe object is written and removed.
    """
    if is_s3(dest):
        _check_s3_writable(dest)
        return
    path = Path(dest)
    if path.exists():
        if not path.is_dir():
            raise ServiceError(f"output folder {dest} is not a folder (a file is there)")
        try:
            fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=path)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise ServiceError(f"output folder {dest} is not writable: "
                               f"{exc.strerror or exc}") from None
        return
    ancestor = path.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ServiceError(f"cannot create output folder {dest}: {ancestor} is a file, "
                           "not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ServiceError(f"cannot create output folder {dest}: {ancestor} is not writable")


def _check_s3_writable(dest: str) -> None:
    bucket, prefix = split_s3(dest)
    client = s3_client()
    key = _join_key(prefix, f".write-check-{uuid.uuid4().hex}")
    with _s3_errors(dest):
        _with_bucket(client, bucket, lambda: client.put_object(bucket, key, io.BytesIO(b""), 0))
    try:
        client.remove_object(bucket, key)
    except Exception as exc:  # noqa: BLE001 - the destination is writable; leftover is harmless
        log.warning("could not remove the probe object s3://%s/%s: %s", bucket, key,
                    _one_line(exc))
