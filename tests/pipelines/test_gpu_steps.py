"""Every compiled pipeline's GPU steps carry, in the platform section, what the GPU node policy of
the manifests expects: accelerator limit, node selector, toleration and the memory-backed /dev/shm;
and only the training steps ask for a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.gpu import GpuPolicy

COMPILED = Path(__file__).resolve().parents[2] / "pipelines" / "compiled"
# the steps that train a network: on a GPU node in the cluster (and on the CPU with kfp.local)
GPU_STEPS = {"crop_type_training": {"exec-train-lstm"},
             "s2_segmentation": {"exec-pretrain-encoder", "exec-train-model", "exec-train-model-2"},
             "aq_downscaling": {"exec-aq-train"}}


def _documents(path: Path):
    docs = list(yaml.safe_load_all(path.read_text()))
    spec = docs[0]
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if len(docs) > 1 else {}
    return spec["deploymentSpec"]["executors"], platform


@pytest.mark.parametrize("path", sorted(COMPILED.glob("*.yaml")), ids=lambda p: p.stem)
def test_gpu_steps_are_placed_on_gpu_nodes(path):
    executors, platform = _documents(path)
    policy = GpuPolicy()
    on_gpu = {name for name, ex in executors.items() if "accelerator" in ex["container"].get("resources", {})}
    assert on_gpu == GPU_STEPS.get(path.stem, set())
    for name in on_gpu:
        accelerator = executors[name]["container"]["resources"]["accelerator"]
        assert accelerator["resourceType"] == policy.accelerator and int(accelerator["resourceCount"]) == policy.count
        placement = platform[name]
        assert placement["nodeSelector"]["labels"] == dict(policy.node_selector)
        assert [(t["key"], t["operator"], t.get("value", ""), t["effect"]) for t in placement["tolerations"]] == \
            list(policy.tolerations)
        assert {"mountPath": "/dev/shm", "medium": "Memory", "sizeLimit": policy.shm_size,
                "volumeName": "dshm"} in placement["emptyDirMounts"]


def test_gpu_policy_matches_the_manifests():
    """The node label and taint the helper targets are the ones the gpu-production overlay sets up."""
    manifests = Path(__file__).resolve().parents[2] / "manifests"
    text = "\n".join(p.read_text() for p in manifests.rglob("*.yaml"))
    policy = GpuPolicy()
    for key, value in policy.node_selector:
        assert key in text and value in text
    for key, *_ in policy.tolerations:
        assert key in text
