"""`python -m k8s.podplay`: run the `cpu` overlay's pods as Kubernetes would, with `podman kube play`.

No API server runs here, so each part is played the way its controller would start it:

- Deployments (vLLM domain + agent), their Services and the model PVC: the rendered manifests, as they are;
- the model-prep Job and the RayService (kinds podman cannot play): the Pods :func:`k8s.generate.job_pod` and
  :func:`k8s.generate.rayservice_pods` build from the same rendered specs (head + one pod per worker group, the
  ``ray start`` KubeRay generates), then the KubeRay operator's step: ``serveConfigV2`` PUT to the head's dashboard;
- the API key Secret, created the way k8s/README.md tells a user to (``kubectl create secret``) — here as a podman
  secret, the store ``secretKeyRef`` reads under ``kube play``.

What only the play adds, because every pod shares the host's network (no CNI here): a hosts file standing in for
cluster DNS (the Services' names -> 127.0.0.1), the PVC's owner (``volume.podman.io/uid``: podman ignores
``fsGroup``), and distinct metrics/agent ports for the Ray head. Then every check the issue asks for: each
container's uid/gid, read-only root, writable and read-only mounts, every startup/readiness/liveness probe as
the manifest defines it, a streamed chat completion with the Secret's key and a 401 without. ``down`` removes
everything it created. The transcript goes to ``--out`` (markdown) and ``<out>.json``.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from k8s.generate import (
    K8S_DIR,
    NAMESPACE,
    RAY_HEAD_SERVICE,
    job_pod,
    rayservice_pods,
    replicas_service_name,
    service_name,
)

REPO = K8S_DIR.parent
STACK_LOCK = "/tmp/suiqa-stack.lock"
SECRET = "sui-qa-api-keys"
HEAD_OVERRIDES = {"metrics-export-port": "8092", "dashboard-agent-listen-port": "52366"}
QUESTION = "隋炀帝为什么开凿大运河？"


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(K8S_DIR / "images" / "containers.conf")}


def podman(*args: str, check: bool = True, timeout: float = 300, input: str | None = None) -> str:
    out = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=podman_env(),
                         input=input)
    if check and out.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])}: {out.stderr.strip()[-2000:]}")
    return out.stdout


def render(overlay: str = "cpu") -> list[dict[str, Any]]:
    out = subprocess.run(["kubectl", "kustomize", str(K8S_DIR / "overlays" / overlay)], check=True,
                         capture_output=True, text=True, timeout=120)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def without_ports(doc: dict[str, Any]) -> dict[str, Any]:
    """The doc with no container ``ports`` (podman 4.3 maps every containerPort to a host port, which a host
    network refuses; on the host network each container listens on its port anyway). The probes keep naming the
    ports: they are resolved from the manifest's own spec."""
    doc = json.loads(json.dumps(doc))
    spec = doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment" else doc["spec"]
    for c in spec["containers"]:
        c.pop("ports", None)
    return doc


SHM_ROOT = Path("/dev/shm/suiqa-play")


def memory_volumes_on_host_shm(doc: dict[str, Any], pod: str) -> dict[str, Any]:
    """``emptyDir: {medium: Memory}`` as a memory-backed host folder with the kubelet's emptyDir mode (0777).
    podman 4.3 mounts such a volume as a tmpfs only root may write, so uid 1000 could not use /dev/shm
    (vLLM: ``PermissionError: '/psm_...'``; Ray's object store) although the same manifest works on a cluster."""
    doc = json.loads(json.dumps(doc))
    spec = doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment" else doc["spec"]
    for i, vol in enumerate(spec.get("volumes", [])):
        if (vol.get("emptyDir") or {}).get("medium") == "Memory":
            path = SHM_ROOT / f"{pod}-{vol['name']}"
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o1777)
            spec["volumes"][i] = {"name": vol["name"], "hostPath": {"path": str(path), "type": "Directory"}}
    return doc


def _one(docs, kind, name=None):
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


