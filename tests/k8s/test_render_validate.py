"""Issue #15 acceptance 1: every overlay renders offline (`kubectl kustomize`), core kinds validate against the
Kubernetes schemas of a stated release (kubernetes-validate, strict), custom resources against the vendored
upstream CRD schemas; the generated files are what the generator writes (drift)."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from k8s.generate import render, stale_files
from tests.k8s.manifests import KUBERNETES_VERSION, OVERLAYS, SCHEMAS, crd_errors, rendered


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(overlay):
    kinds = {doc["kind"] for doc in rendered(overlay)}
    assert {"Deployment", "Service", "RayService", "Job", "PersistentVolumeClaim", "PodDisruptionBudget",
            "ServiceAccount", "NetworkPolicy"} <= kinds
    assert all(doc["metadata"].get("namespace") == "sui-qa" for doc in rendered(overlay) if doc["kind"] != "Namespace")


def test_gpu_overlay_has_every_component():
    kinds = {doc["kind"] for doc in rendered("gpu")}
    assert {"PodMonitor", "PrometheusRule", "ConfigMap", "ScaledObject", "NetworkPolicy"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_kinds_validate(overlay):
    checked = 0
    for doc in rendered(overlay):
        if (doc["apiVersion"], doc["kind"]) in SCHEMAS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 15


def test_core_validation_rejects_a_typo():
    deployment = copy.deepcopy(next(d for d in rendered("gpu") if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_validate_against_vendored_crds(overlay):
    custom = [doc for doc in rendered(overlay) if (doc["apiVersion"], doc["kind"]) in SCHEMAS]
    assert custom
    for doc in custom:
        assert crd_errors(doc) == [], f"{doc['kind']}/{doc['metadata']['name']}"


def test_crd_validation_rejects_bad_resources():
    rayservice = copy.deepcopy(next(d for d in rendered("gpu") if d["kind"] == "RayService"))
    rayservice["spec"]["serveConfigv2"] = rayservice["spec"].pop("serveConfigV2")   # a typo'd field
    assert any("serveConfigv2" in e for e in crd_errors(rayservice))
    scaled = copy.deepcopy(next(d for d in rendered("gpu") if d["kind"] == "ScaledObject"))
    scaled["spec"]["minReplicaCount"] = "one"                                        # a wrong type
    assert crd_errors(scaled)
    monitor = copy.deepcopy(next(d for d in rendered("gpu") if d["kind"] == "PodMonitor"))
    del monitor["spec"]["selector"]                                                  # a required field
    assert crd_errors(monitor)


def test_committed_generated_files_equal_the_generator():
    assert stale_files() == [], "run `python -m k8s.generate` and commit the result"
    assert len(render()) == 3 * len(OVERLAYS) + 2  # vllm, rayservice, model-prep per overlay + rule + dashboard


def test_drift_check_notices_an_edited_file(tmp_path):
    for path, text in render().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text, encoding="utf-8")
    assert stale_files(tmp_path) == []
    edited = tmp_path / "overlays/gpu/generated/vllm.yaml"
    edited.write_text(edited.read_text(encoding="utf-8").replace("'0.9'", "'0.95'"), encoding="utf-8")
    assert [str(p) for p in stale_files(tmp_path)] == ["overlays/gpu/generated/vllm.yaml"]


def test_cpu_overlay_with_the_optional_components(tmp_path):
    """A dev cluster that has the CRDs adds monitoring and autoscaling as the README says; that renders and
    validates too."""
    import os

    from tests.k8s.manifests import K8S, crd_errors, kustomize

    def rel(path: str) -> str:  # kustomize wants relative roots
        return os.path.relpath(K8S / path, tmp_path)

    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{rel('overlays/cpu')}]\n"
        f"components: [{rel('components/monitoring')}, {rel('components/autoscaling')}]\n", encoding="utf-8")
    docs = kustomize(tmp_path)
    custom = [d for d in docs if (d["apiVersion"], d["kind"]) in SCHEMAS]
    assert {d["kind"] for d in custom} == {"RayService", "PodMonitor", "PrometheusRule", "ScaledObject"}
    for doc in custom:
        assert crd_errors(doc) == [], f"{doc['kind']}/{doc['metadata']['name']}"
