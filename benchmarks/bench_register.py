"""Time of `register` + `ci` against a real local ZenML server (uvicorn + SQLite, auth on).

One server is started (not timed). Each round uses a fresh deployment name, so "full" is a
first-time registration: connect (health, version, login), the secret, the connector, five
components, the stack, then the CI service account and its API key. "no-op" re-runs both on
the same name (reads only, nothing created). Measured two ways:

* engine: in one process, as `deploy` runs the phases (imports already warm);
* cli: `zenml-gcp-gitops register` then `ci-account create` as fresh processes, as a user or
  CI job runs them (includes importing zenml).

Targets (engine medians): full <= 5 s, no-op <= 3 s.

`--faults` also times how long a run takes to fail (and to say what it left) when its server
dies right after committing a component (tests/support/zenml_dying_app.py): target <= 30 s,
bounded tries rather than minutes of back-off. Each round starts a dying server (not timed).

    python benchmarks/bench_register.py [--rounds 5] [--json] [--check] [--no-cli] [--faults]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_FULL_S = 5.0
TARGET_NOOP_S = 3.0
TARGET_DYING_S = 30.0


def _dying_round(workdir: Path) -> float:
    from tests.support.register_fixtures import admin_store, make_cfg, make_outputs
    from tests.support.zenml_server import start_zenml_server
    from zenml_gcp_gitops.errors import PhaseError
    from zenml_gcp_gitops.zenml.apply import apply_stack_spec
    from zenml_gcp_gitops.zenml.stack_spec import gcp_stack_spec

    dying = start_zenml_server(
        workdir=workdir,
        app="tests.support.zenml_dying_app:app",
        extra_env={"ZGG_DIE_ON": "POST /components"},
    )
    try:
        cfg = make_cfg("bench-dying")
        spec = gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p")
        store = admin_store(dying)
        t = time.perf_counter()
        try:
            apply_stack_spec(store, spec)
        except PhaseError:
            return time.perf_counter() - t
        raise SystemExit("the dying server did not die: nothing measured")
    finally:
        dying.stop()


def _engine_round(server: Any, name: str) -> tuple[float, float, dict[str, int]]:
    from tests.fakes.gcp_secrets import FakeSecretManager
    from tests.support.register_fixtures import make_cfg, make_outputs
    from zenml_gcp_gitops.zenml.apply import apply_stack_spec, count_objects
    from zenml_gcp_gitops.zenml.ci_account import ensure_ci_account
    from zenml_gcp_gitops.zenml.session import Credentials, connect
    from zenml_gcp_gitops.zenml.stack_spec import gcp_stack_spec

    cfg = make_cfg(name)
    sm = FakeSecretManager()
    creds = Credentials(username=server.username, password=server.password)

    def once() -> float:
        t = time.perf_counter()
        store = connect(server.url, creds, timeout=30)
        spec = gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p")
        apply_stack_spec(store, spec)
        ensure_ci_account(store, cfg, secrets=sm)
        return time.perf_counter() - t

    full = once()
    store = connect(server.url, creds, timeout=30)
    before = count_objects(store)
    noop = once()
    after = count_objects(store)
    assert before == after, f"no-op run created objects: {before} -> {after}"
    return full, noop, after


def _cli_round(server: Any, name: str, workdir: Path) -> tuple[float, float]:
    from tests.support.register_fixtures import make_cfg, write_outputs

    outputs = write_outputs(workdir / f"{name}.json", make_cfg(name))
    env = server.client_env(
        ZENML_STORE_USERNAME=server.username,
        ZENML_STORE_PASSWORD=server.password,
        MLFLOW_TRACKING_USERNAME="u",
        MLFLOW_TRACKING_PASSWORD="p",
        ZENML_GCP_GITOPS_HOME=str(workdir / "home"),
    )
    exe = str(Path(sys.executable).with_name("zenml-gcp-gitops"))
    reg = [exe, "register", "--outputs", str(outputs), "--zenml-url", server.url, "-o", "json"]
    # --show-key: no Secret Manager in a benchmark; the key is discarded with the output
    ci = [exe, "ci-account", "create", "--outputs", str(outputs), "--zenml-url", server.url,
          "--show-key", "-o", "json"]  # fmt: skip

    def once() -> float:
        t = time.perf_counter()
        for cmd in (reg, ci):
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd[:3])} failed: {r.stderr.strip()[-500:]}")
        return time.perf_counter() - t

    return once(), once()


def _stats(xs: list[float]) -> dict[str, float]:
    return {
        "min": round(min(xs), 3),
        "median": round(statistics.median(xs), 3),
        "max": round(max(xs), 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    ap.add_argument("--no-cli", action="store_true", help="skip the fresh-process CLI timing")
    ap.add_argument("--faults", action="store_true", help="also time a run whose server dies")
    args = ap.parse_args()

    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_CONFIG_PATH", tempfile.mkdtemp(prefix="zgg-bench-zenml-"))
    from tests.support.zenml_server import start_zenml_server

    t0 = time.perf_counter()
    server = start_zenml_server()
    startup = time.perf_counter() - t0
    try:
        full: list[float] = []
        noop: list[float] = []
        cli_full: list[float] = []
        cli_noop: list[float] = []
        counts: dict[str, int] = {}
        with tempfile.TemporaryDirectory(prefix="zgg-bench-") as tmp:
            for i in range(args.rounds):
                f, n, counts = _engine_round(server, f"bench-e{i}")
                full.append(f)
                noop.append(n)
                if not args.no_cli:
                    cf, cn = _cli_round(server, f"bench-c{i}", Path(tmp))
                    cli_full.append(cf)
                    cli_noop.append(cn)
    finally:
        server.stop()
    dying: list[float] = []
    if args.faults:
        with tempfile.TemporaryDirectory(prefix="zgg-bench-dying-") as tmp:
            dying = [_dying_round(Path(tmp) / str(i)) for i in range(args.rounds)]

    report: dict[str, Any] = {
        "server_startup_s": round(startup, 2),
        "rounds": args.rounds,
        "engine": {"full": _stats(full), "noop": _stats(noop)},
        "targets_s": {"full": TARGET_FULL_S, "noop": TARGET_NOOP_S},
        "objects_after": counts,
    }
    if cli_full:
        report["cli"] = {"full": _stats(cli_full), "noop": _stats(cli_noop)}
    if dying:
        report["dying_server"] = {**_stats(dying), "target_s": TARGET_DYING_S}
    ok = (
        report["engine"]["full"]["median"] <= TARGET_FULL_S
        and report["engine"]["noop"]["median"] <= TARGET_NOOP_S
        and (not dying or report["dying_server"]["median"] <= TARGET_DYING_S)
    )
    report["ok"] = ok
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"server startup (not timed below): {report['server_startup_s']} s")
        for kind in ("engine", "cli"):
            if kind not in report:
                continue
            for what in ("full", "noop"):
                s = report[kind][what]
                target = f" (target <= {report['targets_s'][what]} s)" if kind == "engine" else ""
                print(
                    f"{kind:6} {what:5} min {s['min']:.2f}  median {s['median']:.2f}  "
                    f"max {s['max']:.2f} s{target}"
                )
        if dying:
            d = report["dying_server"]
            print(
                f"dying server: failed after min {d['min']:.2f}  median {d['median']:.2f}  "
                f"max {d['max']:.2f} s (target <= {TARGET_DYING_S:.0f} s)"
            )
        print("OK" if ok else "TARGET MISSED")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
