"""GPU placement of training steps: one helper for every pipeline, configured per cluster.

The defaults target the NVIDIA device plugin and GPU Operator conventions (resource
``nvidia.com/gpu``, node label ``nvidia.com/gpu.present=true``, taint ``nvidia.com/gpu``). A
cluster with other labels or taints sets, at compile time:

- ``EO_GPU_ACCELERATOR`` (resource name), ``EO_GPU_COUNT``;
- ``EO_GPU_NODE_SELECTOR``: ``key=value[,key=value...]`` (empty for none);
- ``EO_GPU_TOLERATIONS``: ``key:Operator:value:Effect[;...]`` (empty for none);
- ``EO_GPU_SHM``: size of the memory-backed ``/dev/shm`` (PyTorch data loaders need more than
  the container default).

kfp.local ignores these settings, so GPU steps also run on the CPU locally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kfp import kubernetes


@dataclass(frozen=True)
class GpuPolicy:
    accelerator: str = "nvidia.com/gpu"
    count: int = 1
    node_selector: tuple[tuple[str, str], ...] = (("nvidia.com/gpu.present", "true"),)
    tolerations: tuple[tuple[str, str, str, str], ...] = (("nvidia.com/gpu", "Exists", "", "NoSchedule"),)
    shm_size: str = "8Gi"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> GpuPolicy:
        env = os.environ if env is None else env
        base = cls()
        selector = base.node_selector
        if "EO_GPU_NODE_SELECTOR" in env:
            selector = tuple(tuple(kv.split("=", 1)) for kv in env["EO_GPU_NODE_SELECTOR"].split(",") if kv)
        tolerations = base.tolerations
        if "EO_GPU_TOLERATIONS" in env:
            tolerations = tuple(tuple(t.split(":")) for t in env["EO_GPU_TOLERATIONS"].split(";") if t)
        return cls(env.get("EO_GPU_ACCELERATOR", base.accelerator), int(env.get("EO_GPU_COUNT", base.count)),
                   selector, tolerations, env.get("EO_GPU_SHM", base.shm_size))


def on_gpu(task, policy: GpuPolicy | None = None):
    """Request a GPU for ``task`` and place it on a GPU node; returns the task."""
    policy = policy or GpuPolicy.from_env()
    task.set_accelerator_type(policy.accelerator).set_accelerator_limit(policy.count)
    for key, value in policy.node_selector:
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for key, operator, value, effect in policy.tolerations:
        kubernetes.add_toleration(task, key=key, operator=operator, value=value or None, effect=effect)
    kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory",
                               size_limit=policy.shm_size)
    return task
