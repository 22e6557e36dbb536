"""The suite's own rule: under any truthy CI a missing prerequisite fails, it never skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import tests.conftest as suite
from tests.support import helm


def test_any_truthy_ci_counts(tmp_path: Path) -> None:
    values = {"true": True, "1": True, "yes": True, "woodpecker": True,
              "": False, "0": False, "false": False, "no": False}  # fmt: skip
    code = (
        "import importlib, os, sys, tests.conftest as c\n"
        "for v in sys.argv[1:]:\n"
        "    os.environ['CI'] = v\n"
        "    print(importlib.reload(c).IN_CI)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *values], env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True, text=True, check=True, cwd=suite.REPO_ROOT,
    ).stdout.split()  # fmt: skip
    assert out == [str(v) for v in values.values()]


def test_a_missing_helm_fails_in_ci_and_skips_with_a_hint_outside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(suite, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI must have it"):
        helm._unavailable("helm is not installed")
    monkeypatch.setattr(suite, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match=r"tests/support/helm\.py"):
        helm._unavailable("helm is not installed")


def test_require_fails_in_ci_and_says_what_to_install_outside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(suite, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="needs lupa"):
        suite.require("lupa (pip install -e '.[test]')")
    monkeypatch.setattr(suite, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match=r"needs lupa \(pip install"):
        suite.require("lupa (pip install -e '.[test]')")
    suite.require(None)  # present: nothing happens
