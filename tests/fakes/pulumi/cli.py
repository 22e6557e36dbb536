"""The fake `pulumi` executable (see `__init__.py`). Stdlib only until an engine op runs."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"


class CliError(Exception):
    pass


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def is_secret(v: Any) -> bool:
    return isinstance(v, dict) and v.get(SIG_KEY) == SECRET_SIG


def unwrap(v: Any) -> Any:
    """Plain values from the property JSON (secrets unwrapped)."""
    if is_secret(v):
        return unwrap(v.get("value"))
    if isinstance(v, dict):
        return {k: unwrap(x) for k, x in v.items()}
    if isinstance(v, list):
        return [unwrap(x) for x in v]
    return v


def parse_flags(args: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Split positional args from `--flag value` / `--flag=value` / boolean flags."""
    booleans = {
        "--yes",
        "--skip-preview",
        "--json",
        "--show-secrets",
        "--no-select",
        "--force",
        "--preview-only",
        "--non-interactive",
        "--plaintext-only",
        "--expect-no-changes",
        "--refresh",
        "--diff",
        "--all",
        "--path",
        "--remove",
        "--exclude-protected",
        "--preserve-config",
        "--suppress-outputs",
        "--suppress-progress",
        "--debug",
        "--clear-pending-creates",
        "--continue-on-error",
        "--help",
    }
    pos: list[str] = []
    flags: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            if "=" in a:
                k, v = a.split("=", 1)
                flags.setdefault(k, []).append(v)
            elif a in booleans:
                flags.setdefault(a, []).append("true")
            else:
                flags.setdefault(a, []).append(args[i + 1] if i + 1 < len(args) else "")
                i += 1
        else:
            pos.append(a)
        i += 1
    return pos, flags


def one(flags: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    vals = flags.get(name)
    return vals[-1] if vals else default


class Backend:
    """The diy `file://` backend layout: stacks and locks under `<dir>/.pulumi`."""

    def __init__(self, cwd: Path) -> None:
        url = os.environ.get("PULUMI_BACKEND_URL") or self._url_from_project(cwd)
        if not url:
            raise CliError("error: no backend configured (set PULUMI_BACKEND_URL)")
        parsed = urlparse(url)
        if parsed.scheme != "file":
            raise CliError(f"error: the fake pulumi only supports file:// backends, not {url}")
        self.url = url
        self.dir = Path(unquote(parsed.netloc + parsed.path)).expanduser()
        self.project = self._project_name(cwd)

    @staticmethod
    def _settings(cwd: Path) -> dict[str, Any]:
        for name in ("Pulumi.yaml", "Pulumi.yml", "Pulumi.json"):
            p = cwd / name
            if p.exists():
                import yaml  # the venv has PyYAML (Pulumi's Automation API needs it)

                return yaml.safe_load(p.read_text()) or {}
        return {}

    def _url_from_project(self, cwd: Path) -> str | None:
        backend = self._settings(cwd).get("backend") or {}
        return backend.get("url")

    def _project_name(self, cwd: Path) -> str:
        name = self._settings(cwd).get("name")
        if not name:
            raise CliError("error: no Pulumi.yaml project file found in " + str(cwd))
        return str(name)

    def stack_path(self, stack: str) -> Path:
        return self.dir / ".pulumi" / "stacks" / self.project / f"{stack}.json"

    def lock_dir(self, stack: str) -> Path:
        return self.dir / ".pulumi" / "locks" / "organization" / self.project / stack

    def exists(self, stack: str) -> bool:
        return self.stack_path(stack).exists()

    def load(self, stack: str) -> dict[str, Any]:
        p = self.stack_path(stack)
        if not p.exists():
            raise CliError(f"error: no stack named '{stack}' found")
        return json.loads(p.read_text())

    def save(self, stack: str, data: dict[str, Any]) -> None:
        p = self.stack_path(stack)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, p)

    # -- locking, like the real diy backend: one file per holder, others make us fail
    def lock(self, stack: str) -> Path:
        d = self.lock_dir(stack)
        d.mkdir(parents=True, exist_ok=True)
        mine = d / f"{uuid.uuid4()}.json"
        others = [p for p in d.glob("*.json")]
        if others:
            lines = [
                f"error: the stack is currently locked by {len(others)} lock(s). Either wait for "
                "the other process(es) to end or delete the lock file with `pulumi cancel`."
            ]
            for p in others:
                c = json.loads(p.read_text())
                lines.append(
                    f"  {self.url}/{p.relative_to(self.dir)}: created by "
                    f"{c['username']}@{c['hostname']} (pid {c['pid']}) at {c['timestamp']}"
                )
            raise CliError("\n".join(lines))
        mine.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "username": os.environ.get("USER", "tester"),
                    "hostname": socket.gethostname(),
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
        )
        return mine


