"""Locate the files that ship inside the wheel but sit at the top of a source checkout."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_PKG_DIR = Path(__file__).resolve().parent
_CHECKOUT = _PKG_DIR.parent.parent  # src/zenml_gcp_gitops -> repo root


def _find(name: str) -> Path:
    for base in (_PKG_DIR, _CHECKOUT):
        if (base / name).is_dir():
            return base / name
    raise FileNotFoundError(f"{name}/ is missing from this installation of zenml-gcp-gitops")


def argocd_dir() -> Path:
    return _find("argocd")


def program_dir() -> Path:
    return _find("pulumi_program")


def examples_dir() -> Path:
    """The example pipelines (`examples/` of the checkout, shipped in the wheel too)."""
    return _find("examples")


def program_package() -> ModuleType:
    """Import the Pulumi program as `zenml_gcp_gitops.pulumi_program`, wheel or checkout."""
    name = "zenml_gcp_gitops.pulumi_program"
    if name in sys.modules:
        return sys.modules[name]
    path = program_dir()
    if path.parent == _PKG_DIR:
        return importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(
        name, path / "__init__.py", submodule_search_locations=[str(path)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
