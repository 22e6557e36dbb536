"""What the cost and duration estimates cost `plan --offline`, in CPU seconds.

Two measures, both as CPU time (user + system), which a busy machine inflates far less than
wall time:

1. the estimate sections in one process, after one real program run under mocks: the GitOps
   render, the cost (every supported region, snapshot prices), the duration, and the HA
   comparison `plan` prints; per call, min/median/max;
2. the whole `plan --offline --output json` process, fresh each round.

The target is `plan --offline` under 1.5 s median wall time on an idle machine. Wall time
against the previous commit, in one run, pairs the two (the machine's drift cancels):

    git archive <parent> | tar -x -C /tmp/parent
    farm-bench -n 10 --vs "env PYTHONPATH=/tmp/parent/src:/tmp/parent python zgg.py $ARGS" \\
        -- env PYTHONPATH=$PWD/src:$PWD python zgg.py $ARGS
    # zgg.py: from zenml_gcp_gitops.cli import main; main()
    # ARGS:   plan --offline --project acme-ml-prod --region europe-west4 --output json

    python benchmarks/bench_estimate.py [--rounds 5] [--json] [--against REF]

`--against REF` does the pairing itself: it unpacks REF (a commit) into a temporary folder
and runs the two `plan --offline` processes in turn, A (this tree) B (REF) A B ..., with
the median of the per-pair ratios A/B for wall and CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_WALL_S = 1.5
ARGS = [
    "plan",
    "--offline",
    "--project",
    "acme-ml-prod",
    "--region",
    "europe-west4",
    "--output",
    "json",
]


def _stats(xs: list[float]) -> dict[str, float]:
    return {
        "min": round(min(xs), 4),
        "median": round(statistics.median(xs), 4),
        "max": round(max(xs), 4),
    }


def in_process(rounds: int) -> dict[str, Any]:
    from zenml_gcp_gitops.cli.plan import ha_difference
    from zenml_gcp_gitops.config import SUPPORTED_REGIONS, build_config
    from zenml_gcp_gitops.estimate.prices import snapshot_prices
    from zenml_gcp_gitops.plan import _infra_outputs, estimates, offline_plan, run_program

    cfg = build_config(None, {"project": "acme-ml-prod", "region": "europe-west4"})
    run = run_program(cfg)
    plan = offline_plan(cfg)
    outputs = _infra_outputs(cfg, run)
    sections, ha, regions = [], [], []
    for _ in range(rounds):
        t = time.process_time()
        estimates(cfg, outputs, plan["resources"])
        sections.append(time.process_time() - t)
        t = time.process_time()
        ha_difference(cfg, plan, snapshot_prices(cfg.region))
        ha.append(time.process_time() - t)
    for region in sorted(SUPPORTED_REGIONS):
        c = build_config(None, {"project": "acme-ml-prod", "region": region})
        t = time.process_time()
        cost = estimates(c, outputs, plan["resources"], snapshot_prices(region))["cost"]
        regions.append(time.process_time() - t)
        assert isinstance(cost["monthly_total"], float), region
    return {
        "estimate_sections_cpu_s": _stats(sections),
        "ha_comparison_cpu_s": _stats(ha),
        "per_region_cpu_s": _stats(regions),
        "regions": len(regions),
    }


def _one_run(cli: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh `plan --offline` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([*cli, *ARGS], capture_output=True, text=True, check=False, env=env)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"plan failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    json.loads(proc.stdout)
    return elapsed, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def whole_process(rounds: int) -> dict[str, Any]:
    exe = Path(sys.executable).with_name("zenml-gcp-gitops")
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "zenml_gcp_gitops"]
    wall, cpu = [], []
    for i in range(rounds + 1):  # the first round warms .pyc files and the page cache
        w, c = _one_run(cli)
        if i:
            wall.append(w)
            cpu.append(c)
    return {"wall_s": _stats(wall), "cpu_s": _stats(cpu), "rounds": rounds}


def against(ref: str, rounds: int) -> dict[str, Any]:
    """This tree (A) and commit `ref` (B) in turn, each from its own source folder."""
    here = Path(__file__).resolve().parents[1]
    cli = [sys.executable, "-c", "from zenml_gcp_gitops.cli import main; main()"]
    with tempfile.TemporaryDirectory(prefix="bench-estimate-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(here), "archive", ref], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        envs = {
            side: {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
            for side, root in (("A", here), ("B", Path(tmp)))
        }
        runs: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
        for i in range(rounds + 1):  # round 0 warms both sides' .pyc files
            for side in ("A", "B"):
                result = _one_run(cli, envs[side])
                if i:
                    runs[side].append(result)
    out: dict[str, Any] = {"ref": ref, "rounds": rounds}
    for side, rs in runs.items():
        out[side] = {"wall_s": _stats([w for w, _ in rs]), "cpu_s": _stats([c for _, c in rs])}
    pairs = list(zip(runs["A"], runs["B"], strict=True))
    out["ratio_a_b"] = {
        "wall": _stats([a[0] / b[0] for a, b in pairs]),
        "cpu": _stats([a[1] / b[1] for a, b in pairs]),
    }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    ap.add_argument("--against", metavar="REF", help="pair whole runs with this commit's")
    opts = ap.parse_args()
    load_before = os.getloadavg()[0]
    if opts.against:
        paired = against(opts.against, opts.rounds)
        paired["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        if opts.json:
            print(json.dumps(paired, indent=2))
            return 0
        for side, label in (("A", "this tree"), ("B", opts.against)):
            w, c = paired[side]["wall_s"], paired[side]["cpu_s"]
            print(
                f"{side} ({label}): wall median {w['median']:.2f} s "
                f"(min {w['min']:.2f}, max {w['max']:.2f}), CPU median {c['median']:.2f} s"
            )
        r = paired["ratio_a_b"]
        print(
            f"A/B per pair: wall median {r['wall']['median']:.3f}, "
            f"CPU median {r['cpu']['median']:.3f} (n={opts.rounds}; load {paired['load_avg_1m']})"
        )
        return 0
    out = {
        "in_process": in_process(opts.rounds),
        "plan_offline": whole_process(opts.rounds),
        "target_wall_s": TARGET_WALL_S,
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
    }
    if opts.json:
        print(json.dumps(out, indent=2))
        return 0
    ip, pp = out["in_process"], out["plan_offline"]
    print(
        f"estimate sections: CPU median {ip['estimate_sections_cpu_s']['median']:.3f} s; "
        f"HA comparison {ip['ha_comparison_cpu_s']['median']:.3f} s; "
        f"one region's cost {ip['per_region_cpu_s']['median']:.3f} s ({ip['regions']} regions)"
    )
    print(
        f"plan --offline: wall median {pp['wall_s']['median']:.2f} s "
        f"(min {pp['wall_s']['min']:.2f}, max {pp['wall_s']['max']:.2f}), "
        f"CPU median {pp['cpu_s']['median']:.2f} s, n={pp['rounds']}; "
        f"target wall <= {TARGET_WALL_S} s at idle"
    )
    print(f"(1-minute load average {out['load_avg_1m']} on {out['cpus']} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