class Play:
    def __init__(self, work: Path, log):
        self.work = work
        self.log = log
        self.files: list[Path] = []
        self.docs = render()
        self.pods: dict[str, dict[str, Any]] = {}  # podman pod name -> pod spec
        self.key = "sk-play-" + secrets.token_hex(12)

    def _write(self, name: str, docs: list[dict[str, Any]]) -> Path:
        path = self.work / name
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True), encoding="utf-8")
        self.files.append(path)
        return path

    def _hosts(self) -> dict[str, Any]:
        # the tiers' Services and their headless ones (the agent resolves those: run-affine routing, one pod here)
        names = [f"{name(r)}.{NAMESPACE}.svc" for name in (service_name, replicas_service_name)
                 for r in ("domain", "agent")]
        names += [f"{RAY_HEAD_SERVICE}.{NAMESPACE}.svc.cluster.local"]
        hosts = self.work / "hosts"
        hosts.write_text("127.0.0.1 localhost " + " ".join(names) + "\n::1 localhost\n", encoding="utf-8")
        return {"name": "play-dns", "hostPath": {"path": str(hosts), "type": "File"}}

    def _add_dns(self, pod: dict[str, Any]) -> dict[str, Any]:
        pod["spec"]["volumes"].append(self._hosts())
        for c in pod["spec"]["containers"]:
            c.setdefault("volumeMounts", []).append({"name": "play-dns", "mountPath": "/etc/hosts", "readOnly": True})
        return pod

    def up(self) -> None:
        docs = self.docs
        # the Secret, as `kubectl create secret generic sui-qa-api-keys --from-literal=api-keys=...` would make it
        # (podman 4.3's secretKeyRef reads a JSON map of base64 values)
        podman("secret", "rm", SECRET, check=False)
        value = base64.b64encode(self.key.encode()).decode()
        podman("secret", "create", SECRET, "-", input=json.dumps({"api-keys": value}))
        pvc = _one(docs, "PersistentVolumeClaim")[0]
        prep = job_pod(_one(docs, "Job", "sui-model-prep")[0])
        group = str(prep["spec"]["securityContext"]["fsGroup"])
        pvc["metadata"].setdefault("annotations", {}).update(
            {"volume.podman.io/uid": str(prep["spec"]["securityContext"]["runAsUser"]), "volume.podman.io/gid": group})
        self.log(f"## model-prep (Job `sui-model-prep` as a Pod) on PVC `{pvc['metadata']['name']}`")
        t0 = time.monotonic()
        podman("kube", "play", "--network=host", str(self._write("10-models.yaml", [pvc, prep])))
        self.pods[prep["metadata"]["name"]] = prep
        cname = f"{prep['metadata']['name']}-{prep['spec']['containers'][0]['name']}"
        rc = podman("wait", cname, timeout=900).strip()
        self.log(f"prep exited {rc} after {time.monotonic() - t0:.0f} s; last log lines:\n```\n"
                 + "\n".join(podman("logs", cname).splitlines()[-5:]) + "\n```")
        if rc != "0":
            raise RuntimeError(f"model prep failed: {podman('logs', cname, check=False)[-3000:]}")
        self.security(prep["metadata"]["name"], prep, running=False)
        # vLLM tiers: the rendered Deployments and Services, unchanged
        deploys = _one(docs, "Deployment")
        # (their ClusterIP Services not: podman turns a Service's ports into host port mappings, which a host
        # network cannot have; the hosts file gives their names, and their ports are the pods' own)
        self.log("## vLLM tiers (rendered Deployments)")
        vllm_pods = [memory_volumes_on_host_shm(without_ports(d), d["metadata"]["name"]) for d in deploys]
        podman("kube", "play", "--network=host", str(self._write("20-vllm.yaml", vllm_pods)))
        for d in deploys:
            self.pods[f"{d['metadata']['name']}-pod-0"] = d["spec"]["template"]
        ray = [self._add_dns(p) for p in rayservice_pods(_one(docs, "RayService")[0], HEAD_OVERRIDES)]
        self.log("## Ray tier (RayService head + worker group as Pods)\n```\n" + "\n".join(
            f"{p['metadata']['name']}: {' '.join(p['spec']['containers'][0]['command'])}" for p in ray) + "\n```")
        ray_pods = [memory_volumes_on_host_shm(without_ports(p), p["metadata"]["name"]) for p in ray]
        podman("kube", "play", "--network=host", str(self._write("30-ray.yaml", ray_pods)))
        for p in ray:
            self.pods[p["metadata"]["name"]] = p

    def container(self, pod: str, spec: dict[str, Any]) -> str:
        return f"{pod}-{spec['name']}"

    def _port(self, spec, port) -> int:
        if isinstance(port, int):
            return port
        return next(p["containerPort"] for p in spec["ports"] if p.get("name") == port)

    def probe(self, pod: str, spec: dict[str, Any], probe: dict[str, Any]) -> tuple[bool, str]:
        timeout = probe.get("timeoutSeconds", 1)
        if "httpGet" in probe:
            url = f"http://127.0.0.1:{self._port(spec, probe['httpGet']['port'])}{probe['httpGet']['path']}"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r:
                    return 200 <= r.status < 400, f"GET {url} -> {r.status}"
            except (OSError, urllib.error.URLError) as e:
                return False, f"GET {url} -> {e}"
        cmd = probe["exec"]["command"]
        out = subprocess.run(["podman", "exec", self.container(pod, spec), *cmd], capture_output=True, text=True,
                             env=podman_env(), timeout=timeout + 10)
        return out.returncode == 0, f"exec {cmd[-1][:90]!r} -> rc {out.returncode}"

    def wait_probe(self, pod, spec, kind, deadline_s) -> str:
        probe = spec[kind]
        t0 = time.monotonic()
        while True:
            ok, what = self.probe(pod, spec, probe)
            if ok:
                return f"{kind}: {what} (after {time.monotonic() - t0:.0f} s)"
            state = podman("inspect", "--format", "{{.State.Status}}", self.container(pod, spec), check=False).strip()
            if time.monotonic() - t0 > deadline_s or state not in ("running", "created"):
                logs = podman("logs", "--tail", "30", self.container(pod, spec), check=False)
                raise RuntimeError(f"{pod}: {kind} never answered ({what}; container {state})\n{logs}")
            time.sleep(probe.get("periodSeconds", 10) / 2)

    def probes(self, pods: list[str]) -> None:
        for pod in pods:
            spec = self.pods[pod]["spec"]["containers"][0] if "spec" in self.pods[pod] else None
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                if kind in spec:
                    budget = spec[kind].get("failureThreshold", 3) * spec[kind].get("periodSeconds", 10)
                    self.log(f"- `{pod}` {self.wait_probe(pod, spec, kind, max(budget, 300))}")

    def security(self, pod: str, podspec: dict[str, Any], running: bool = True) -> None:
        """uid/gid, read-only root, each mount writable or not as the manifest says (running containers only
        can be exec'ed; the finished prep pod is checked from `podman inspect`)."""
        sc = podspec["spec"]["securityContext"]
        for spec in podspec["spec"]["containers"]:
            name = self.container(pod, spec)
            info = json.loads(podman("inspect", name))[0]
            ro = info["HostConfig"]["ReadonlyRootfs"]
            user = info["Config"]["User"]
            line = f"- `{name}`: user `{user}` (manifest {sc['runAsUser']}:{sc['runAsGroup']}), ReadonlyRootfs={ro}"
            if ro is not spec["securityContext"]["readOnlyRootFilesystem"]:
                raise RuntimeError(f"{name}: ReadonlyRootfs {ro}")
            if running:
                ids = podman("exec", name, "id", "-u").strip() + ":" + podman("exec", name, "id", "-g").strip()
                if ids != f"{sc['runAsUser']}:{sc['runAsGroup']}":
                    raise RuntimeError(f"{name} runs as {ids}")
                root = subprocess.run(["podman", "exec", name, "touch", "/rootfs-write-test"], capture_output=True,
                                      text=True, env=podman_env())
                if root.returncode == 0:
                    raise RuntimeError(f"{name}: the root filesystem is writable")
                mounts = []
                for m in spec.get("volumeMounts", []):
                    if m["mountPath"] == "/etc/hosts":
                        continue
                    probe = f"{m['mountPath']}/.play-write-test"
                    w = subprocess.run(["podman", "exec", name, "sh", "-c", f"touch {probe} && rm {probe}"],
                                       capture_output=True, text=True, env=podman_env()).returncode == 0
                    if w == bool(m.get("readOnly")):
                        raise RuntimeError(f"{name}: {m['mountPath']} writable={w}, "
                                           f"manifest readOnly={m.get('readOnly')}")
                    mounts.append(f"{m['mountPath']} {'rw' if w else 'ro'}")
                line += f"; id {ids}; root write refused; mounts: {', '.join(mounts)}"
            self.log(line)

    def deploy_serve(self) -> None:
        """KubeRay's step: the RayService's serveConfigV2 to the head's dashboard (PUT /api/serve/applications/)."""
        rs = _one(self.docs, "RayService")[0]
        body = json.dumps(yaml.safe_load(rs["spec"]["serveConfigV2"])).encode()
        req = urllib.request.Request("http://127.0.0.1:8265/api/serve/applications/", data=body, method="PUT",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            self.log(f"- serveConfigV2 PUT to the head's dashboard -> {r.status}")

    def serve_status(self, timeout_s: float = 300) -> None:
        """What KubeRay waits for before the ingress Service gets endpoints: the app RUNNING, every proxy HEALTHY
        (on one host network the head's proxy shares port 8080 with the worker's, so this names both)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with urllib.request.urlopen("http://127.0.0.1:8265/api/serve/applications/", timeout=10) as r:
                status = json.load(r)
            app = status.get("applications", {}).get("sui-react", {})
            proxies = {k: v.get("status") if isinstance(v, dict) else v for k, v in status.get("proxies", {}).items()}
            if app.get("status") == "RUNNING" and proxies and all(v == "HEALTHY" for v in proxies.values()):
                deployments = {k: v.get("status") for k, v in app.get("deployments", {}).items()}
                self.log(f"- Serve app `sui-react` RUNNING, deployments {deployments}, "
                         f"{len(proxies)} proxies HEALTHY (one per Ray node)")
                return
            if time.monotonic() > deadline or app.get("status") in ("DEPLOY_FAILED", "UNHEALTHY"):
                raise RuntimeError(f"Serve app not running: {json.dumps(status)[:3000]}")
            time.sleep(3)

    def chat(self, port: int = 8080) -> dict[str, Any]:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = json.dumps({"model": "sui-react", "stream": True, "max_tokens": 32,
                           "messages": [{"role": "user", "content": QUESTION}]}).encode()
        result: dict[str, Any] = {}
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=30)
            result["without_key"] = "200 (expected 401)"
        except urllib.error.HTTPError as e:
            result["without_key"] = f"{e.code} {e.read().decode()[:200]}"
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json",
                                                              "Authorization": f"Bearer {self.key}"})
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    lines = [ln.decode().strip() for ln in r if ln.strip()]
                    result["with_key"] = {"status": r.status, "content_type": r.headers.get("content-type"),
                                          "events": len(lines), "first": lines[:2], "last": lines[-2:]}
                    break
            except urllib.error.HTTPError as e:
                if e.code not in (502, 503, 404) or time.monotonic() > deadline:
                    raise RuntimeError(f"chat with key -> {e.code} {e.read().decode()[:300]}") from e
                time.sleep(5)
        return result

    def down(self) -> list[str]:
        for path in reversed(self.files):
            podman("kube", "down", str(path), check=False, timeout=180)
        podman("secret", "rm", SECRET, check=False)
        podman("volume", "rm", "-f", "sui-models", check=False)
        shutil.rmtree(SHM_ROOT, ignore_errors=True)
        names = set(self.pods)
        left = [line for line in podman("ps", "-a", "--format", "{{.Names}} {{.PodName}}").splitlines()
                if any(n in line for n in names)]
        left += [v for v in podman("volume", "ls", "--format", "{{.Name}}").split() if v == "sui-models"]
        return left


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m k8s.podplay", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/k8s-podman/transcript.md")
    parser.add_argument("--work", type=Path, default=REPO / "var/podplay")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def log(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    summary: dict[str, Any] = {"ok": False}
    t0 = time.monotonic()
    with open(STACK_LOCK, "w") as lock:  # the stack's ports (8000/8001/8080/8265/6379): one stack at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        log(f"# podman kube play of k8s/overlays/cpu ({time.strftime('%Y-%m-%d %H:%M:%S %Z')})\n")
        log(podman("version", "--format", "podman {{.Client.Version}}").strip()
            + f", runtime {podman('info', '--format', '{{.Host.OCIRuntime.Name}}').strip()}")
        play = Play(args.work, log)
        try:
            play.up()
            log("## probes (as the manifests define them)")
            play.probes([p for p in play.pods if p.startswith("vllm-")])
            play.probes(["sui-react-head"])
            play.deploy_serve()
            play.probes([p for p in play.pods if p.startswith("sui-react-") and p != "sui-react-head"])
            play.serve_status()
            log("## security contexts")
            for pod, spec in play.pods.items():
                if pod != "sui-model-prep":
                    play.security(pod, spec)
            log("## chat through the pod's port 8080")
            summary["chat"] = play.chat()
            log("```json\n" + json.dumps(summary["chat"], ensure_ascii=False, indent=2) + "\n```")
            assert summary["chat"]["without_key"].startswith("401"), summary["chat"]
            assert summary["chat"]["with_key"]["status"] == 200 and summary["chat"]["with_key"]["last"][-1] == \
                "data: [DONE]", summary["chat"]
            summary["ok"] = True
        except Exception as e:  # noqa: BLE001 - the transcript records it, then tear down
            log(f"**FAILED**: {e}")
        finally:
            left = play.down()
            summary["left_after_down"] = left
            log(f"## tear-down\n`podman kube down` on every played file; left: {left or 'nothing'}")
            summary["ok"] = summary["ok"] and not left
    summary["seconds"] = round(time.monotonic() - t0)
    log(f"\ntotal {summary['seconds']} s, ok={summary['ok']}")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n",
                                             encoding="utf-8")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
