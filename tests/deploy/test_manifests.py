"""Kubernetes manifests: every overlay renders with kustomize and validates strictly; the GPU
policy they declare is the one the pipelines' GPU helper compiles."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.gpu import GpuPolicy

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(p.parent for p in (REPO / "manifests" / "overlays").glob("*/kustomization.yaml"))


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed (make install provides it)")
    return path


def render(overlay: Path) -> list[dict]:
    out = subprocess.run([_tool("kubectl"), "kustomize", str(overlay)], capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[o.name for o in OVERLAYS])
def test_overlay_renders_and_validates_strictly(overlay, tmp_path):
    docs = render(overlay)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    proc = subprocess.run([_tool("kubernetes-validate"), "--strict", "--quiet", str(rendered)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Namespace", "eo-services"), ("ServiceAccount", "eo-pipeline-runner"), ("ConfigMap", "kfp-launcher"),
            ("Secret", "mlpipeline-minio-artifact"), ("PersistentVolumeClaim", "eo-products")} <= kinds
    assert all(d["metadata"].get("namespace", "eo-services") == "eo-services" for d in docs)


def test_no_credentials_are_committed():
    for overlay in OVERLAYS:
        for d in render(overlay):
            if d["kind"] == "Secret":
                # templates only, left out by the documented apply (-l 'eo-kfp-services/template!=true')
                assert d["metadata"]["labels"]["eo-kfp-services/template"] == "true"
                assert all("REPLACE_ME" in v for v in d["stringData"].values())
                assert "data" not in d


def test_gpu_policy_matches_the_pipeline_helper():
    base = next(d for d in render(REPO / "manifests" / "overlays" / "local") if d["metadata"]["name"] == "eo-gpu-policy")
    assert GpuPolicy.from_env(base["data"]) == GpuPolicy()


def test_launcher_points_at_the_artifact_secret():
    launcher = next(d for d in render(OVERLAYS[0]) if d["metadata"]["name"] == "kfp-launcher")
    s3 = yaml.safe_load(launcher["data"]["providers"])["s3"]["default"]
    assert s3["credentials"]["secretRef"] == {"secretName": "mlpipeline-minio-artifact", "accessKeyKey": "accesskey",
                                              "secretKeyKey": "secretkey"}
    assert launcher["data"]["defaultPipelineRoot"].startswith("s3://")


def test_documented_apply_leaves_out_every_template():
    """docs/deploy.md applies with -l 'eo-kfp-services/template!=true': what remains holds no placeholder."""
    assert "kubectl apply -l 'eo-kfp-services/template!=true' -f -" in (REPO / "docs" / "deploy.md").read_text()
    for overlay in OVERLAYS:
        kept = [d for d in render(overlay) if d["metadata"].get("labels", {}).get("eo-kfp-services/template") != "true"]
        assert kept and "REPLACE_ME" not in yaml.safe_dump_all(kept)
        assert not [d for d in kept if d["kind"] == "Secret"]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[o.name for o in OVERLAYS])
def test_every_name_the_pipelines_use_is_created(overlay):
    """The secret, ConfigMap and volume that pipelines/cluster.py compiles into every step exist,
    with the keys it maps, and the endpoint is the one the launcher uses."""
    from pipelines.cluster import CONFIG_MAP_TO_ENV, SECRET_TO_ENV, ClusterPolicy

    docs = {(d["kind"], d["metadata"]["name"]): d for d in render(overlay)}
    policy = ClusterPolicy()
    assert set(SECRET_TO_ENV) <= set(docs["Secret", policy.s3_secret]["stringData"])
    storage = docs["ConfigMap", policy.storage_config_map]["data"]
    assert set(CONFIG_MAP_TO_ENV) <= set(storage)
    assert ("PersistentVolumeClaim", policy.products_pvc) in docs
    launcher = yaml.safe_load(docs["ConfigMap", "kfp-launcher"]["data"]["providers"])["s3"]["default"]
    assert storage["S3_ENDPOINT_URL"] == f"http://{launcher['endpoint']}"
