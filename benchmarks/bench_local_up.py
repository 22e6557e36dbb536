"""How long `zenml-gcp-gitops local up` takes to a registered stack (target: cold <= 30 s).

    python benchmarks/bench_local_up.py [--rounds 3] [--keep]

Each round, in a fresh temp dir, measures wall-clock time of the real CLI (a new Python
process, as a user runs it):
  cold     first `up`: empty data dir, new databases and migrations, register + CI key
  noop     a second `up` while everything runs (re-check + re-register, no change)
  restart  `down` then `up` again: data kept, servers start on existing databases
and `down` itself, plus the CPU seconds the cold start used (the CLI and each service), which
do not depend on how busy the machine is. Prints one JSON document with every sample and the
medians, and the load average (wall times on a shared machine grow with it).
Everything started is stopped by PID at the end (`local down --purge`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-c", "from zenml_gcp_gitops.cli import main; main()", "local"]


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _service_cpu(base: Path) -> dict[str, float]:
    """CPU seconds each running service has used so far (all processes of its group)."""
    from zenml_gcp_gitops.local import services as sv

    state = sv.LocalState.load(base)
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for key, svc in (state.services if state else {}).items():
        total = 0
        for pid in sv.group_members(svc.pid):
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        out[key] = round(total / tick, 1)
    return out


def _run(*args: str) -> tuple[float, dict[str, object]]:
    t0 = time.monotonic()
    proc = subprocess.run([*CLI, *args, "--output", "json"], capture_output=True, text=True)
    took = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"`local {' '.join(args)}` failed:\n{proc.stderr[-3000:]}")
    return took, json.loads(proc.stdout)


def one_round(base: Path) -> dict[str, float]:
    d = ["--name", "bench", "--dir", str(base)]
    out: dict[str, float] = {}
    try:
        cpu0 = _children_cpu()
        out["cold"], first = _run("up", *d)
        out["cold_cli_cpu"] = round(_children_cpu() - cpu0, 1)
        out["cold_services_ready"] = float(first["services_seconds"])  # type: ignore[arg-type]
        for key, cpu in _service_cpu(base).items():
            out[f"cold_cpu_{key}"] = cpu
        out["noop"], again = _run("up", *d)
        assert again["changed"] is False and again["started"] == [], again
        out["down"], _ = _run("down", *d)
        out["restart"], _ = _run("up", *d)
    finally:
        subprocess.run([*CLI, "down", *d, "--purge"], capture_output=True, text=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (logs)")
    args = parser.parse_args()
    load0 = os.getloadavg()
    samples: list[dict[str, float]] = []
    for _ in range(args.rounds):
        base = Path(tempfile.mkdtemp(prefix="zgg-bench-local-"))
        try:
            samples.append(one_round(base / "data"))
        finally:
            if not args.keep:
                shutil.rmtree(base, ignore_errors=True)
    keys = samples[0].keys()
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_avg_at_start": load0,
        "load_avg_at_end": os.getloadavg(),
        "samples": samples,
        "median_seconds": {k: round(statistics.median(s[k] for s in samples), 2) for k in keys},
        "target_cold_seconds": 30,
    }
    report["cold_within_target"] = report["median_seconds"]["cold"] <= 30  # type: ignore[index]
    print(json.dumps(report, indent=2))
    return 0 if report["cold_within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
