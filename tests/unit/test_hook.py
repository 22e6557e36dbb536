"""The `zenml.init_hooks` graft: cheap, stdlib-only, never breaks ZenML, reachable from `zenml`.

Everything that imports ZenML runs in a subprocess: the graft mutates ZenML's CLI objects and
installs a `sys.meta_path` finder, which must not leak into the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from zenml_gcp_gitops import zenml_hook

PY = sys.executable
ZENML = str(Path(sys.executable).with_name("zenml"))
SUB = zenml_hook.SUBCOMMAND


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != zenml_hook.DISABLE_ENV}
    env.update(extra)
    return env


def _py(code: str, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run `code` in a fresh interpreter and return its stdout (fails the test on error)."""
    proc = subprocess.run(
        [PY, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env or _env(),
        cwd=cwd,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# --------------------------------------------------------------------------- hook time


# Its cost (budget 30 ms) is measured by benchmarks/bench_startup.py, not asserted here.
def test_zenml_finds_the_hook_and_running_it_leaves_only_the_finder() -> None:
    # Exactly what zenml/__init__.py does before its own imports.
    out = _py(
        """
        import json, sys
        from importlib.metadata import entry_points
        from zenml_gcp_gitops.zenml_hook import _GraftFinder
        eps = [e for e in entry_points().select(group="zenml.init_hooks")
               if e.value == "zenml_gcp_gitops.zenml_hook:install"]
        assert len(eps) == 1, eps
        print(json.dumps({"returned": eps[0].load()() is None,
                          "finders": sum(isinstance(f, _GraftFinder) for f in sys.meta_path)}))
        """
    )
    assert json.loads(out) == {"returned": True, "finders": 1}


def test_hook_imports_only_the_standard_library() -> None:
    out = _py(
        """
        import json, sys
        before = set(sys.modules)
        import zenml_gcp_gitops.zenml_hook as h
        h.install()
        print(json.dumps(sorted(set(sys.modules) - before)))
        """
    )
    new = set(json.loads(out)) - {"zenml_gcp_gitops", "zenml_gcp_gitops.zenml_hook"}
    not_stdlib = {m for m in new if m.split(".")[0] not in sys.stdlib_module_names}
    assert not not_stdlib, f"hook imported non-stdlib modules: {sorted(not_stdlib)}"
    assert "click" not in new and "rich" not in new


def test_import_zenml_does_not_import_our_heavy_modules() -> None:
    out = _py(
        """
        import json, sys
        import zenml
        from zenml_gcp_gitops.zenml_hook import _GraftFinder
        print(json.dumps({
            "ours": sorted(m for m in sys.modules if m.startswith("zenml_gcp_gitops")),
            "heavy": sorted(m for m in sys.modules
                            if m.split(".")[0] in {"pulumi", "pulumi_gcp", "kubernetes", "mlflow"}),
            "zenml_cli": "zenml.cli" in sys.modules,
            "finder": any(isinstance(f, _GraftFinder) for f in sys.meta_path),
        }))
        """
    )
    got = json.loads(out)
    assert got["ours"] == ["zenml_gcp_gitops", "zenml_gcp_gitops.zenml_hook"]
    assert got["heavy"] == []
    # Pipeline pods import zenml but not its CLI: only the finder is waiting.
    assert got["zenml_cli"] is False
    assert got["finder"] is True


# --------------------------------------------------------------------------- grafting


_INSPECT_GRAFT = """
    import json, sys, time, timeit
    import zenml.cli
    from zenml.cli.cli import cli
    from zenml_gcp_gitops.zenml_hook import _GraftFinder, _MARK, _graft
    deploy = cli.commands["stack"].commands["deploy"]
    got = {
        "grafted": bool(getattr(deploy, _MARK, False)),
        "finder_left": any(isinstance(f, _GraftFinder) for f in sys.meta_path),
        "params": sorted(p.name for p in deploy.params),
        "callback_module": deploy.callback.__module__,
        "our_cli_loaded": "zenml_gcp_gitops.cli" in sys.modules,
        "loader": type(sys.modules["zenml.cli"].__loader__).__name__,
    }
    # The direct cost the plugin adds to every `zenml` start: one graft, plus one finder
    # check per module imported while the finder waits.
    finder = _GraftFinder()
    per_call = min(timeit.repeat(lambda: finder.find_spec("a.module"), number=2000, repeat=3))
    got["finder_ms"] = per_call / 2000 * len(sys.modules) * 1000
    t = time.perf_counter()
    got["graft_ok"] = _graft()
    got["graft_ms"] = (time.perf_counter() - t) * 1000
    print(json.dumps(got))
"""


def test_graft_replaces_stack_deploy_and_cleans_up() -> None:
    got = json.loads(_py(_INSPECT_GRAFT))
    assert got["grafted"] is True
    assert got["finder_left"] is False  # one-shot: no cost for later imports
    # ZenML's own parameters and callback are kept: `-p gcp` runs ZenML's code.
    assert {"provider", "stack_name", "location", "set_stack"} <= set(got["params"])
    assert got["callback_module"].startswith("zenml.")
    # Our CLI is imported only when someone actually types `gcp-gitops`.
    assert got["our_cli_loaded"] is False
    assert got["loader"] == "SourceFileLoader"


def test_off_switch_leaves_zenml_alone() -> None:
    got = json.loads(_py(_INSPECT_GRAFT, env=_env(**{zenml_hook.DISABLE_ENV: "1"})))
    assert got["grafted"] is False
    assert got["finder_left"] is False
    # Grafting by hand on the untouched CLI works (its cost: benchmarks/bench_startup.py).
    assert got["graft_ok"] is True


def test_install_is_idempotent_and_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(zenml_hook.DISABLE_ENV, raising=False)
    # Pretend ZenML's CLI is not loaded, so the finder path runs and nothing is grafted here.
    for mod in ("zenml.cli", "zenml.cli.stack"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    try:
        zenml_hook.install()
        zenml_hook.install()
        finders = [f for f in sys.meta_path if isinstance(f, zenml_hook._GraftFinder)]
        assert len(finders) == 1
        assert sys.meta_path[0] is finders[0]  # ahead of PathFinder, or it never sees zenml.cli
        # An unusable meta_path (a tuple) must not make `import zenml` fail.
        zenml_hook.uninstall()
        monkeypatch.setattr(sys, "meta_path", ())
        zenml_hook.install()
    finally:
        monkeypatch.undo()
        zenml_hook.uninstall()
    assert not any(isinstance(f, zenml_hook._GraftFinder) for f in sys.meta_path)


def test_off_switch_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, off in [("1", True), ("true", True), ("0", False), ("", False)]:
        monkeypatch.setenv(zenml_hook.DISABLE_ENV, value)
        assert zenml_hook.disabled() is off


# --------------------------------------------------------------------------- broken layouts

# A fake `zenml` package shadows the real one, so each test controls the CLI "layout".
_FAKE_INIT = """
from zenml_gcp_gitops.zenml_hook import install
install()
"""

_LAYOUTS: dict[str, dict[str, str]] = {
    # No `stack` group at all.
    "no_stack": {
        "cli/__init__.py": "from zenml.cli.cli import cli\n",
        "cli/cli.py": "import click\n@click.group()\ndef cli():\n    pass\n",
    },
    # `stack` exists, but has no `deploy` command.
    "no_deploy": {
        "cli/__init__.py": "from zenml.cli.stack import *\n",
        "cli/cli.py": "import click\n@click.group()\ndef cli():\n    pass\n",
        "cli/stack.py": (
            "from zenml.cli.cli import cli\n"
            "@cli.group()\ndef stack():\n    pass\n"
            "@stack.command()\ndef list():\n    pass\n"
        ),
    },
    # `deploy` became a group: we do not know how to route it, so hands off.
    "deploy_is_group": {
        "cli/__init__.py": "from zenml.cli.stack import *\n",
        "cli/cli.py": "import click\n@click.group()\ndef cli():\n    pass\n",
        "cli/stack.py": (
            "from zenml.cli.cli import cli\n"
            "@cli.group()\ndef stack():\n    pass\n"
            "@stack.group()\ndef deploy():\n    pass\n"
        ),
    },
    # Reading the layout raises inside our code.
    "exploding": {
        "cli/__init__.py": "from zenml.cli.stack import *\n",
        "cli/cli.py": (
            "class _Boom:\n"
            "    @property\n"
            "    def commands(self):\n"
            "        raise RuntimeError('layout exploded')\n"
            "cli = _Boom()\n"
        ),
        "cli/stack.py": "from zenml.cli.cli import cli\nstack = cli\n",
    },
}


MakeFake = Callable[[str], Path]


@pytest.fixture()
def fake_zenml(tmp_path: Path) -> MakeFake:
    def make(layout: str) -> Path:
        root = tmp_path / layout
        pkg = root / "zenml"
        (pkg / "cli").mkdir(parents=True)
        (pkg / "__init__.py").write_text(_FAKE_INIT)
        for rel, text in _LAYOUTS[layout].items():
            (pkg / rel).write_text(text)
        return root

    return make


_IMPORT_FAKE_CLI = """
    import json, sys
    sys.argv = {argv!r}
    import zenml
    import zenml.cli
    from zenml_gcp_gitops.zenml_hook import _GraftFinder
    print(json.dumps({{
        "fake": zenml.__file__,
        "finder_left": any(isinstance(f, _GraftFinder) for f in sys.meta_path),
    }}))
"""


@pytest.mark.parametrize("layout", sorted(_LAYOUTS))
def test_unknown_layout_does_nothing_and_points_to_our_cli(
    layout: str,
    fake_zenml: MakeFake,
) -> None:
    root = fake_zenml(layout)
    src = str(Path(zenml_hook.__file__).resolve().parents[1])
    env = _env(PYTHONPATH=os.pathsep.join([str(root), src]))
    for argv, expect_msg in (
        (["zenml", "stack", "deploy", "gcp-gitops", "--help"], True),
        (["zenml", "stack", "list"], False),
    ):
        proc = subprocess.run(
            [PY, "-c", textwrap.dedent(_IMPORT_FAKE_CLI.format(argv=argv))],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr  # the import of zenml.cli still works
        got = json.loads(proc.stdout)
        assert got["fake"].startswith(str(root))
        assert got["finder_left"] is False
        assert (zenml_hook.FALLBACK_MESSAGE in proc.stderr) is expect_msg, proc.stderr
        assert "Traceback" not in proc.stderr


def test_zenml_own_import_errors_propagate_unchanged(
    fake_zenml: MakeFake,
) -> None:
    root = fake_zenml("no_stack")
    (root / "zenml" / "cli" / "__init__.py").write_text("raise ImportError('zenml says no')\n")
    src = str(Path(zenml_hook.__file__).resolve().parents[1])
    proc = subprocess.run(
        [PY, "-c", "import zenml.cli"],
        capture_output=True,
        text=True,
        env=_env(PYTHONPATH=os.pathsep.join([str(root), src])),
        timeout=60,
    )
    assert proc.returncode == 1
    assert "ImportError: zenml says no" in proc.stderr


# --------------------------------------------------------------------------- the real `zenml` CLI


Runs = dict[str, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def zenml_cli_runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Each `zenml` start costs ~2 s, so the invocations run in parallel, once per module."""
    cwd = tmp_path_factory.mktemp("zenml-cli")
    runs = {
        "zenml_help": [ZENML, "stack", "deploy", "-p", "gcp", "--help"],
        "bare_help": [ZENML, "stack", "deploy", "--help"],
        "ours_help": [ZENML, "stack", "deploy", SUB, "--help"],
        "disabled": [ZENML, "stack", "deploy", SUB, "--help"],
        "bad_input": [
            ZENML,
            "stack",
            "deploy",
            SUB,
            "--offline",
            "--project",
            "Bad_Project",
            "--region",
            "europe-west4",
        ],
        # Our package broken after the graft: one clear line, no traceback.
        "broken_ours": [
            PY,
            "-c",
            "import sys; sys.modules['zenml_gcp_gitops.cli'] = None; "
            f"sys.argv = ['zenml', 'stack', 'deploy', '{SUB}', '--help']; "
            "from zenml_cli import cli; cli()",
        ],
        "json": [
            ZENML,
            "stack",
            "deploy",
            SUB,
            "--offline",
            "--project",
            "demo-project-123",
            "--region",
            "europe-west4",
            "--output",
            "json",
        ],
        # The first real step towards GCP, on a machine without credentials.
        "no_credentials": [
            ZENML,
            "stack",
            "deploy",
            SUB,
            "--project",
            "demo-project-123",
            "--region",
            "europe-west4",
            "--output",
            "json",
        ],
    }
    no_adc = {
        "CLOUDSDK_CONFIG": str(cwd / "gcloud"),
        "NO_GCE_CHECK": "true",
        "GOOGLE_APPLICATION_CREDENTIALS": "",
        "ZENML_GCP_GITOPS_HOME": str(cwd / "home"),
    }
    procs = {
        key: subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=_env(
                **({zenml_hook.DISABLE_ENV: "1"} if key == "disabled" else {}),
                **(no_adc if key == "no_credentials" else {}),
            ),
        )
        for key, argv in runs.items()
    }
    out: Runs = {}
    for key, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=180)
        out[key] = subprocess.CompletedProcess(runs[key], proc.returncode, stdout, stderr)
    return out


def _text(p: subprocess.CompletedProcess[str]) -> str:
    # ZenML's `zenml` script points stdout at stderr, so help can land on either.
    return p.stdout + p.stderr


def test_zenml_deploy_gcp_help_is_still_zenmls(zenml_cli_runs: Runs) -> None:
    for key in ("zenml_help", "bare_help"):
        p = zenml_cli_runs[key]
        assert p.returncode == 0, _text(p)
        text = _text(p)
        assert "Usage: zenml stack deploy [OPTIONS]" in text
        assert "--provider" in text and "Deploy a fully functional ZenML stack" in text
        # ... and it tells people the gcp-gitops target exists.
        assert "zenml stack deploy gcp-gitops" in text


def _our_deploy_registered() -> bool:
    from zenml_gcp_gitops.cli import cli

    return "deploy" in cli.commands


def test_zenml_deploy_gcp_gitops_help_is_ours(zenml_cli_runs: Runs) -> None:
    p = zenml_cli_runs["ours_help"]
    text = _text(p)
    assert "Usage: zenml stack deploy gcp-gitops" in text, text
    assert "--provider" not in text
    assert _our_deploy_registered(), "`zenml-gcp-gitops deploy` is not registered"
    assert p.returncode == 0, text
    assert "--project" in text and "--region" in text


def test_zenml_deploy_gcp_gitops_reaches_zenml_when_disabled(zenml_cli_runs: Runs) -> None:
    # With the off switch, `gcp-gitops --help` is ZenML's eager --help of its own command.
    text = _text(zenml_cli_runs["disabled"])
    assert "Usage: zenml stack deploy [OPTIONS]" in text
    assert "gcp-gitops" not in text


def test_zenml_deploy_gcp_gitops_bad_input_is_one_line(zenml_cli_runs: Runs) -> None:
    assert _our_deploy_registered(), "`zenml-gcp-gitops deploy` is not registered"
    p = zenml_cli_runs["bad_input"]
    assert p.returncode == 2, _text(p)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: project:"), p.stderr
    assert p.stdout == ""


def test_zenml_deploy_gcp_gitops_json_reaches_real_stdout(zenml_cli_runs: Runs) -> None:
    # ZenML's `zenml` script points sys.stdout at stderr; our output must still be pipeable.
    assert _our_deploy_registered(), "`zenml-gcp-gitops deploy` is not registered"
    p = zenml_cli_runs["json"]
    assert p.returncode == 0, p.stderr[-2000:]
    plan = json.loads(p.stdout)
    assert plan["version"] == 1 and plan["resources"]
    assert plan["config"]["project"] == "demo-project-123"


def test_broken_package_at_dispatch_is_one_clear_line(zenml_cli_runs: Runs) -> None:
    p = zenml_cli_runs["broken_ours"]
    assert p.returncode == 1, _text(p)
    assert "zenml-gcp-gitops cannot be loaded" in p.stderr
    assert "Traceback" not in _text(p)


def test_zenml_stack_deploy_without_credentials_is_one_line(zenml_cli_runs: Runs) -> None:
    p = zenml_cli_runs["no_credentials"]
    assert p.returncode == 2, p.stderr[-3000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines == [
        "Error: no Google Application Default Credentials found (run `gcloud auth "
        "application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a service-account "
        "key file))"
    ], p.stderr[-3000:]
    doc = json.loads(p.stdout)
    assert doc["ok"] is False and "Application Default Credentials" in doc["error"]
