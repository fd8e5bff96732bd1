"""Every step of every compiled pipeline gets what it needs on a cluster: the object store's keys
and endpoint, the products volume, memory request and limit; and none is retried by KFP (which
would rerun a step that failed on a bad parameter)."""

from __future__ import annotations

import pytest
import yaml

from pipelines.cluster import CONFIG_MAP_TO_ENV, SECRET_TO_ENV, ClusterPolicy
from pipelines.compile import COMPILED, PIPELINES


def _compiled(name: str) -> tuple[dict, dict]:
    spec, platform = list(yaml.safe_load_all((COMPILED / f"{name}.yaml").read_text()))
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _tasks(dag: dict):
    for task in dag.get("tasks", {}).values():
        yield task


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_every_step_gets_keys_endpoint_and_volume(name):
    spec, platform = _compiled(name)
    policy = ClusterPolicy()
    for executor in spec["deploymentSpec"]["executors"]:
        settings = platform[executor]
        assert settings["secretAsEnv"] == [{
            "secretName": policy.s3_secret, "secretNameParameter": {"runtimeValue": {"constant": policy.s3_secret}},
            "optional": False,
            "keyToEnv": [{"secretKey": k, "envVar": v} for k, v in SECRET_TO_ENV.items()]}], executor
        assert settings["configMapAsEnv"][0]["configMapName"] == policy.storage_config_map, executor
        assert settings["configMapAsEnv"][0]["keyToEnv"] == [
            {"configMapKey": k, "envVar": v} for k, v in CONFIG_MAP_TO_ENV.items()], executor
        assert [m["mountPath"] for m in settings["pvcMount"]] == [policy.products_mount], executor


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_every_step_has_memory_request_and_limit(name):
    spec, _ = _compiled(name)
    for executor, body in spec["deploymentSpec"]["executors"].items():
        resources = body["container"].get("resources", {})
        assert resources.get("resourceMemoryRequest") and resources.get("resourceMemoryLimit"), executor


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_no_step_is_retried_by_kfp(name):
    spec, _ = _compiled(name)
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    for dag in dags:
        for task in _tasks(dag):
            assert "retryPolicy" not in task, task["taskInfo"]["name"]


def test_compile_time_settings_from_the_environment():
    policy = ClusterPolicy.from_env({"EO_S3_SECRET": "store-keys", "EO_PRODUCTS_PVC": ""})
    assert (policy.s3_secret, policy.products_pvc, policy.storage_config_map) == ("store-keys", "", "eo-storage")
