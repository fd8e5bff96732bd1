"""Publishing is all or nothing: a publish that fails or is stopped midway leaves no object under
its destination and no bucket that the run created, locally the same for files and folders."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import minio
import pytest

from components.common import contract, storage
from components.common.errors import EnvironmentFailure, Interrupted, ServiceError
from tests.fixtures.s3_relay import FaultyProxy
from tests.fixtures.storage_env import bucket, clean_env, s3_env  # noqa: F401  (fixtures)


def _stage(root: Path, big: int = 0) -> Path:
    """A product folder: files a, b (optionally big), c/d, and run.json."""
    stage = root / "stage"
    (stage / "c").mkdir(parents=True)
    (stage / "a.tif").write_bytes(os.urandom(10_000))
    (stage / "b.tif").write_bytes(os.urandom(big or 20_000))
    (stage / "c" / "d.png").write_bytes(b"png")
    (stage / "run.json").write_text("{}")
    return stage


def _keys(server, bucket: str, prefix: str = "") -> list[str]:
    client = server.client()
    if not client.bucket_exists(bucket):
        return []
    return sorted(o.object_name for o in client.list_objects(bucket, prefix=prefix or None,
                                                              recursive=True))


def _fail_on_call(monkeypatch, name: str, n: int, action, *, after: bool = False):
    """Make the ``n``-th call of ``minio.Minio.<name>`` run ``action()`` first (or, with
    ``after``, once the call is done)."""
    original = getattr(minio.Minio, name)
    calls = []

    def wrapped(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == n and not after:
            action()
        result = original(self, *args, **kwargs)
        if len(calls) == n and after:
            action()
        return result

    monkeypatch.setattr(minio.Minio, name, wrapped)
    return calls


def _raise_interrupted():
    raise Interrupted(signal.SIGTERM)


# ------------------------------------------------------------------------------------------
# S3


@pytest.mark.s3
def test_failed_put_removes_what_was_written_and_the_new_bucket(s3_env, bucket, tmp_path, monkeypatch):
    stage = _stage(tmp_path)
    dest = f"s3://{bucket}/run1"
    with FaultyProxy(s3_env.ports["s3"],
                     fail=lambda line: line.startswith("PUT ") and "/b.tif" in line) as proxy:
        monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("EO_S3_RETRIES", "1")
        with pytest.raises(EnvironmentFailure) as exc:
            storage.publish(stage, dest)
    assert dest in str(exc.value) and "503" in str(exc.value), exc.value
    assert any("/a.tif" in r for r in proxy.requests)  # one object had been written
    assert not s3_env.client().bucket_exists(bucket)


@pytest.mark.s3
def test_failed_put_keeps_other_objects_and_an_existing_bucket(s3_env, bucket, tmp_path, monkeypatch):
    import io

    client = s3_env.client()
    client.make_bucket(bucket)
    client.put_object(bucket, "keep/me.txt", io.BytesIO(b"x"), 1)
    client.put_object(bucket, "run1-other.txt", io.BytesIO(b"y"), 1)
    with FaultyProxy(s3_env.ports["s3"],
                     fail=lambda line: line.startswith("PUT ") and "/c/d.png" in line) as proxy:
        monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("EO_S3_RETRIES", "0")
        with pytest.raises(EnvironmentFailure):
            storage.publish(_stage(tmp_path), f"s3://{bucket}/run1")
    assert _keys(s3_env, bucket) == ["keep/me.txt", "run1-other.txt"]


@pytest.mark.s3
def test_interrupted_publish_leaves_nothing(s3_env, bucket, tmp_path, monkeypatch):
    calls = _fail_on_call(monkeypatch, "fput_object", 3, _raise_interrupted)
    with pytest.raises(Interrupted):
        storage.publish(_stage(tmp_path), f"s3://{bucket}/run1")
    assert len(calls) == 3
    assert not s3_env.client().bucket_exists(bucket)


@pytest.mark.s3
def test_sigterm_during_publish_in_output_folder(s3_env, bucket, tmp_path, monkeypatch, capsys):
    """A real SIGTERM under the failure contract: exit status 143, the write check's bucket and
    the objects already published are gone."""
    dest = f"s3://{bucket}/products/run1"
    _fail_on_call(monkeypatch, "fput_object", 2, lambda: os.kill(os.getpid(), signal.SIGTERM))

    def run():
        with storage.output_folder(dest):
            storage.publish(_stage(tmp_path), dest)

    assert contract.exit_status("svc", run) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in capsys.readouterr().err
    assert not s3_env.client().bucket_exists(bucket)


@pytest.mark.s3
def test_run_failing_after_the_write_check_leaves_no_bucket(s3_env, bucket, tmp_path):
    dest = f"s3://{bucket}/out"
    with pytest.raises(ServiceError, match="model failed"):
        with storage.output_folder(dest) as local:
            assert local is None and s3_env.client().bucket_exists(bucket)
            raise ServiceError("model failed")
    assert not s3_env.client().bucket_exists(bucket)

    with storage.output_folder(dest):  # a run that succeeds keeps the bucket it needs
        storage.publish(_stage(tmp_path), dest)
    assert len(_keys(s3_env, bucket)) == 4
    with pytest.raises(ServiceError, match="model failed"):
        with storage.output_folder(f"s3://{bucket}/out2"):
            raise ServiceError("model failed")
    assert len(_keys(s3_env, bucket)) == 4  # a bucket this run did not create stays


@pytest.mark.s3
def test_failed_write_check_leaves_no_bucket(s3_env, bucket, monkeypatch):
    """Stopped once the probe object is written: the probe and the bucket are removed."""
    _fail_on_call(monkeypatch, "put_object", 1, _raise_interrupted, after=True)
    with pytest.raises(Interrupted):
        storage.check_writable(f"s3://{bucket}/out")
    assert not s3_env.client().bucket_exists(bucket)


@pytest.mark.s3
def test_interrupted_multipart_upload_is_aborted(s3_env, bucket, tmp_path, monkeypatch):
    """A file large enough for a multipart upload, stopped before the upload completes: the
    upload is aborted, and the objects published before it are removed."""
    s3_env.client().make_bucket(bucket)
    stage = _stage(tmp_path, big=11 * 1024 * 1024)
    _fail_on_call(monkeypatch, "_complete_multipart_upload", 1, _raise_interrupted)
    with pytest.raises(Interrupted):
        storage.publish(stage, f"s3://{bucket}/run1")
    assert _keys(s3_env, bucket) == []
    assert s3_env.client()._list_multipart_uploads(bucket, prefix="run1/").uploads == []


@pytest.mark.s3
def test_unusable_file_name_is_refused_before_any_upload(s3_env, bucket, tmp_path):
    stage = _stage(tmp_path)
    (stage / "bad\nname.txt").write_text("x")
    with pytest.raises(ServiceError, match="control character"):
        storage.publish(stage, f"s3://{bucket}/run1")
    assert not s3_env.client().bucket_exists(bucket)


@pytest.mark.s3
def test_run_record_is_published_last(s3_env, bucket, tmp_path, monkeypatch):
    calls = _fail_on_call(monkeypatch, "fput_object", 0, lambda: None)
    uris = storage.publish(_stage(tmp_path), f"s3://{bucket}/run1")
    assert [c[1] for c in calls][-1] == "run1/run.json"
    assert len(uris) == 4


@pytest.mark.s3
def test_stac_item_follows_its_assets(s3_env, bucket, tmp_path, monkeypatch):
    # "a.json" sorts before "a.tif": uploaded in name order, the item would name a missing asset
    stage = _stage(tmp_path)
    (stage / "a.json").write_text('{"assets": {"data": {"href": "a.tif"}}}')
    calls = _fail_on_call(monkeypatch, "fput_object", 0, lambda: None)
    storage.publish(stage, f"s3://{bucket}/run1")
    assert [c[1] for c in calls] == ["run1/a.tif", "run1/b.tif", "run1/c/d.png", "run1/a.json",
                                     "run1/run.json"]


def test_local_publish_places_data_before_metadata(tmp_path, monkeypatch):
    stage = _stage(tmp_path)
    (stage / "a.json").write_text("{}")
    original, placed = storage._place, []
    monkeypatch.setattr(storage, "_place", lambda src, target, move: (placed.append(target.name),
                                                                      original(src, target, move)))
    storage.publish(stage, str(tmp_path / "out"))
    assert placed == ["a.tif", "b.tif", "d.png", "a.json", "run.json"]


# ------------------------------------------------------------------------------------------
# Local folders


@pytest.mark.parametrize("stop", [_raise_interrupted, lambda: (_ for _ in ()).throw(OSError(28, "No space left"))])
def test_local_publish_stopped_midway_leaves_nothing(tmp_path, monkeypatch, stop):
    stage = _stage(tmp_path)
    dest = tmp_path / "out" / "run1"
    original, calls = storage._place, []

    def place(src, target, move):
        calls.append(target)
        if len(calls) == 3:
            stop()
        return original(src, target, move)

    monkeypatch.setattr(storage, "_place", place)
    with pytest.raises(BaseException) as exc:
        storage.publish(stage, str(dest))
    assert isinstance(exc.value, (Interrupted, ServiceError)), exc.value
    assert not (tmp_path / "out").exists()  # nor the folders it created
    assert sorted(p.name for p in stage.rglob("*")) == ["a.tif", "b.tif", "c", "d.png", "run.json"]


# ------------------------------------------------------------------------------------------
# Over an earlier product


@pytest.mark.s3
def test_a_failed_publish_over_an_earlier_product_leaves_no_run_record(s3_env, bucket, tmp_path, monkeypatch):
    """The earlier run's run.json said its product was complete; once this publish has
    overwritten part of it and failed, no record may say so."""
    storage.publish(_stage(tmp_path / "first"), f"s3://{bucket}/run1")
    with FaultyProxy(s3_env.ports["s3"],
                     fail=lambda line: line.startswith("PUT ") and "/b.tif" in line) as proxy:
        monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("EO_S3_RETRIES", "0")
        with pytest.raises(EnvironmentFailure):
            storage.publish(_stage(tmp_path / "second"), f"s3://{bucket}/run1")
    assert "run1/run.json" not in _keys(s3_env, bucket)


def test_a_failed_local_publish_over_an_earlier_product_leaves_no_run_record(tmp_path, monkeypatch):
    dest = tmp_path / "out"
    storage.publish(_stage(tmp_path / "first"), str(dest))
    original, calls = storage._place, []

    def place(src, target, move):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(28, "No space left")
        return original(src, target, move)

    monkeypatch.setattr(storage, "_place", place)
    with pytest.raises(EnvironmentFailure):
        storage.publish(_stage(tmp_path / "second"), str(dest))
    assert not (dest / "run.json").exists()
