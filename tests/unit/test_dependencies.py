"""Every third-party module the package imports comes from a distribution it declares."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWN = {"zenml_gcp_gitops", "pulumi_program"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    reqs = list(project["dependencies"]) + list(extras["deploy"]) + list(extras["local"])
    return {_norm(re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0]) for r in reqs}


def _imported() -> dict[str, str]:
    found: dict[str, str] = {}
    for base in ("src/zenml_gcp_gitops", "pulumi_program"):
        for path in (ROOT / base).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for n in names:
                    top = n.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OWN:
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_distribution_is_declared() -> None:
    declared = _declared()
    dists = packages_distributions()
    missing = {}
    for module, where in _imported().items():
        providers = {_norm(d) for d in dists.get(module, [])}
        if not providers & declared:
            missing[module] = (where, sorted(providers))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
