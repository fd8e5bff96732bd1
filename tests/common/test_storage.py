"""Storage round trips against a real S3 server (SeaweedFS ``weed mini``), no mocks."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from components.common import storage
from components.common.errors import ServiceError
from tests.fixtures.storage_env import bucket, clean_env, s3_env  # noqa: F401  (fixtures)

def _product(root: Path) -> Path:
    """A small .SAFE-like folder with nested files and binary content."""
    safe = root / "S2A_MSIL2A_TEST.SAFE"
    (safe / "GRANULE" / "L2A_T32" / "IMG_DATA").mkdir(parents=True)
    (safe / "MTD_MSIL2A.xml").write_text("<xml>metadata</xml>\n")
    (safe / "GRANULE" / "L2A_T32" / "IMG_DATA" / "B04.jp2").write_bytes(os.urandom(200_000))
    (safe / "GRANULE" / "L2A_T32" / "MTD_TL.xml").write_bytes(b"\x00\x01tile")
    return safe


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------
# URIs and configuration (no server needed)


def test_split_s3():
    assert storage.split_s3("s3://bucket-1/a/b.zip") == ("bucket-1", "a/b.zip")
    assert storage.split_s3("s3://bucket-1/x.SAFE/") == ("bucket-1", "x.SAFE/")
    assert storage.split_s3("s3://bucket-1") == ("bucket-1", "")
    assert storage.is_s3("s3://b/k") and not storage.is_s3("/data/s3/x") and not storage.is_s3(
        "data.zip")


@pytest.mark.parametrize("uri", ["s3://", "s3:///x", "s3://A_Bad/x", "/not/s3"])
def test_split_s3_malformed(uri):
    with pytest.raises(ServiceError) as exc:
        storage.split_s3(uri)
    assert uri in str(exc.value) and "\n" not in str(exc.value)


def test_missing_endpoint(clean_env):
    with pytest.raises(ServiceError, match="S3_ENDPOINT_URL"):
        storage.s3_client()
    with pytest.raises(ServiceError, match="S3_ENDPOINT_URL"):
        storage.fetch_input("s3://bucket-1/x.zip", Path("unused"))


def test_endpoint_not_a_url(clean_env):
    clean_env.setenv("S3_ENDPOINT_URL", "127.0.0.1:8333")
    with pytest.raises(ServiceError, match="not a URL"):
        storage.s3_client()


def test_client_from_minio_variables(clean_env):
    clean_env.setenv("AWS_ENDPOINT_URL", "https://s3.example.org")
    clean_env.setenv("MINIO_ACCESS_KEY", "ak")
    clean_env.setenv("MINIO_SECRET_KEY", "sk")
    client = storage.s3_client()
    assert client._base_url.is_https and client._base_url.host == "s3.example.org"


def test_unreachable_endpoint(clean_env, tmp_path):
    from components.common.errors import EnvironmentFailure

    clean_env.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:1")
    clean_env.setenv("EO_S3_RETRIES", "0")  # no pauses between attempts
    with pytest.raises(EnvironmentFailure, match=r"cannot reach S3 endpoint http://127\.0\.0\.1:1"):
        storage.fetch_input("s3://bucket-1/x.zip", tmp_path)


def test_local_input(tmp_path):
    f = tmp_path / "p.zip"
    f.write_bytes(b"zip")
    assert storage.fetch_input(str(f), tmp_path / "work") == f
    with pytest.raises(ServiceError, match="input not found: .*nope.zip"):
        storage.fetch_input(str(tmp_path / "nope.zip"), tmp_path / "work")


def test_publish_local(tmp_path):
    src = _product(tmp_path / "src")
    dest = tmp_path / "out" / "run1"
    written = storage.publish(src, str(dest))
    assert sorted(written) == sorted(str(dest / k) for k in _tree(src))
    assert _tree(dest) == _tree(src)
    assert not [p for p in dest.rglob(".*")]  # no temporary names left
    again = storage.publish(src, str(dest))  # overwrite in place
    assert sorted(again) == sorted(written) and _tree(dest) == _tree(src)


def test_publish_local_move(tmp_path):
    src = _product(tmp_path / "src")
    expected = _tree(src)
    storage.publish(src, str(tmp_path / "out"), move=True)
    assert _tree(tmp_path / "out") == expected and not _tree(src)


def test_check_writable_local(tmp_path):
    storage.check_writable(str(tmp_path / "new" / "deeper"))
    assert not (tmp_path / "new").exists()  # the check creates nothing
    storage.check_writable(str(tmp_path))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ServiceError, match="a-file"):
        storage.check_writable(str(blocker / "out"))
    with pytest.raises(ServiceError, match="not a folder"):
        storage.check_writable(str(blocker))
    with pytest.raises(ServiceError, match="cannot write to"):
        storage.publish(_product(tmp_path / "src"), str(blocker / "out"))


# ------------------------------------------------------------------------------------------
# Round trips through the server


@pytest.mark.s3
def test_folder_round_trip(s3_env, bucket, tmp_path):
    src = _product(tmp_path / "src")
    dest = f"s3://{bucket}/inputs/{src.name}"
    storage.check_writable(dest)
    uris = storage.publish(src, dest)
    assert sorted(uris) == sorted(f"{dest}/{k}" for k in _tree(src))
    assert [o.object_name for o in s3_env.client().list_objects(bucket, recursive=True)
            if ".write-check-" in o.object_name] == []

    for uri in (dest, dest + "/"):
        work = tmp_path / f"work-{uri.endswith('/')}"
        got = storage.fetch_input(uri, work)
        assert got == work / src.name
        assert _tree(got) == _tree(src)
        assert not [p for p in got.rglob(".*")]


@pytest.mark.s3
def test_zip_round_trip(s3_env, bucket, tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    archive = staging / "S1A_IW_GRDH_TEST.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("S1A_IW_GRDH_TEST.SAFE/manifest.safe", "<manifest/>")
        zf.writestr("S1A_IW_GRDH_TEST.SAFE/measurement/vv.tiff", os.urandom(50_000))
    [uri] = storage.publish(staging, f"s3://{bucket}/products")
    assert uri == f"s3://{bucket}/products/{archive.name}"

    got = storage.fetch_input(uri, tmp_path / "work")
    assert got == tmp_path / "work" / archive.name
    assert got.read_bytes() == archive.read_bytes()


@pytest.mark.s3
def test_publish_to_bucket_root(s3_env, bucket, tmp_path):
    src = _product(tmp_path / "src")
    uris = storage.publish(src, f"s3://{bucket}")
    assert f"s3://{bucket}/MTD_MSIL2A.xml" in uris
    got = storage.fetch_input(f"s3://{bucket}", tmp_path / "work")
    assert got == tmp_path / "work" / bucket and _tree(got) == _tree(src)


@pytest.mark.s3
def test_missing_object(s3_env, bucket, tmp_path):
    storage.publish(_product(tmp_path / "src"), f"s3://{bucket}/there")
    for uri in (f"s3://{bucket}/not-there.zip", f"s3://{bucket}/not-there/",
                f"s3://no-such-bucket-{bucket}/x.zip"):
        with pytest.raises(ServiceError) as exc:
            storage.fetch_input(uri, tmp_path / "work")
        assert f"not found in object storage: {uri}" in str(exc.value)


@pytest.mark.s3
def test_wrong_secret(s3_env, bucket, tmp_path, monkeypatch):
    storage.publish(_product(tmp_path / "src"), f"s3://{bucket}/p")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    uri = f"s3://{bucket}/p/MTD_MSIL2A.xml"
    with pytest.raises(ServiceError) as exc:
        storage.fetch_input(uri, tmp_path / "work")
    assert uri in str(exc.value) and "SignatureDoesNotMatch" in str(exc.value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unknown-key")
    with pytest.raises(ServiceError, match="InvalidAccessKeyId"):
        storage.check_writable(f"s3://{bucket}/out")


@pytest.mark.s3
def test_read_only_identity(s3_env, bucket, tmp_path, monkeypatch):
    src = _product(tmp_path / "src")
    storage.publish(src, f"s3://{bucket}/in")
    for name, value in s3_env.env(read_only=True).items():
        monkeypatch.setenv(name, value)

    got = storage.fetch_input(f"s3://{bucket}/in", tmp_path / "work")  # reading is allowed
    assert _tree(got) == _tree(src)

    dest = f"s3://{bucket}/out"
    with pytest.raises(ServiceError) as exc:
        storage.check_writable(dest)
    assert dest in str(exc.value) and "AccessDenied" in str(exc.value)
    with pytest.raises(ServiceError, match="AccessDenied"):
        storage.publish(src, dest)
    with pytest.raises(ServiceError, match="AccessDenied"):
        storage.check_writable(f"s3://new-{bucket}/out")  # may not create buckets either


def test_keys_cannot_escape_workdir(tmp_path):
    # SeaweedFS normalises keys ("a//b" -> "a/b") and the minio client refuses "." and ".."
    # segments, so hostile keys cannot be planted on the test server: check the guard itself.
    root = tmp_path / "work" / "X.SAFE"
    assert storage._safe_join(root, "GRANULE/a/B04.jp2", "s3://b/X.SAFE") == (
        root / "GRANULE" / "a" / "B04.jp2")
    for rel in ("../../etc/passwd", "a/../../x", "/etc/passwd", "..", ""):
        with pytest.raises(ServiceError, match="unsafe object key"):
            storage._safe_join(root, rel, "s3://b/X.SAFE")
    root.mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "link", target_is_directory=True)
    with pytest.raises(ServiceError, match="unsafe object key"):
        storage._safe_join(root, "link/x.txt", "s3://b/X.SAFE")


@pytest.mark.s3
@pytest.mark.parametrize("cuts, fetched", [(1, True), (storage.TRANSFER_ATTEMPTS, False)])
def test_interrupted_transfer_is_fetched_again(s3_env, bucket, tmp_path, monkeypatch, cuts, fetched):
    """A body cut off mid-transfer is a transient fault: fetched again, up to TRANSFER_ATTEMPTS
    times, for an object and for the objects of a prefix; then one line naming the object."""
    from tests.fixtures.s3_relay import CuttingProxy

    payload = os.urandom(300_000)
    staging = tmp_path / "staging" / "P.SAFE"
    staging.mkdir(parents=True)
    (staging / "band.jp2").write_bytes(payload)
    storage.publish(staging.parent, f"s3://{bucket}/cut")
    with CuttingProxy(s3_env.ports["s3"], cut=lambda line: "band.jp2" in line, max_cuts=cuts) as proxy:
        monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        for uri, path in ((f"s3://{bucket}/cut/P.SAFE/band.jp2", "band.jp2"), (f"s3://{bucket}/cut/P.SAFE", "P.SAFE/band.jp2")):
            proxy.left = cuts
            work = tmp_path / f"work-{path.count('/')}"
            if fetched:
                got = storage.fetch_input(uri, work)
                assert (work / path).read_bytes() == payload and got.exists()
            else:
                with pytest.raises(ServiceError, match="band.jp2"):
                    storage.fetch_input(uri, work)
                assert not [p for p in work.rglob("*") if p.is_file()]
        assert len(proxy.spoiled) == 2 * cuts
