"""A pipeline image as a venv, and its pods as processes. Standard library only: it runs
inside the client venv of the rehearsal (tests/support/rehearsal_hooks/sitecustomize.py).

`build_image(context_tar, conf)` plays the Dockerfile that ZenML generated for the stack:
FROM python:X.Y-* is a fresh venv of this machine's Python X.Y, WORKDIR is a directory,
ENV lines are kept for the pods, COPY takes files from the build context, and each RUN runs
in the venv as written (the installers reach the registry and, through --find-links, the
wheel dir of this checkout, as if it were published). The only change to a RUN line: no
`--no-cache-dir`, so repeated rehearsals reuse the installers' caches. `pip check` runs last.

`run_pods(conf, image, snapshot_id, run_id, environment)` plays the Kubernetes orchestrator:
the orchestrator pod (pod_orchestrator.py, as the orchestrator's entrypoint computes each
step pod's command and environment) and then each step pod, in order, in a fresh copy of
the image's workdir, with the image's ENV, the pod's environment and the emulation
variables (GCS emulator, metadata server) that stand in for GCP's network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

INSTALL_TIMEOUT = 1500


def _log(conf: dict[str, Any], name: str) -> Path:
    path = Path(conf["dir"]) / "logs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    for raw in text.splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        op, _, rest = raw.partition(" ")
        lines.append((op.upper(), rest.strip()))
    return lines


def build_image(context_tar: Path, conf: dict[str, Any]) -> dict[str, Any]:
    """Build the venv image; returns its description (also written to image.json)."""
    root = Path(conf["dir"]) / "image"
    if root.exists():
        shutil.rmtree(root)
    context = root / "context"
    context.mkdir(parents=True)
    with tarfile.open(context_tar) as tar:
        tar.extractall(context, filter="data")
    dockerfile = (context / "Dockerfile").read_text()
    venv = root / "venv"
    workdir = root / "app"
    env: dict[str, str] = {}
    report: dict[str, Any] = {
        "dockerfile": dockerfile,
        "requirements_files": {},
        "runs": [],
        "venv": str(venv),
        "workdir": str(workdir),
    }
    wheel_dirs = conf["find_links"]
    run_env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("VIRTUAL_ENV", "PYTHON", "ZGG_"))
        },
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PIP_FIND_LINKS": " ".join([*os.environ.get("PIP_FIND_LINKS", "").split(), *wheel_dirs]),
        "UV_FIND_LINKS": ",".join(wheel_dirs),
        # reach the registries as this machine's pip does (its CA bundle, if it names one)
        "UV_NATIVE_TLS": "true",
    }
    if os.environ.get("PIP_CERT"):
        run_env["SSL_CERT_FILE"] = os.environ["PIP_CERT"]
    for op, arg in parse_dockerfile(dockerfile):
        if op == "FROM":
            m = re.match(r"python:(\d+)\.(\d+)", arg)
            if not m or (int(m[1]), int(m[2])) != sys.version_info[:2]:
                raise RuntimeError(f"image FROM {arg}: this rehearsal has Python {sys.version}")
            subprocess.run([conf["python"], "-m", "venv", str(venv)], check=True, timeout=300)
        elif op == "WORKDIR":
            workdir.mkdir(parents=True, exist_ok=True)
        elif op == "ENV":
            key, _, value = arg.partition("=")
            env[key.strip()] = value.strip().strip("'\"")  # /app is each pod's workdir
        elif op == "COPY":
            src, dest = shlex.split(arg)
            if src == ".":
                shutil.copytree(context, workdir, dirs_exist_ok=True)
            else:
                shutil.copy2(context / src, workdir / dest)
                report["requirements_files"][src] = (context / src).read_text()
        elif op == "RUN":
            cmd = arg.replace(" --no-cache-dir", "")
            log = _log(conf, f"image-run-{len(report['runs'])}.log")
            with log.open("w") as out:
                proc = subprocess.run(
                    ["bash", "-c", cmd], cwd=workdir, env=run_env, stdout=out,
                    stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT,
                )  # fmt: skip
            report["runs"].append({"command": cmd, "returncode": proc.returncode})
            if proc.returncode != 0:
                tail = log.read_text(errors="replace")[-4000:]
                report["error"] = f"RUN {cmd} failed ({proc.returncode}):\n{tail}"
                break
        else:
            raise RuntimeError(f"the rehearsal cannot play Dockerfile instruction {op}")
    report["env"] = env
    if "error" not in report:
        check = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "check"],
            capture_output=True, text=True, timeout=300, env=run_env,
        )  # fmt: skip
        report["pip_check"] = {"returncode": check.returncode, "output": check.stdout}
        freeze = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
            capture_output=True, text=True, timeout=300, env=run_env,
        )  # fmt: skip
        report["packages"] = {p["name"].lower(): p["version"] for p in json.loads(freeze.stdout)}
    (Path(conf["dir"]) / "image.json").write_text(json.dumps(report, indent=1))
    if "error" in report:
        raise RuntimeError(report["error"])
    return report


def image_digest(report: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(report["dockerfile"].encode()).hexdigest()


def _pod_env(
    conf: dict[str, Any], image: dict[str, Any], pod: dict[str, str], home: Path
) -> dict[str, str]:
    venv = Path(image["venv"])
    return {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        **{k: _in_pod(v, home) for k, v in image["env"].items()},
        **pod,
        **conf["pod_emulation_env"],
    }  # fmt: skip


def _in_pod(value: str, home: Path) -> str:
    """The image's /app is the pod's own copy of the workdir."""
    if value == "/app" or value.startswith("/app/"):
        return str(home / "app") + value[4:]
    return value


def _fresh_workdir(conf: dict[str, Any], image: dict[str, Any], pod: str) -> Path:
    home = Path(conf["dir"]) / "pods" / pod
    if home.exists():
        shutil.rmtree(home)
    shutil.copytree(image["workdir"], home / "app")
    return home


def run_pods(
    conf: dict[str, Any], image: dict[str, Any], snapshot_id: str, run_id: str,
    environment: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """The orchestrator pod, then every step pod in order; returns (and writes) a report."""
    report: dict[str, Any] = {"snapshot_id": snapshot_id, "run_id": run_id, "pods": []}
    out_path = Path(conf["dir"]) / "pods.json"
    home = _fresh_workdir(conf, image, "orchestrator")
    script = home / "pod_orchestrator.py"
    shutil.copy2(conf["pod_orchestrator"], script)
    env = _pod_env(conf, image, environment, home)
    log = _log(conf, "pod-orchestrator.log")
    with log.open("w") as out:
        proc = subprocess.run(
            ["python", str(script), snapshot_id, run_id], cwd=home / "app", env=env,
            stdout=subprocess.PIPE, stderr=out, text=True, timeout=600,
        )  # fmt: skip
    report["pods"].append({"pod": "orchestrator", "returncode": proc.returncode})
    if proc.returncode != 0:
        report["error"] = "orchestrator pod failed:\n" + log.read_text(errors="replace")[-5000:]
        out_path.write_text(json.dumps(report, indent=1))
        return report
    plan = json.loads(proc.stdout.strip().splitlines()[-1])
    report["orchestrator"] = {k: v for k, v in plan.items() if k != "steps"}
    report["step_env_keys"] = sorted(plan["steps"][0]["env"]) if plan["steps"] else []
    for step in plan["steps"]:
        home = _fresh_workdir(conf, image, step["name"])
        env = _pod_env(conf, image, step["env"], home)
        log = _log(conf, f"pod-{step['name']}.log")
        with log.open("w") as out:
            proc = subprocess.run(
                [*step["command"], *step["args"]], cwd=home / "app", env=env,
                stdout=out, stderr=subprocess.STDOUT, timeout=900,
            )  # fmt: skip
        report["pods"].append({"pod": step["name"], "returncode": proc.returncode})
        if proc.returncode != 0:
            report["error"] = (
                f"step pod {step['name']} failed:\n" + log.read_text(errors="replace")[-6000:]
            )
            break
    out_path.write_text(json.dumps(report, indent=1))
    return report
