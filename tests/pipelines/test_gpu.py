"""The GPU helper compiles into the platform section of the pipeline spec."""

import yaml
from kfp import compiler, dsl

from pipelines.gpu import GpuPolicy, on_gpu


@dsl.component(base_image="python:3.11")
def _train() -> str:
    return "ok"


def _compile(tmp_path, policy):
    @dsl.pipeline(name="gpu-check")
    def pipe():
        on_gpu(_train(), policy)

    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(pipe, str(path))
    docs = list(yaml.safe_load_all(path.read_text()))
    spec, platform = docs[0], docs[1]
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]


def test_default_policy(tmp_path):
    spec, k8s = _compile(tmp_path, GpuPolicy())
    resources = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert int(resources["accelerator"]["resourceCount"]) == 1
    assert k8s["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    assert k8s["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert k8s["emptyDirMounts"][0]["mountPath"] == "/dev/shm"


def test_policy_from_environment(tmp_path):
    policy = GpuPolicy.from_env({"EO_GPU_NODE_SELECTOR": "pool=a100,zone=b", "EO_GPU_COUNT": "2",
                                 "EO_GPU_TOLERATIONS": "gpu:Equal:true:NoExecute"})
    spec, k8s = _compile(tmp_path, policy)
    assert k8s["nodeSelector"]["labels"] == {"pool": "a100", "zone": "b"}
    assert k8s["tolerations"] == [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoExecute"}]
    resources = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert int(resources["accelerator"]["resourceCount"]) == 2
