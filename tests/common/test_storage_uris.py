"""S3 URIs and endpoints that cannot be used are one line naming them (no request is made), and
object keys that cannot become local files are one line too (a real S3 server)."""

from __future__ import annotations

import io

import pytest

from components.common import storage
from components.common.errors import ServiceError
from tests.fixtures.storage_env import bucket, clean_env, s3_env  # noqa: F401  (fixtures)


@pytest.mark.parametrize("name", ["a_b", "a.-b", "ab-.c", "10.0.0.1", "ab..c", "Abc"])
def test_a_bucket_name_s3_refuses_is_refused_here(name):
    with pytest.raises(ServiceError, match=f"malformed s3 URI 's3://{name}/x': '{name}' is not a valid bucket name"):
        storage.split_s3(f"s3://{name}/x")


def test_a_key_that_is_not_utf8_is_refused():
    key = b"\xff\xfe.zip".decode("utf-8", "surrogateescape")  # how Python passes such argv bytes
    with pytest.raises(ServiceError, match="the key is not valid UTF-8 text"):
        storage.split_s3(f"s3://inb/{key}")


@pytest.mark.parametrize("endpoint", ["http://[::1", "http://exa mple:9000"])
def test_an_endpoint_that_is_no_url_is_refused(clean_env, monkeypatch, endpoint):  # noqa: F811
    monkeypatch.setenv("S3_ENDPOINT_URL", endpoint)
    with pytest.raises(ServiceError, match="is not a URL: expected http://host:port") as e:
        storage.s3_client()
    assert type(e.value) is ServiceError  # the user's setting: exit status 2


@pytest.mark.s3
def test_a_key_beside_keys_below_it_is_one_line(s3_env, bucket, tmp_path):  # noqa: F811
    client = s3_env.client()
    client.make_bucket(bucket)
    for key in ("p/X.SAFE/GRANULE", "p/X.SAFE/GRANULE/a.xml"):  # a file and a folder of one name
        client.put_object(bucket, key, io.BytesIO(b"x"), 1)
    with pytest.raises(ServiceError, match="^cannot store .* as the local file "):
        storage.fetch_input(f"s3://{bucket}/p", tmp_path / "work")


@pytest.mark.s3
def test_a_file_name_near_the_file_systems_limit_is_fetched(s3_env, bucket, tmp_path):  # noqa: F811
    name = "n" * 251 + ".xml"  # 255 bytes, the most a file name may have
    client = s3_env.client()
    client.make_bucket(bucket)
    client.put_object(bucket, f"p/{name}", io.BytesIO(b"x"), 1)
    assert (storage.fetch_input(f"s3://{bucket}/p", tmp_path / "work") / name).read_bytes() == b"x"
