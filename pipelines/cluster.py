"""What every pipeline step needs on a cluster: its name and resources, the object store's
endpoint and keys, and the shared products volume. Every step of every pipeline is declared
through :func:`step`, so none can miss them (a test checks the compiled YAML).

The defaults match ``manifests/base``:

- keys: the secret ``mlpipeline-minio-artifact`` (keys ``accesskey``/``secretkey``, the ones the
  KFP launcher uses) as ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``;
- endpoint: the ConfigMap ``eo-storage``, key ``S3_ENDPOINT_URL``;
- the ReadWriteMany volume ``eo-products`` mounted at ``/mnt/eo-products`` (products may be
  given as paths under it instead of ``s3://`` URIs).

A cluster with other names sets, at compile time, ``EO_S3_SECRET``, ``EO_STORAGE_CONFIGMAP``,
``EO_PRODUCTS_PVC`` (empty: no volume) and ``EO_PRODUCTS_MOUNT``.

Steps are not retried by KFP: it retries any non-zero exit, so a bad parameter (exit 2) would be
run again. Transient object-store failures are retried where they happen, by the storage
client (``components.common.storage``), which can tell them from user errors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kfp import kubernetes

SECRET_TO_ENV = {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}
CONFIG_MAP_TO_ENV = {"S3_ENDPOINT_URL": "S3_ENDPOINT_URL"}


@dataclass(frozen=True)
class ClusterPolicy:
    s3_secret: str = "mlpipeline-minio-artifact"
    storage_config_map: str = "eo-storage"
    products_pvc: str = "eo-products"
    products_mount: str = "/mnt/eo-products"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ClusterPolicy:
        env = os.environ if env is None else env
        base = cls()
        return cls(env.get("EO_S3_SECRET", base.s3_secret),
                   env.get("EO_STORAGE_CONFIGMAP", base.storage_config_map),
                   env.get("EO_PRODUCTS_PVC", base.products_pvc),
                   env.get("EO_PRODUCTS_MOUNT", base.products_mount))


def on_cluster(task, policy: ClusterPolicy | None = None):
    """Give ``task`` the object store's keys and endpoint and the products volume; returns it."""
    policy = policy or ClusterPolicy.from_env()
    kubernetes.use_secret_as_env(task, secret_name=policy.s3_secret, secret_key_to_env=SECRET_TO_ENV)
    kubernetes.use_config_map_as_env(task, config_map_name=policy.storage_config_map,
                                      config_map_key_to_env=CONFIG_MAP_TO_ENV)
    if policy.products_pvc:
        kubernetes.mount_pvc(task, pvc_name=policy.products_pvc, mount_path=policy.products_mount)
    return task


def step(task, name: str, *, memory: tuple[str, str], cpu: str | None = None):
    """Name ``task``, set its memory request/limit (and CPU limit: none for GPU steps, whose
    node decides) and its cluster settings; returns it."""
    task.set_display_name(name)
    request, limit = memory
    task.set_memory_request(request).set_memory_limit(limit)
    if cpu:
        task.set_cpu_limit(cpu)
    return on_cluster(task)
