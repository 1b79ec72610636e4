"""Issue #15 acceptance 2: policy checks over the rendered YAML of every overlay (plain pytest, no cluster)."""

from __future__ import annotations

import re

import pytest

from tests.k8s.manifests import OVERLAYS, containers, pod_templates, rendered, selects

SECRETISH = re.compile(r"(KEY|TOKEN|PASSWORD|SECRET|CREDENTIAL)", re.IGNORECASE)
PINNED = re.compile(r"^[^:@\s]+(:[\w][\w.-]*)?(@sha256:[0-9a-f]{64})?$")


def _templates(overlay):
    return list(pod_templates(rendered(overlay)))


def _docs(overlay, kind):
    return [d for d in rendered(overlay) if d["kind"] == kind]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_limits_and_guaranteed_memory(overlay):
    for tpl in _templates(overlay):
        for c in containers(tpl):
            res = c.get("resources", {})
            for key in ("cpu", "memory"):
                assert key in res.get("requests", {}) and key in res.get("limits", {}), f"{tpl.owner}/{c['name']}"
            assert res["requests"]["memory"] == res["limits"]["memory"], f"{tpl.owner}/{c['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_long_running_containers_have_probes(overlay):
    for tpl in _templates(overlay):
        if not tpl.long_running:
            continue
        for c in tpl.spec["containers"]:
            assert c.get("readinessProbe") and c.get("livenessProbe"), f"{tpl.owner}/{c['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_vllm_probes_follow_the_anchors(overlay):
    for name in ("vllm-domain", "vllm-agent"):
        deployment = next(d for d in _docs(overlay, "Deployment") if d["metadata"]["name"] == name)
        c = deployment["spec"]["template"]["spec"]["containers"][0]
        startup = c["startupProbe"]
        assert startup["httpGet"]["path"] == "/health"
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # ~10 min to load and compile
        assert c["readinessProbe"]["httpGet"]["path"] in ("/health", "/v1/models")
        assert c["readinessProbe"]["periodSeconds"] == 5
        assert c["livenessProbe"]["httpGet"]["path"] == "/health"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_non_root_without_privilege_escalation_and_read_only(overlay):
    for tpl in _templates(overlay):
        pod_sc = tpl.spec.get("securityContext", {})
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", tpl.owner
        for c in containers(tpl):
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{tpl.owner}/{c['name']}"
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 1)) != 0
            assert sc.get("allowPrivilegeEscalation") is False, f"{tpl.owner}/{c['name']}"
            assert sc.get("privileged", False) is False
            assert sc.get("capabilities", {}).get("drop") == ["ALL"]
            assert sc.get("readOnlyRootFilesystem") is True, f"{tpl.owner}/{c['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_read_only_root_has_writable_cache_volumes(overlay):
    for tpl in _templates(overlay):
        volumes = {v["name"]: v for v in tpl.spec.get("volumes", [])}
        for c in containers(tpl):
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"]["name"]], f"{tpl.owner}/{c['name']}"
            home = next(e["value"] for e in c.get("env", []) if e["name"] == "HOME")
            assert home in mounts and not mounts[home].get("readOnly"), f"{tpl.owner}: HOME {home} not writable"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_vllm_pods_shm_and_model_volume(overlay):
    for d in _docs(overlay, "Deployment"):
        spec = d["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
        shm = volumes[mounts["/dev/shm"]["name"]]["emptyDir"]
        assert shm["medium"] == "Memory" and shm.get("sizeLimit")
        models = mounts["/models"]
        assert models["readOnly"] and volumes[models["name"]]["persistentVolumeClaim"]["claimName"] == "sui-models"


def test_gpu_pods_request_whole_gpus():
    vllm = [d for d in _docs("gpu", "Deployment") if d["metadata"]["labels"]["app.kubernetes.io/component"] == "llm"]
    assert len(vllm) == 2
    for d in vllm:
        res = d["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"] == "1"
        assert res["requests"] == res["limits"]
        assert "sui-qa-gpu" in d["spec"]["template"]["spec"]["containers"][0]["image"]


def test_cpu_overlay_requests_no_gpu():
    for tpl in _templates("cpu"):
        for c in containers(tpl):
            assert "nvidia.com/gpu" not in str(c.get("resources")), tpl.owner
            assert "sui-qa-gpu" not in c["image"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned(overlay):
    for tpl in _templates(overlay):
        for c in containers(tpl):
            image = c["image"]
            assert PINNED.match(image), image
            assert (":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")) or "@sha256:" in image, image


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_values(overlay):
    docs = rendered(overlay)
    assert not [d for d in docs if d["kind"] == "Secret"], "secrets are created out of band, never rendered"
    refs = []
    for tpl in _templates(overlay):
        for c in containers(tpl):
            for env in c.get("env", []):
                if SECRETISH.search(env["name"]):
                    assert "value" not in env and "secretKeyRef" in env.get("valueFrom", {}), env["name"]
                    refs.append(env["valueFrom"]["secretKeyRef"]["name"])
    assert "sui-qa-api-keys" in refs  # the pipeline's API keys come from a Secret reference
    text = str(docs)
    assert not re.search(r"sk-[A-Za-z0-9]{16,}|Bearer [A-Za-z0-9]", text)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_api_keys_secret_reaches_the_setting_that_reads_it(overlay):
    """Every Ray container gets the Secret under ApiSettings.api_keys' own environment variable (the manifests
    once used SUIQA_API_KEYS, which nothing reads: the API then answered without a key; found by the podman
    play), and the cluster's serveConfigV2 requires keys, so a missing Secret stops the app instead of opening it."""
    import yaml

    from deployments.config import ApiSettings

    name = ApiSettings.model_config["env_prefix"] + "api_keys".upper()
    ray = [t for t in _templates(overlay) if t.owner.startswith("RayService/")]
    assert len(ray) == 2
    for tpl in ray:
        for c in containers(tpl):
            refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c.get("env", [])
                    if "secretKeyRef" in e.get("valueFrom", {})}
            assert refs.get(name, {}).get("name") == "sui-qa-api-keys", (tpl.owner, refs)
            assert set(refs) == {name}, refs
    rayservice = next(d for d in rendered(overlay) if d["kind"] == "RayService")
    args = yaml.safe_load(rayservice["spec"]["serveConfigV2"])["applications"][0]["args"]
    assert args["require_api_keys"] is True and args["api_keys_file"] is None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_accounts_mount_no_token(overlay):
    for sa in _docs(overlay, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False, sa["metadata"]["name"]
    names = {sa["metadata"]["name"] for sa in _docs(overlay, "ServiceAccount")}
    for tpl in _templates(overlay):
        if tpl.owner.endswith(":head"):  # KubeRay's autoscaler sidecar uses the head's (operator-made) account
            continue
        assert tpl.spec.get("automountServiceAccountToken") is False, tpl.owner
        assert tpl.spec.get("serviceAccountName") in names, tpl.owner


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_selects_a_pod_template(overlay):
    templates = _templates(overlay)
    services = _docs(overlay, "Service")
    assert services
    for svc in services:
        selector = svc["spec"].get("selector")
        assert selector, svc["metadata"]["name"]
        matched = [t for t in templates if selects({"matchLabels": selector}, t.labels)]
        assert matched, f"Service {svc['metadata']['name']} selects no pod template"
        for port in svc["spec"]["ports"]:  # a named targetPort exists on the selected containers
            names = {p.get("name") for t in matched for c in t.spec["containers"] for p in c.get("ports", [])}
            assert port["targetPort"] in names or isinstance(port["targetPort"], int)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_vllm_tier_has_a_headless_service_the_agent_resolves(overlay):
    """Issue 28: run-affine routing needs every ready pod's address: a headless Service per tier, selecting
    the
    same pods on the same port as the tier's ClusterIP Service, without not-ready pods; the agent's settings
    name it with resolve_dns (a ClusterIP name would resolve to one virtual IP: one 'replica')."""
    import yaml

    services = {d["metadata"]["name"]: d for d in _docs(overlay, "Service")}
    serve = yaml.safe_load(_docs(overlay, "RayService")[0]["spec"]["serveConfigV2"])
    agent = serve["applications"][0]["args"]
    for role in ("domain", "agent"):
        cluster_ip, headless = services[f"vllm-{role}"], services[f"vllm-{role}-replicas"]
        assert headless["spec"]["clusterIP"] == "None" and cluster_ip["spec"].get("clusterIP") != "None"
        assert headless["spec"].get("publishNotReadyAddresses", False) is False
        assert headless["spec"]["selector"] == cluster_ip["spec"]["selector"]
        assert headless["spec"]["ports"] == cluster_ip["spec"]["ports"]
        tier = agent["agent"][f"{role}_llm"]
        assert tier["resolve_dns"] is True and tier["routing"] == "run_affine" and not tier["replicas"]
        port = headless["spec"]["ports"][0]["port"]
        assert tier["base_url"] == f"http://vllm-{role}-replicas.sui-qa.svc:{port}/v1"
        # a terminating pod leaves DNS; the agent's next lookup (+ CoreDNS's 5 s TTL) comes before its SIGTERM
        pod = next(d for d in _docs(overlay, "Deployment") if d["metadata"]["name"] == f"vllm-{role}")
        container = pod["spec"]["template"]["spec"]["containers"][0]
        sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
        assert tier["dns_refresh_s"] + 5 <= sleep


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pdbs_select_pods(overlay):
    pdbs = _docs(overlay, "PodDisruptionBudget")
    assert {p["metadata"]["name"] for p in pdbs} == {"vllm-domain", "vllm-agent", "sui-react-workers"}
    for pdb in pdbs:
        assert any(selects(pdb["spec"]["selector"], t.labels) for t in _templates(overlay)), pdb["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_graceful_shutdown_budget(overlay):
    """preStop sleep + vLLM --shutdown-timeout < terminationGracePeriodSeconds; Ray workers outlast Serve's drain."""
    import yaml

    for d in _docs(overlay, "Deployment"):
        spec = d["spec"]["template"]["spec"]
        c = spec["containers"][0]
        sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
        drain = int(c["args"][c["args"].index("--shutdown-timeout") + 1])
        assert sleep > 0 and drain > 0
        assert spec["terminationGracePeriodSeconds"] > sleep + drain, d["metadata"]["name"]
    rayservice = _docs(overlay, "RayService")[0]
    serve = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    drain = max(dep["graceful_shutdown_timeout_s"] for app in serve["applications"] for dep in app["deployments"])
    for group in rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        spec = group["template"]["spec"]
        # SIGTERM: the node drains (Serve waits for in-flight requests) for up to Ray's drain timeout, which must
        # cover Serve's wait and end before the kubelet's SIGKILL
        ray_drain = float({e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
                          ["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"])
        assert drain < ray_drain < spec["terminationGracePeriodSeconds"], group["groupName"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rayservice_shape(overlay):
    rs = _docs(overlay, "RayService")[0]
    cluster = rs["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert cluster["enableInTreeAutoscaling"] is True
    for group in cluster["workerGroupSpecs"]:
        assert 1 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    assert rs["spec"]["upgradeStrategy"]["type"] in ("NewCluster", "NewClusterWithIncrementalUpgrade", "None")
    assert rs["spec"]["serveService"]["spec"]["ports"][0]["port"] == 8080
    import yaml

    serve = yaml.safe_load(rs["spec"]["serveConfigV2"])
    auto = serve["applications"][0]["deployments"][0]["autoscaling_config"]
    assert auto["target_ongoing_requests"] > 0 and auto["min_replicas"] <= auto["max_replicas"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_ray_node_runs_the_front_door_and_sheds_at_the_admission_capacity(overlay):
    """Every Ray container (a Serve proxy may run on any node) has the proxy callback of deployments/middleware.py;
    the deployment's max_ongoing_requests is the replica's admission capacity, so the proxy refuses the rest."""
    import yaml

    from deployments.middleware import PROXY_ENV

    cluster = _docs(overlay, "RayService")[0]["spec"]["rayClusterConfig"]
    specs = [cluster["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"]
                                                              for g in cluster["workerGroupSpecs"]]
    for spec in specs:
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        assert {k: env.get(k) for k in PROXY_ENV} == PROXY_ENV
    app = yaml.safe_load(_docs(overlay, "RayService")[0]["spec"]["serveConfigV2"])["applications"][0]
    admission = app["args"]["admission"]
    deployment = app["deployments"][0]
    assert deployment["max_ongoing_requests"] == admission["max_in_flight"] + admission["max_queue"]
    assert deployment["backpressure_config"]["status_code"] == 429


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_model_prep_job_writes_the_folders_the_tiers_serve(overlay):
    job = _docs(overlay, "Job")[0]
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    served = {c["args"][c["args"].index("--model") + 1] if "--model" in c["args"] else c["args"][1]  # vllm serve M
              for d in _docs(overlay, "Deployment") for c in d["spec"]["template"]["spec"]["containers"]}
    if "convert" in command:   # gpu: the converted domain model; the agent model is uploaded as is
        assert command[command.index("convert") + 2] in served and command[-2:] == ["--to", "llama"]
    else:                      # cpu: build-tiny writes <out>/domain-internlm2 and <out>/agent-qwen2
        out = command[command.index("--out") + 1]
        assert served == {f"{out}/domain-internlm2", f"{out}/agent-qwen2"}


# --- monitoring: every scraped pod port belongs to exactly one job ---------------------------------------------

def test_pod_monitors_separate_the_tiers():
    monitors = _docs("gpu", "PodMonitor")
    templates = _templates("gpu")
    jobs = {}
    scraped = {}
    for monitor in monitors:
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        job = next(r["replacement"] for r in endpoint["relabelings"] if r.get("targetLabel") == "job")
        jobs[monitor["metadata"]["name"]] = job
        matched = [t.owner for t in templates if selects(monitor["spec"]["selector"], t.labels)
                   and any(p.get("name") == endpoint["port"] for c in t.spec["containers"] for p in c.get("ports", []))]
        assert matched, monitor["metadata"]["name"]
        for owner in matched:
            key = (owner, endpoint["port"], endpoint.get("path", "/metrics"))
            assert key not in scraped, f"{key} scraped by {scraped.get(key)} and {job}: double counting"
            scraped[key] = job
    assert sorted(jobs.values()) == sorted(["vllm-domain", "vllm-agent", "ray", "sui-pipeline"])
    assert {v for k, v in scraped.items() if k[0] == "Deployment/vllm-domain"} == {"vllm-domain"}
    assert {v for k, v in scraped.items() if k[0] == "Deployment/vllm-agent"} == {"vllm-agent"}


def test_prometheus_rule_and_dashboard_come_from_monitoring():
    import json

    import yaml

    from monitoring.prometheus_server import DASHBOARD_FILE, RULES_FILE

    (rule,) = _docs("gpu", "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    (dash,) = [c for c in _docs("gpu", "ConfigMap") if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert json.loads(dash["data"]["sui-dashboard.json"]) == json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


def test_keda_scales_each_tier_on_its_own_queue():
    deployments = {d["metadata"]["name"] for d in _docs("gpu", "Deployment")}
    scaled = _docs("gpu", "ScaledObject")
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled} == {"vllm-domain", "vllm-agent"} <= deployments
    for s in scaled:
        name = s["spec"]["scaleTargetRef"]["name"]
        (trigger,) = s["spec"]["triggers"]
        assert trigger["type"] == "prometheus"
        query = trigger["metadata"]["query"]
        assert "vllm:num_requests_waiting" in query and f'job="{name}"' in query and 'namespace="sui-qa"' in query
        behavior = s["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 600      # cold starts take minutes
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] >= 60
        assert s["spec"]["minReplicaCount"] >= 1                                 # never scale a tier to zero


# --- network policy: a small evaluator, then the exact set of allowed paths ---------------------------------------

def _admitted(policies, src_labels, src_ns, dst_labels, port, port_name) -> bool:
    """Kubernetes semantics for ingress: isolated if any policy selects the pod; allowed if any rule admits."""
    selecting = [p for p in policies if selects(p["spec"]["podSelector"], dst_labels)
                 and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") in (port, port_name) for p in ports):
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                pod_ok = "podSelector" not in peer or (src_ns == "sui-qa" and "namespaceSelector" not in peer
                                                       and selects(peer["podSelector"], src_labels))
                ns_ok = "namespaceSelector" not in peer or selects(peer["namespaceSelector"],
                                                                    {"kubernetes.io/metadata.name": src_ns})
                if "namespaceSelector" in peer and "podSelector" in peer:
                    pod_ok = selects(peer["podSelector"], src_labels)
                if pod_ok and ns_ok:
                    return True
    return False


def test_network_policy_admits_exactly_the_intended_paths():
    policies = _docs("gpu", "NetworkPolicy")
    pods = {t.owner: t.labels for t in _templates("gpu")}
    domain, agent = pods["Deployment/vllm-domain"], pods["Deployment/vllm-agent"]
    head, worker = pods["RayService/sui-react:head"], pods["RayService/sui-react:agent"]
    job = pods["Job/sui-model-prep"]
    outsider = {"app": "something-else"}
    sources = {"ray-head": (head, "sui-qa"), "ray-worker": (worker, "sui-qa"), "vllm-domain": (domain, "sui-qa"),
               "vllm-agent": (agent, "sui-qa"), "model-prep": (job, "sui-qa"), "other-pod": (outsider, "sui-qa"),
               "prometheus": (outsider, "monitoring"), "kuberay": (outsider, "kuberay-system"),
               "internet": (outsider, "ingress-nginx")}
    destinations = {"vllm-domain:8000": (domain, 8000, "http"), "vllm-agent:8001": (agent, 8001, "http"),
                    "ray-worker:8080": (worker, 8080, "serve"), "ray-head:8265": (head, 8265, "dashboard"),
                    "ray-head:6379": (head, 6379, "gcs"), "ray-worker:8090": (worker, 8090, "metrics"),
                    "ray-worker:52365": (worker, 52365, None), "model-prep:any": (job, 1234, None)}
    allowed = {(s, d) for s, (sl, sns) in sources.items() for d, (dl, port, name) in destinations.items()
               if _admitted(policies, sl, sns, dl, port, name)}
    expected = {
        # only the Ray tier (and Prometheus) reach the vLLM tiers
        ("ray-head", "vllm-domain:8000"), ("ray-worker", "vllm-domain:8000"), ("prometheus", "vllm-domain:8000"),
        ("ray-head", "vllm-agent:8001"), ("ray-worker", "vllm-agent:8001"), ("prometheus", "vllm-agent:8001"),
        # the ingress: Serve's HTTP port, from anywhere
        *((s, "ray-worker:8080") for s in sources),
        # inside the Ray cluster: everything
        *((s, d) for s in ("ray-head", "ray-worker") for d in ("ray-head:8265", "ray-head:6379", "ray-worker:8090",
                                                               "ray-worker:52365")),
        # the operator: dashboard and dashboard agent; Prometheus: Ray metrics
        ("kuberay", "ray-head:8265"), ("kuberay", "ray-worker:52365"), ("prometheus", "ray-worker:8090"),
    }
    assert allowed == expected, {"unexpected": allowed - expected, "missing": expected - allowed}


RESTRICTED_VOLUMES = {"emptyDir", "persistentVolumeClaim", "configMap", "secret", "projected", "downwardAPI",
                      "ephemeral", "csi"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_fit_the_restricted_pod_security_standard(overlay):
    """The namespace enforces `restricted`: no host namespaces, host paths or host ports either."""
    (namespace,) = _docs(overlay, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for tpl in _templates(overlay):
        assert not any(tpl.spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), tpl.owner
        for volume in tpl.spec.get("volumes", []):
            assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, f"{tpl.owner}: {volume}"
        for c in containers(tpl):
            assert not any(p.get("hostPort") for p in c.get("ports", [])), tpl.owner


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ray_pod_templates_are_valid_pods(overlay):
    """The RayService's head and worker templates, validated as Pods against Kubernetes' own schema (strict)."""
    import kubernetes_validate

    from tests.k8s.manifests import KUBERNETES_VERSION

    ray = [t for t in _templates(overlay) if t.owner.startswith("RayService/")]
    assert len(ray) == 2
    for tpl in ray:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "labels": tpl.labels}, "spec": tpl.spec}
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_rayservice_matches_the_project_pins():
    import tomllib

    import yaml

    from tests.k8s.manifests import REPO

    extras = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    ray_pin = next(d.split("==")[1] for d in extras["cpu"] if d.startswith("ray[serve]=="))
    for overlay in OVERLAYS:
        rs = _docs(overlay, "RayService")[0]
        assert rs["spec"]["rayClusterConfig"]["rayVersion"] == ray_pin
        serve = yaml.safe_load(rs["spec"]["serveConfigV2"])
        module, attr = serve["applications"][0]["import_path"].split(":")
        source = (REPO / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8")
        assert f"def {attr}(" in source  # the builder the replicas import exists in the image's project


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_readme_stage_labels_select_the_model_steps(overlay):
    """README step 4 applies `-l suiqa.io/stage=models` (what the upload needs) then `=prep` (the Job)."""
    def stage(value):
        return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in rendered(overlay)
                      if d["metadata"].get("labels", {}).get("suiqa.io/stage") == value)

    assert stage("models") == ["Namespace/sui-qa", "PersistentVolumeClaim/sui-models", "ServiceAccount/sui-model-prep"]
    assert stage("prep") == ["Job/sui-model-prep"]
