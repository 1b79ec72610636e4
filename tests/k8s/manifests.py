"""Helpers over the rendered manifests: render an overlay with `kubectl kustomize`, walk pod templates (including
the RayService's head and worker templates), validate custom resources against the vendored CRD schemas."""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = ("gpu", "cpu")
KUBERNETES_VERSION = "1.32.0"   # the oldest release the manifests target (kubectl 1.32 renders them here)
SCHEMAS = {
    ("ray.io/v1", "RayService"): "ray.io_v1_rayservice.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com_v1_podmonitor.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_v1_prometheusrule.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
}


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        raise RuntimeError("kubectl not found: install Debian's kubernetes-client (scripts/system_deps.sh)")
    return path


def kustomize(folder: Path) -> list[dict[str, Any]]:
    out = subprocess.run([kubectl(), "kustomize", str(folder)], check=False, capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {folder} failed: {out.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(kustomize(K8S / "overlays" / overlay))


@dataclass
class PodTemplate:
    owner: str                 # "Deployment/vllm-domain", "RayService/sui-react:head", ...
    labels: dict[str, str]     # the labels the running pods will carry
    spec: dict[str, Any]
    long_running: bool


def pod_templates(docs) -> Iterator[PodTemplate]:
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            tpl = doc["spec"]["template"]
            yield PodTemplate(f"{kind}/{name}", tpl["metadata"].get("labels", {}), tpl["spec"], kind != "Job")
        elif kind == "RayService":
            cluster = doc["spec"]["rayClusterConfig"]
            head = cluster["headGroupSpec"]["template"]
            # KubeRay adds ray.io/node-type (head|worker) to the pods it creates
            yield PodTemplate(f"RayService/{name}:head", {**head["metadata"].get("labels", {}),
                                                          "ray.io/node-type": "head"}, head["spec"], True)
            for group in cluster["workerGroupSpecs"]:
                tpl = group["template"]
                yield PodTemplate(f"RayService/{name}:{group['groupName']}",
                                  {**tpl["metadata"].get("labels", {}), "ray.io/node-type": "worker"},
                                  tpl["spec"], True)


def containers(template: PodTemplate) -> list[dict[str, Any]]:
    return template.spec.get("initContainers", []) + template.spec["containers"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels / matchExpressions In, NotIn, Exists, DoesNotExist) against pod labels."""
    match = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    if any(labels.get(k) != v for k, v in match.items() if k != "matchExpressions"):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def _closed(schema: Any) -> Any:
    """Reject unknown properties where the CRD does not say otherwise (the API server would prune them)."""
    if isinstance(schema, dict):
        schema = {k: _closed(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


@functools.cache
def crd_validator(api_version: str, kind: str):
    import jsonschema

    schema = json.loads((K8S / "schemas" / SCHEMAS[(api_version, kind)]).read_text(encoding="utf-8"))
    schema = _closed(copy.deepcopy(schema))
    # metadata is validated by the API server's ObjectMeta, not by the CRD schema
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


def crd_errors(doc: dict[str, Any]) -> list[str]:
    validator = crd_validator(doc["apiVersion"], doc["kind"])
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(doc)]
