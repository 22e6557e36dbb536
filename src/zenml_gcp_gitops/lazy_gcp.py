"""Load only the modules of a pulumi_gcp subpackage that a program names.

`pulumi_gcp.compute` alone imports ~290 resource modules when first touched (about half of
`plan --offline`'s import time), while the program uses a dozen. `install()` swaps each
subpackage that is not loaded yet for a module that imports, on first access to a name,
the one submodule that defines it (`Subnetwork` -> `compute/subnetwork.py`, an `...Args`
type -> its resource module or `_inputs`). The object returned is the one the package's
own `__init__` would export; a name that is not found that way loads the whole package as
its `__init__` does, so the result never differs, only the time.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

_PACKAGE = "pulumi_gcp"
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_lock = threading.RLock()  # a subpackage's __init__ may touch another one


def snake(name: str) -> str:
    """`BucketIAMMember` -> `bucket_iam_member`, the generator's module naming."""
    return _CAMEL.sub("_", name).lower()


def _candidates(name: str) -> Iterator[str]:
    if name.startswith("get_"):
        yield name.removesuffix("_output")  # get_project_output lives in get_project.py
    else:
        for suffix in ("ArgsDict", "Args"):
            if name.endswith(suffix):
                yield snake(name.removesuffix(suffix))
                break
        else:
            yield snake(name)
    yield "_inputs"
    yield "outputs"


class PartialPackage(types.ModuleType):
    """A pulumi_gcp subpackage whose names are imported one defining module at a time."""

    _zgg_files: frozenset[str] | None = None
    _zgg_full = False

    def _files(self) -> frozenset[str]:
        if self._zgg_files is None:
            (folder,) = self.__path__
            self._zgg_files = frozenset(
                f.removesuffix(".py") for f in os.listdir(folder) if f.endswith(".py")
            )
        return self._zgg_files

    def __getattr__(self, name: str) -> Any:
        missing = AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        if name == "__all__":  # `from ... import *` lists what is public: all of it
            self.load_all()
            raise missing
        if name.startswith("__"):
            raise missing
        if self._zgg_full:
            with _lock:  # a load running on another thread finishes first
                if name in self.__dict__:
                    return self.__dict__[name]
            raise missing
        files = self._files()
        if name in files:
            return importlib.import_module(f"{self.__name__}.{name}")
        for mod in _candidates(name):
            if mod in files:
                sub = importlib.import_module(f"{self.__name__}.{mod}")
                if name in getattr(sub, "__all__", ()):
                    value = getattr(sub, name)
                    setattr(self, name, value)
                    return value
        self.load_all()
        return types.ModuleType.__getattribute__(self, name)

    def __dir__(self) -> list[str]:
        self.load_all()
        return sorted(vars(self))

    def load_all(self) -> None:
        """Run the subpackage's own `__init__` in this module (every name, as without us)."""
        with _lock:
            if self._zgg_full:
                return
            self._zgg_full = True
            loader = self.__spec__.loader if self.__spec__ else None
            assert loader is not None and hasattr(loader, "exec_module")
            loader.exec_module(self)


def install() -> list[str]:
    """Swap every pulumi_gcp subpackage not loaded yet for a `PartialPackage`; returns their
    names. Subpackages already loaded (by anything) are left as they are."""
    import pulumi_gcp

    swapped = []
    with _lock:
        for attr, mod in list(vars(pulumi_gcp).items()):
            if not isinstance(mod, types.ModuleType) or type(mod) is types.ModuleType:
                continue  # a plain module is loaded already; ours are PartialPackage
            if isinstance(mod, PartialPackage):
                continue
            name = f"{_PACKAGE}.{attr}"
            spec = mod.__spec__
            if sys.modules.get(name) is not mod or spec is None or spec.name != name:
                continue
            if not spec.submodule_search_locations:
                continue
            part = importlib.util.module_from_spec(spec)
            part.__class__ = PartialPackage
            sys.modules[name] = part
            setattr(pulumi_gcp, attr, part)
            swapped.append(name)
    return swapped
