"""Fixtures of the container runs: the engine, and a cluster's secrets and ConfigMaps pointing at
the test S3 server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import declared_environment, docker_client, images, require_images


@pytest.fixture(scope="session")
def engine():
    return docker_client()


@pytest.fixture
def container_env(engine, s3_server):
    """``container_env(pipeline)``: checks its images are built and returns the environment its
    compiled YAML declares, resolved against this cluster's secret and ConfigMap. ``unused``
    names images of branches the run does not take (the SNAP engine's, for a native run)."""
    secrets = {"mlpipeline-minio-artifact": {"accesskey": s3_server.access_key, "secretkey": s3_server.secret_key}}
    config_maps = {"eo-storage": {"S3_ENDPOINT_URL": s3_server.endpoint}}

    def resolve(pipeline: str, *, unused: tuple[str, ...] = ()) -> dict[str, str]:
        declared = images(pipeline)
        assert set(unused) <= declared, f"{pipeline} declares no image {set(unused) - declared}"
        require_images(engine, *sorted(declared - set(unused)))
        return declared_environment(pipeline, secrets, config_maps)

    return resolve


@pytest.fixture
def upload(s3_server):
    """``upload(path, "bucket/key")`` puts a local file into the test S3 server; returns its URI.
    A folder goes under the prefix ``key/`` with its layout kept (an unzipped ``.SAFE``, a folder
    of tiles), and its URI ends with a slash."""
    client = s3_server.client()

    def put(path: Path, target: str) -> str:
        bucket, _, key = target.partition("/")
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
        path = Path(path)
        if path.is_dir():
            prefix = key.rstrip("/")
            files = sorted(p for p in path.rglob("*") if p.is_file())
            assert files, f"nothing to upload under {path}"
            for file in files:
                client.fput_object(bucket, f"{prefix}/{file.relative_to(path).as_posix()}", str(file))
            return f"s3://{bucket}/{prefix}/"
        client.fput_object(bucket, key, str(path))
        return f"s3://{bucket}/{key}"

    return put


@pytest.fixture
def bucket_objects(s3_server):
    """``bucket_objects("bucket/prefix")``: the keys under that prefix, relative to it, sorted."""
    client = s3_server.client()

    def listing(target: str) -> list[str]:
        bucket, _, prefix = target.partition("/")
        prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        return sorted(o.object_name[len(prefix):] for o in
                      client.list_objects(bucket, prefix=prefix or None, recursive=True))

    return listing
