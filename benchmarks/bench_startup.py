"""Startup cost of the ZenML CLI graft, and of our own CLI.

Measures, in fresh processes:
* `zenml --help` with the plugin active and with `ZENML_GCP_GITOPS_DISABLE_CLI=1`, in
  alternating order (ABBA) so drift and cache effects hit both sides alike; the ratio of the
  medians is the graft's cost (target <= 1.05);
* `zenml-gcp-gitops --help` (must stay instant: no zenml/pulumi/kubernetes import);
* the hook itself as ZenML runs it (entry-point load + `install()`), budget 30 ms.

With the off switch the hook module is still imported (and returns at once), so the ratio
measures the finder and the graft; the hook's own import is the third number.

    python benchmarks/bench_startup.py [--rounds 10] [--json] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DISABLE = "ZENML_GCP_GITOPS_DISABLE_CLI"
TARGET_RATIO = 1.05
HOOK_BUDGET_MS = 30.0

_HOOK_TIMER = """
import json, time
from importlib.metadata import entry_points
ep = [e for e in entry_points().select(group="zenml.init_hooks")
      if e.value == "zenml_gcp_gitops.zenml_hook:install"][0]
t = time.perf_counter()
ep.load()()
print(json.dumps((time.perf_counter() - t) * 1000))
"""


def _exe(name: str) -> str:
    here = Path(sys.executable).with_name(name)
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        sys.exit(f"{name} is not installed next to {sys.executable} nor on PATH")
    return found


def _env(home: Path, *, disabled: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != DISABLE}
    env.update(
        ZENML_CONFIG_PATH=str(home / "zenml"),
        ZENML_GCP_GITOPS_HOME=str(home / "data"),
        ZENML_ANALYTICS_OPT_IN="false",
    )
    if disabled:
        env[DISABLE] = "1"
    return env


def _time(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10, help="ABBA rounds of zenml --help [10]")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args()

    zenml, ours = _exe("zenml"), _exe("zenml-gcp-gitops")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        home = Path(tmp)
        on, off = _env(home, disabled=False), _env(home, disabled=True)
        # warm the page cache and ZenML's config dir once per side
        _time([zenml, "--help"], on, home)
        _time([zenml, "--help"], off, home)

        with_plugin: list[float] = []
        without: list[float] = []
        for i in range(args.rounds):
            pairs = [(on, with_plugin), (off, without)]
            for env, sink in pairs if i % 2 == 0 else reversed(pairs):
                sink.append(_time([zenml, "--help"], env, home))

        ours_times = [_time([ours, "--help"], on, home) for _ in range(max(5, args.rounds // 2))]
        hook_ms = min(
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", _HOOK_TIMER],
                    env=on,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(5)
        )

    med_on, med_off = statistics.median(with_plugin), statistics.median(without)
    ratio = med_on / med_off
    result = {
        "rounds": args.rounds,
        "zenml_help_with_plugin_s": round(med_on, 4),
        "zenml_help_without_plugin_s": round(med_off, 4),
        "ratio": round(ratio, 4),
        "ratio_target": TARGET_RATIO,
        "zenml_gcp_gitops_help_s": round(statistics.median(ours_times), 4),
        "hook_ms": round(hook_ms, 3),
        "hook_budget_ms": HOOK_BUDGET_MS,
        "stdev_with_s": round(statistics.pstdev(with_plugin), 4),
        "stdev_without_s": round(statistics.pstdev(without), 4),
    }
    ok = ratio <= TARGET_RATIO and hook_ms <= HOOK_BUDGET_MS
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"zenml --help, median of {args.rounds} alternating runs each:")
        print(f"  with plugin     {med_on:.3f} s  (stdev {result['stdev_with_s']:.3f})")
        print(f"  without plugin  {med_off:.3f} s  (stdev {result['stdev_without_s']:.3f})")
        print(f"  ratio           {ratio:.3f}  (target <= {TARGET_RATIO})")
        print(f"zenml-gcp-gitops --help  {result['zenml_gcp_gitops_help_s']:.3f} s (median)")
        print(
            f"hook (entry-point load + install, best of 5)  {hook_ms:.2f} ms "
            f"(budget {HOOK_BUDGET_MS:.0f} ms)"
        )
        print("OK" if ok else "TARGET MISSED")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
