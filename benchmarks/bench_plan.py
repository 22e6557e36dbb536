"""Wall time of `zenml-gcp-gitops plan --offline`, as a user runs it (fresh process each time).

Each round starts a new interpreter, so the time includes importing pulumi/pulumi_gcp,
running the real program under mocks, rendering the Argo CD and ZenML sections and
printing. Reports min/median/max of N rounds for the default config and for a config
that turns every optional part on (vertex, CI federation, key connector). Target: median
<= 6 s on the 2-core CI machine.

    python benchmarks/bench_plan.py [--rounds 5] [--json] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 6.0
BASE = ["plan", "--offline", "--project", "acme-ml-prod", "--region", "europe-west4"]
VARIANTS = {
    "default": [*BASE, "--output", "json"],
    "full": [
        *BASE,
        "--orchestrator",
        "vertex",
        "--github-repo",
        "acme/ml-pipelines",
        "--connector-auth",
        "service-account",
        "--output",
        "json",
    ],
    "text": BASE,
}


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("zenml-gcp-gitops")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("zenml-gcp-gitops")
    return (
        [found]
        if found
        else [sys.executable, "-c", "from zenml_gcp_gitops.cli import main; main()"]
    )


def measure(args: list[str], rounds: int) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds) per round; CPU time shows the cost on a busy machine."""
    times, cpu = [], []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([*_cli(), *args], capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            raise SystemExit(f"plan failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        if "--output" in args:
            json.loads(proc.stdout)  # the run must produce one valid document
    return times, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    ap.add_argument("--check", action="store_true", help=f"exit 1 if a median > {TARGET_S} s")
    opts = ap.parse_args()

    measure(VARIANTS["default"][:], 1)  # warm the page cache and .pyc files once
    results = {}
    for name, args in VARIANTS.items():
        t, cpu = measure(args, opts.rounds)
        results[name] = {
            "median_s": round(statistics.median(t), 3),
            "cpu_median_s": round(statistics.median(cpu), 3),
            "min_s": round(min(t), 3),
            "max_s": round(max(t), 3),
            "rounds": opts.rounds,
        }
    load = os.getloadavg()[0]
    if opts.json:
        print(json.dumps({"target_s": TARGET_S, "load_avg_1m": load, "results": results}, indent=2))
    else:
        for name, r in results.items():
            print(
                f"plan --offline [{name:7}] median {r['median_s']:.2f} s "
                f"(min {r['min_s']:.2f}, max {r['max_s']:.2f}, n={r['rounds']}), "
                f"CPU {r['cpu_median_s']:.2f} s; target <= {TARGET_S} s"
            )
        print(f"(1-minute load average {load:.1f} on {os.cpu_count()} CPUs)")
    worst = max(r["median_s"] for r in results.values())
    return 1 if opts.check and worst > TARGET_S else 0


if __name__ == "__main__":
    sys.exit(main())
