"""How long `zenml-gcp-gitops local up` takes to a registered stack (target: cold <= 30 s).

    python benchmarks/bench_local_up.py [--rounds 3] [--keep]

Each round, in a fresh temp dir, measures wall-clock time of the real CLI (a new Python
process, as a user runs it):
  cold     first `up`: empty data dir, new databases and migrations, register + CI key
  noop     a second `up` while everything runs (re-check + re-register, no change)
  restart  `down` then `up` again: data kept, servers start on existing databases
and `down` itself. Prints one JSON document with every sample and the medians.
Everything started is stopped by PID at the end (`local down --purge`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-c", "from zenml_gcp_gitops.cli import main; main()", "local"]


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
        out["cold"], first = _run("up", *d)
        out["cold_services_ready"] = float(first["services_seconds"])  # type: ignore[arg-type]
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