def stack_config(cwd: Path, stack: str) -> dict[str, dict[str, Any]]:
    p = cwd / f"Pulumi.{stack}.json"
    return json.loads(p.read_text()) if p.exists() else {}


def save_stack_config(cwd: Path, stack: str, cfg: dict[str, dict[str, Any]]) -> None:
    (cwd / f"Pulumi.{stack}.json").write_text(json.dumps(cfg, indent=1))


def cmd_stack(pos: list[str], flags: dict[str, list[str]], cwd: Path) -> str:
    sub = pos[1] if len(pos) > 1 else ""
    be = Backend(cwd)
    stack = one(flags, "--stack") or (pos[2] if len(pos) > 2 else None)
    if sub == "init":
        assert stack
        if be.exists(stack):
            raise CliError(f"error: stack '{stack}' already exists")
        be.save(
            stack,
            {
                "secrets_provider": one(flags, "--secrets-provider", "passphrase"),
                "resources": [],
                "outputs": {},
                "history": [],
            },
        )
        (cwd / ".fake-current-stack").write_text(stack)
        return ""
    if sub == "select":
        assert stack
        be.load(stack)
        (cwd / ".fake-current-stack").write_text(stack)
        return ""
    if sub == "ls":
        cur = (
            (cwd / ".fake-current-stack").read_text()
            if (cwd / ".fake-current-stack").exists()
            else ""
        )
        out = []
        d = be.stack_path("x").parent
        for p in sorted(d.glob("*.json")) if d.exists() else []:
            data = json.loads(p.read_text())
            out.append(
                {
                    "name": p.stem,
                    "current": p.stem == cur,
                    "updateInProgress": any(be.lock_dir(p.stem).glob("*.json")),
                    "resourceCount": len(data["resources"]),
                }
            )
        return json.dumps(out)
    if sub == "rm":
        assert stack
        data = be.load(stack)
        if data["resources"] and "--force" not in flags:
            raise CliError(f"error: '{stack}' still has resources; use --force")
        be.stack_path(stack).unlink()
        return ""
    if sub == "output":
        assert stack
        data = be.load(stack)
        show = "--show-secrets" in flags
        out = {}
        for k, v in data["outputs"].items():
            out[k] = unwrap(v) if show or not is_secret(v) else "[secret]"
        return json.dumps(out)
    if sub == "history":
        assert stack
        data = be.load(stack)
        hist = list(reversed(data["history"]))
        size = one(flags, "--page-size")
        if size:
            page = int(one(flags, "--page", "1") or 1)
            hist = hist[(page - 1) * int(size) : page * int(size)]
        return json.dumps(hist)
    if sub == "export":
        assert stack
        data = be.load(stack)
        resources = []
        for r in data["resources"]:
            resources.append(
                {k: r[k] for k in ("urn", "type", "id", "custom", "parent", "protect")}
                | {"inputs": unwrap(r["inputs"]), "outputs": unwrap(r["outputs"])}
            )
        return json.dumps({"version": 3, "deployment": {"manifest": {}, "resources": resources}})
    if sub == "import":
        assert stack
        data = be.load(stack)
        state = json.loads(Path(one(flags, "--file") or "").read_text())
        data["resources"] = state.get("deployment", {}).get("resources", [])
        be.save(stack, data)
        return ""
    if sub == "tag":
        return "{}"
    raise CliError(f"error: fake pulumi does not implement `stack {sub}`")


