"""Compiled pipelines run in their own images: kfp's ``kfp.local.DockerRunner`` over a Docker
API (Podman's ``podman system service`` here), against a real S3 server (SeaweedFS).

The object store's keys and endpoint reach the containers the way the compiled pipeline declares
them: :func:`declared_environment` reads each executor's ``secretAsEnv`` and ``configMapAsEnv``
from the YAML's Kubernetes platform section and resolves them against the secrets and ConfigMaps
a cluster would hold. (kfp.local ignores the platform section itself.)

DockerRunner may report success for a failed container (kubeflow/pipelines#13332), so the tests
check the files a run wrote, never the status it reports.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import yaml

from pipelines.compile import COMPILED
from pipelines.local_print import print_restored

# Set by .ci/run: an engine or image that is missing is then a failure, not a skip.
REQUIRED_VARIABLE = "EO_E2E_REQUIRED"


def _unavailable(reason: str):
    if os.environ.get(REQUIRED_VARIABLE):
        pytest.fail(f"{reason} ({REQUIRED_VARIABLE} is set)")
    pytest.skip(reason)


def docker_client():
    """A client of the Docker API at ``DOCKER_HOST``; skips (or fails, see above) without one."""
    try:
        import docker
    except ImportError:
        _unavailable("the docker SDK is not installed (make install provides it)")
    if not os.environ.get("DOCKER_HOST"):
        _unavailable("DOCKER_HOST is not set: start `podman system service` (see `make e2e`)")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the engine
        _unavailable(f"no container engine at {os.environ['DOCKER_HOST']}: {exc}")
    return client


def require_images(client, *images: str) -> None:
    present = {tag for image in client.images.list() for tag in image.tags}
    missing = [image for image in images if image not in present]
    if missing:
        _unavailable(f"image(s) not built: {', '.join(missing)} (run `make images`)")


def compiled(pipeline: str) -> tuple[dict, dict]:
    """The pipeline spec and the Kubernetes platform spec of ``pipelines/compiled/<pipeline>.yaml``."""
    docs = [d for d in yaml.safe_load_all((COMPILED / f"{pipeline}.yaml").read_text()) if d]
    spec = docs[0]
    platform = docs[1]["platforms"]["kubernetes"] if len(docs) > 1 else {}
    return spec, platform


def images(pipeline: str) -> set[str]:
    spec, _ = compiled(pipeline)
    return {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}


def declared_environment(pipeline: str, secrets: dict[str, dict[str, str]],
                         config_maps: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment every executor of ``pipeline`` gets from its secrets and ConfigMaps.

    Fails if an executor declares none, names a secret/ConfigMap/key the cluster lacks, or if
    executors differ (DockerRunner gives every container the same environment)."""
    spec, platform = compiled(pipeline)
    executors = platform.get("deploymentSpec", {}).get("executors", {})
    envs = {}
    for name in spec["deploymentSpec"]["executors"]:
        declared = executors.get(name, {})
        assert declared.get("secretAsEnv") and declared.get("configMapAsEnv"), \
            f"{pipeline}: executor {name} gets no object-store keys or endpoint"
        env = {}
        for source, store, name_key, value_key in (("secretAsEnv", secrets, "secretName", "secretKey"),
                                                   ("configMapAsEnv", config_maps, "configMapName", "configMapKey")):
            for entry in declared[source]:
                values = store[entry[name_key]]
                for item in entry["keyToEnv"]:
                    env[item["envVar"]] = values[item[value_key]]
        envs[name] = env
    distinct = {tuple(sorted(e.items())) for e in envs.values()}
    assert len(distinct) == 1, f"{pipeline}: executors declare different environments: {envs}"
    return envs.popitem()[1]


def run_compiled(pipeline: str, arguments: dict, root: Path, environment: dict[str, str]) -> Path:
    """Run ``pipelines/compiled/<pipeline>.yaml`` with DockerRunner; returns the pipeline root.

    Containers share the host's network (the S3 server listens on 127.0.0.1) and run as the
    image's user (uid 1000), so the pipeline root is made writable for it."""
    import kfp.local
    from kfp import components

    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o777)
    kfp.local.init(runner=kfp.local.DockerRunner(network_mode="host", environment=environment),
                   pipeline_root=str(root.resolve()), raise_on_error=False)
    name = pipeline
    pipeline = components.load_component_from_file(str(COMPILED / f"{name}.yaml"))
    assert pipeline.component_spec.implementation.graph is not None, \
        f"{name}.yaml reads back as one component, not the pipeline (is the pipeline named like a component?)"
    with _removed_container_is_not_found(), print_restored():
        pipeline(**arguments)
    return root


@contextlib.contextmanager
def _removed_container_is_not_found():
    """Podman 4.3's Docker API answers 500 "no such container" where Docker answers 404 for a
    container that exited and was auto-removed before its logs were asked for. DockerRunner
    handles the 404 (``docker.errors.NotFound``) only, so a fast step would crash the run: the
    answer is read as Docker's."""
    import docker

    original = docker.api.client.APIClient._raise_for_status

    def raise_for_status(self, response):
        try:
            original(self, response)
        except docker.errors.APIError as exc:
            if exc.status_code == 500 and "no such container" in str(exc.explanation or ""):
                raise docker.errors.NotFound(str(exc), response=exc.response, explanation=exc.explanation) from exc
            raise

    docker.api.client.APIClient._raise_for_status = raise_for_status
    try:
        yield
    finally:
        docker.api.client.APIClient._raise_for_status = original


def logged_metadata(root: Path) -> dict[str, list[dict]]:
    """The metadata of every output artifact the steps under ``root`` logged (metrics, confusion
    matrices, product names), by output name, from their ``executor_output.json``."""
    import json

    logged: dict[str, list[dict]] = {}
    for path in sorted(root.rglob("executor_output.json")):
        for name, artifacts in json.loads(path.read_text()).get("artifacts", {}).items():
            for artifact in artifacts.get("artifacts", []):
                logged.setdefault(name, []).append(artifact.get("metadata", {}))
    return logged


def files(root: Path, pattern: str) -> list[Path]:
    """The plain files under ``root`` whose name matches ``pattern``, sorted."""
    return sorted(p for p in root.rglob(pattern) if p.is_file())
