"""The import graph: each package imports only the packages below it (module-level and function-level imports
alike). A new top-level package must be given its place here."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# package -> the project packages it may import. Floors, bottom up: suiqa (errors, paths, settings base, model
# builder) < serving, react_tier, finetune, monitoring < deployments (the Ray Serve app) < benchmarks < stackctl
# (the CLI, the demo, `suiqa up/down`) < k8s (renders manifests from everything below).
ALLOWED: dict[str, set[str]] = {
    "suiqa": set(),
    "monitoring": {"suiqa"},
    "serving": {"suiqa"},
    "react_tier": {"suiqa"},
    "finetune": {"suiqa"},
    "deployments": {"suiqa", "react_tier"},
    "benchmarks": {"suiqa", "serving", "react_tier", "finetune", "deployments"},
    "webui": {"suiqa", "serving"},  # talks to the pipeline only over HTTP
    "stackctl": {"suiqa", "serving", "react_tier", "finetune", "deployments", "benchmarks", "monitoring", "webui"},
    "k8s": {"suiqa", "serving", "react_tier", "deployments", "stackctl", "monitoring"},  # the manifest generator
}
# react_tier is a pure library: no web server, no Ray
FORBIDDEN_THIRD_PARTY = {"react_tier": {"ray", "fastapi", "starlette", "uvicorn"}}


def project_packages() -> set[str]:
    return {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}


def imports_of(package: str) -> dict[str, set[str]]:
    """top-level module imported -> the files that import it."""
    found: dict[str, set[str]] = {}
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def test_every_package_has_a_place():
    assert project_packages() <= set(ALLOWED), f"place these in ALLOWED: {project_packages() - set(ALLOWED)}"


def test_no_package_imports_one_above_it():
    bad = []
    for package in project_packages():
        for imported, files in imports_of(package).items():
            if imported in project_packages() and imported != package and imported not in ALLOWED[package]:
                bad.append(f"{package} imports {imported} in {sorted(files)}")
    assert not bad, "\n".join(bad)


def test_react_tier_stays_pure():
    for package, names in FORBIDDEN_THIRD_PARTY.items():
        used = {name: files for name, files in imports_of(package).items() if name in names}
        assert not used, f"{package} imports {used}"


def test_the_check_sees_function_level_imports():
    assert "deployments" in imports_of("stackctl") and "react_tier" in imports_of("deployments")