def cmd_config(pos: list[str], flags: dict[str, list[str]], cwd: Path, raw: list[str]) -> str:
    sub = pos[1] if len(pos) > 1 else ""
    stack = one(flags, "--stack")
    assert stack
    cfg = stack_config(cwd, stack)
    if sub == "set-all":
        if "--json" in flags and flags["--json"][-1] not in ("true", ""):
            for k, v in json.loads(flags["--json"][-1]).items():
                cfg[k] = {"value": v.get("value"), "secret": bool(v.get("secret"))}
        for i, a in enumerate(raw):
            if a in ("--plaintext", "--secret"):
                k, v = raw[i + 1].split("=", 1)
                cfg[k] = {"value": v, "secret": a == "--secret"}
        save_stack_config(cwd, stack, cfg)
        return ""
    if sub == "set":
        key, value = pos[2], pos[3]
        cfg[key] = {"value": value, "secret": "--secret" in raw}
        save_stack_config(cwd, stack, cfg)
        return ""
    if sub == "rm":
        cfg.pop(pos[2], None)
        save_stack_config(cwd, stack, cfg)
        return ""
    if sub == "" and "--json" in flags:
        return json.dumps(cfg)
    raise CliError(f"error: fake pulumi does not implement `config {sub}`")


def cmd_plugin(pos: list[str], cwd: Path) -> str:
    sub = pos[1] if len(pos) > 1 else ""
    home = Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")
    registry = home / "fake-plugins.json"
    plugins = json.loads(registry.read_text()) if registry.exists() else []
    if sub == "install":
        if os.environ.get("FAKE_PULUMI_FAIL_PLUGIN_INSTALL"):
            raise CliError(
                f"error: [resource plugin {pos[3]}-{pos[4]}] downloading plugin: "
                "403 Forbidden from get.pulumi.com"
            )
        entry = {"name": pos[3], "kind": pos[2], "version": pos[4].lstrip("v"), "size": 1}
        if entry not in plugins:
            plugins.append(entry)
            home.mkdir(parents=True, exist_ok=True)
            registry.write_text(json.dumps(plugins))
        return ""
    if sub == "ls":
        return json.dumps(plugins)
    if sub == "rm":
        return ""
    raise CliError(f"error: fake pulumi does not implement `plugin {sub}`")


def main(argv: list[str]) -> int:
    calls = os.environ.get("FAKE_PULUMI_CALLS")
    if calls:
        with open(calls, "a") as f:
            f.write(json.dumps(argv) + "\n")
    raw = [a for a in argv if a != "--non-interactive"]
    pos, flags = parse_flags(raw)
    cwd = Path.cwd()
    cmd = pos[0] if pos else ""
    try:
        if cmd == "version":
            out = "v" + os.environ.get("FAKE_PULUMI_VERSION", "3.225.0")
        elif cmd == "whoami":
            out = json.dumps({"user": "tester", "url": ""}) if "--json" in flags else "tester"
        elif cmd == "stack":
            out = cmd_stack(pos, flags, cwd)
        elif cmd == "config":
            out = cmd_config(pos, flags, cwd, raw)
        elif cmd == "plugin":
            out = cmd_plugin(pos, cwd)
        elif cmd == "cancel":
            raise CliError("error: the diy backend does not support cancel; delete the lock file")
        elif cmd in ("up", "preview", "refresh", "destroy"):
            if "--help" in flags:
                out = f"Usage: pulumi {cmd} [flags]"
            else:
                from engine import run_operation  # heavy: pulumi + grpc

                return run_operation(cmd, pos, flags, Backend(cwd), cwd)
        elif cmd == "about":
            out = json.dumps({"cliVersion": os.environ.get("FAKE_PULUMI_VERSION", "3.225.0")})
        else:
            raise CliError(f"error: fake pulumi does not implement `{cmd}`")
    except CliError as e:
        sys.stderr.write(str(e) + "\n")
        return 255
    if out:
        sys.stdout.write(out + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main(sys.argv[1:]))
