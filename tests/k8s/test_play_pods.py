"""The Pods k8s/generate.py builds from the RayService and the model-prep Job for `podman kube play`
(k8s/podplay.py): valid Pods with the manifests' own containers, security contexts, volumes and probes, and the
`ray start` command KubeRay generates from the rayStartParams."""

from __future__ import annotations

import pytest

from k8s.generate import RAY_HEAD_SERVICE, job_pod, ray_start_command, rayservice_pods
from tests.k8s.manifests import KUBERNETES_VERSION, OVERLAYS, rendered


def _one(overlay, kind):
    return next(d for d in rendered(overlay) if d["kind"] == kind)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rayservice_pods_keep_the_manifests_container_specs(overlay):
    import kubernetes_validate

    rs = _one(overlay, "RayService")
    cluster = rs["spec"]["rayClusterConfig"]
    pods = rayservice_pods(rs, {"metrics-export-port": "8092"})
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    assert [p["metadata"]["name"] for p in pods] == ["sui-react-head"] + [
        f"sui-react-{g['groupName']}-worker" for g in cluster["workerGroupSpecs"]]
    for pod, group in zip(pods, groups, strict=True):
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        spec, template = pod["spec"], group["template"]["spec"]
        assert spec["securityContext"] == template["securityContext"]
        assert spec["volumes"] == template["volumes"]
        played, declared = spec["containers"][0], template["containers"][0]
        for key in ("image", "env", "securityContext", "volumeMounts", "resources", "readinessProbe",
                    "livenessProbe", "ports"):
            assert played.get(key) == (declared.get(key) if key != "env" else
                                       [*declared["env"], {"name": "RAY_CLUSTER_NAME", "value": "sui-react"}]), key
        head = pod is pods[0]
        assert played["command"][:3] == (["ray", "start", "--head"] if head else ["ray", "start", "--block"])
        assert any(a.startswith("--address=") for a in played["command"]) is not head
        assert ("--metrics-export-port=8092" in played["command"]) is head  # the play's head-only override


def test_ray_start_command_follows_kuberay():
    head = ray_start_command({"num-cpus": "0", "dashboard-host": "0.0.0.0"}, {"limits": {"cpu": "2", "memory": "3Gi"}},
                             head=True)
    assert head == ["ray", "start", "--head", "--block", "--num-cpus=0", "--dashboard-host=0.0.0.0",
                    f"--memory={3 * 2**30}", "--port=6379"]
    worker = ray_start_command({}, {"limits": {"cpu": "2500m", "memory": "4Gi"}}, head=False)
    assert worker == ["ray", "start", "--block", "--num-cpus=2", f"--memory={4 * 2**30}",
                      f"--address={RAY_HEAD_SERVICE}.sui-qa.svc.cluster.local:6379"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_job_pod_is_the_job_template(overlay):
    import kubernetes_validate

    job = next(d for d in rendered(overlay) if d["kind"] == "Job")
    pod = job_pod(job)
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    assert pod["spec"] == job["spec"]["template"]["spec"] and pod["metadata"]["name"] == job["metadata"]["name"]


def test_the_plays_hosts_file_names_every_host_the_pipeline_calls(tmp_path):
    """The play's stand-in for cluster DNS must name each tier's URL host in the CPU overlay's serveConfigV2 (the
    headless `-replicas` Services since run-affine routing): an unknown name leaves the agent no tier to call."""
    import re

    import yaml

    from k8s.podplay import Play

    ray = _one("cpu", "RayService")
    hosts = set(re.findall(r"https?://([^:/]+)", yaml.safe_dump(ray["spec"]["serveConfigV2"])))
    assert any(h.endswith("-replicas.sui-qa.svc") for h in hosts), hosts
    play = Play(tmp_path, log=print)
    play._hosts()
    named = set((tmp_path / "hosts").read_text(encoding="utf-8").split())
    assert hosts <= named, hosts - named
