"""How fast Ctrl-C answers: SIGINT to process exit (code 130), in real processes.

    python benchmarks/bench_interrupt.py [--rounds 5] [--json] [--check]

Each case starts the CLI in its own session (SIGINT at its default), waits for a state (not a
time), sends SIGINT and times until the process has exited:
  plan      `plan --offline --config FIFO`, blocked reading the FIFO (nothing to clean up)
  local-up  `local up` with stand-in services (tests/support/local_up_driver.py), while it
            registers and MLflow is still starting: it stops the three services it started
  deploy    `deploy` through the fake Pulumi engine, hanging at a resource: the CLI forwards
            the signal, the engine stops, the phase is recorded as interrupted
  register  `register` against a real ZenML server that holds the answer to a component it
            committed (tests/support/zenml_dying_app.py): the run undoes its writes, that
            component included (server start-up per round, not timed)
Target: every median under 1 s (`--check` exits 1 otherwise). On a busy machine the numbers
grow with the load average, which is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import signals  # noqa: E402

TARGET_S = 1.0
PY = sys.executable


def _interrupt(args: list[str], ready: Callable[[], bool], env: dict[str, str]) -> float:
    proc = signals.start(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        signals.wait_for(ready, proc, "the state to interrupt in", limit=300)
        t = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        took = time.perf_counter() - t
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        signals.stop(proc)
    if proc.returncode != 130:
        raise SystemExit(f"{args[:4]} exited {proc.returncode}, not 130:\n{err[-2000:]}")
    return took


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", **extra}


def case_plan(tmp: Path) -> float:
    fifo = tmp / "cfg"
    os.mkfifo(fifo)
    held: list[int] = []

    def reading() -> bool:
        fd = signals.fifo_writer(fifo)
        if fd is not None:
            held.append(fd)
        return bool(held)

    try:
        cli = [PY, "-c", "from zenml_gcp_gitops.cli import main; main()"]
        return _interrupt([*cli, "plan", "--offline", "--config", str(fifo)], reading, _env())
    finally:
        for fd in held:
            os.close(fd)


def case_local_up(tmp: Path) -> float:
    args = [PY, "-m", "tests.support.local_up_driver", str(tmp), "--",
            "local", "up", "--name", "bench", "--dir", str(tmp / "d"), "--no-registry"]  # fmt: skip
    return _interrupt(args, (tmp / "registering").exists, _env())


def case_deploy(tmp: Path) -> float:
    from tests.fakes.pulumi import make_fake_pulumi

    root = make_fake_pulumi(tmp / "pulumi")
    state = tmp / "state"
    state.mkdir()
    env = _env(
        FAKE_PULUMI_ROOT=str(root), FAKE_PULUMI_HANG_RESOURCE="mysql",
        FAKE_PULUMI_HANG_MARKER=str(tmp / "hanging"), CI="1",
        ZENML_GCP_GITOPS_HOME=str(tmp / "home"), PULUMI_HOME=str(tmp / "pulumi-home"),
        PULUMI_CONFIG_PASSPHRASE="bench-passphrase",
    )  # fmt: skip
    args = [PY, str(ROOT / "tests/fakes/pulumi/run_cli.py"), "deploy", "--project",
            "bench-project-1", "--region", "europe-west4", "--state", f"file://{state}",
            "--secrets-provider", "passphrase", "--yes"]  # fmt: skip
    return _interrupt(args, (tmp / "hanging").exists, env)


def case_register(tmp: Path) -> float:
    from tests.support.register_fixtures import make_cfg, write_outputs
    from tests.support.zenml_server import start_zenml_server

    marker = tmp / "hanging"
    srv = start_zenml_server(
        workdir=tmp / "server",
        app="tests.support.zenml_dying_app:app",
        extra_env={"ZGG_HANG_ON": "POST /components", "ZGG_HANG_MARKER": str(marker)},
    )
    try:
        outputs = write_outputs(tmp / "outputs.json", make_cfg("bench-int"))
        env = srv.client_env(
            ZENML_STORE_USERNAME=srv.username, ZENML_STORE_PASSWORD=srv.password,
            MLFLOW_TRACKING_USERNAME="ml", MLFLOW_TRACKING_PASSWORD="ml-Pw",
            ZENML_GCP_GITOPS_HOME=str(tmp / "home"),
            PYTHONPATH=f"{ROOT / 'src'}:{ROOT}",
        )  # fmt: skip
        cli = [PY, "-c", "from zenml_gcp_gitops.cli import main; main()"]
        args = [*cli, "register", "--outputs", str(outputs), "--zenml-url", srv.url]
        return _interrupt(args, marker.exists, env)
    finally:
        srv.stop()


CASES: dict[str, Callable[[Path], float]] = {
    "plan": case_plan,
    "local-up": case_local_up,
    "deploy": case_deploy,
    "register": case_register,
}


def measure(rounds: int, only: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"rounds": rounds, "target_s": TARGET_S}
    for name in only:
        samples = []
        for _ in range(rounds):
            with tempfile.TemporaryDirectory(prefix=f"bench-int-{name}-") as tmp:
                samples.append(CASES[name](Path(tmp)))
        out[name] = {
            "median_s": round(statistics.median(samples), 3),
            "min_s": round(min(samples), 3),
            "max_s": round(max(samples), 3),
        }
    out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="[all]")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--check", action="store_true", help="exit 1 when a median misses 1 s")
    args = ap.parse_args()
    r = measure(args.rounds, args.case or list(CASES))
    ok = all(r[c]["median_s"] <= TARGET_S for c in CASES if c in r)
    if args.json:
        print(json.dumps({**r, "ok": ok}, indent=2))
    else:
        for c in CASES:
            if c in r:
                m = r[c]
                print(
                    f"{c:9} SIGINT -> exit 130: median {m['median_s']:.3f} s "
                    f"(min {m['min_s']:.3f}, max {m['max_s']:.3f}, {args.rounds} runs)"
                )
        print(f"load avg {r['load_avg']}; target: median <= {TARGET_S:.0f} s")
        print("OK" if ok else "TARGET MISSED")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
