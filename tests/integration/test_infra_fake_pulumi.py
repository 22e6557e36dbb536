"""The deploy engine end to end through the REAL Pulumi Automation API and the REAL inline
program, with a fake `pulumi` CLI (tests/fakes/pulumi) standing in for the engine binary."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import require
from tests.fakes.fake_phases import FakePhase, fake_later_phases
from tests.fakes.google_clients import FakeGcp
from tests.fakes.pulumi import (
    hold_lock,
    lock_dir,
    read_calls,
    read_state,
    stack_file,
    tiny_program,
)
from tests.support import signals
from tests.support.fake_engine import fake_cfg
from zenml_gcp_gitops.config import DeploymentConfig
from zenml_gcp_gitops.engine import Engine
from zenml_gcp_gitops.errors import Interrupted, PhaseError, UserError
from zenml_gcp_gitops.infra.stack import read_secret_output
from zenml_gcp_gitops.outputs import InfraOutputs
from zenml_gcp_gitops.phases.infra import InfraPhase
from zenml_gcp_gitops.phases.preflight import PreflightPhase
from zenml_gcp_gitops.progress import PlainReporter
from zenml_gcp_gitops.run_options import RunOptions, Services
from zenml_gcp_gitops.state.lease import LeaseHeld
from zenml_gcp_gitops.state.record import local_record_path

PROJECT = "zenml-gcp-gitops"
SECRET = tiny_program.SECRET_KEY_VALUE
REPO = Path(__file__).resolve().parents[2]


@dataclass
class World:
    tmp: Path
    root: Path
    cfg: DeploymentConfig
    gcp: FakeGcp
    journal: list[str] = field(default_factory=list)
    later: list[FakePhase] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.tmp / "state"

    @property
    def calls_file(self) -> Path:
        return self.tmp / "calls.jsonl"

    def options(self, **extra: Any) -> RunOptions:
        return RunOptions(pulumi_root=str(self.root), yes=True, **extra)

    def services(self) -> Services:
        return Services(gcp_api=self.gcp.api(self.cfg), program=tiny_program.build)

    def engine(self, stream: Any = None, **extra: Any) -> Engine:
        self.later = fake_later_phases(self.journal)
        return Engine(
            self.cfg,
            phases=[PreflightPhase(), InfraPhase(), *self.later],
            options=self.options(**extra),
            services=self.services(),
            reporter=PlainReporter(stream=stream, verbose=False),
        )

    def state(self) -> dict[str, Any]:
        return read_state(self.state_dir, PROJECT, self.cfg.names.pulumi_stack)

    def ops(self) -> list[str]:
        """The pulumi engine operations run so far (up/preview/refresh/destroy)."""
        return [
            c[1]
            for c in read_calls(self.calls_file)
            if len(c) > 1 and c[1] in ("up", "preview", "refresh", "destroy")
        ]

    def record(self) -> dict[str, Any]:
        return json.loads(local_record_path(self.cfg).read_text())


@pytest.fixture
def world(tmp_path: Path, fake_pulumi_env: Path, fake_pulumi_root: Path) -> World:
    cfg = fake_cfg(tmp_path)
    return World(tmp_path, fake_pulumi_root, cfg, FakeGcp(project=cfg.project))


def test_first_deploy_then_rerun_is_a_noop(world: World) -> None:
    summary = world.engine().deploy()
    assert [p["status"] for p in summary["phases"].values()] == ["succeeded"] * 5
    state = world.state()
    types = sorted(r["type"] for r in state["resources"])
    assert "gcp:container/cluster:Cluster" in types and len(types) == tiny_program.resource_count(
        world.cfg
    )
    rec = world.record()
    infra = rec["phases"]["infra"]["outputs"]
    assert infra["changes"] == {"create": tiny_program.resource_count(world.cfg)}
    assert infra["secret_outputs"] == ["pipelines_sa_key"]
    assert "pipelines_sa_key" not in infra["outputs"]
    # outputs reach the later phases as the typed contract
    gitops = world.later[0]
    assert gitops.seen_infra is not None
    assert gitops.seen_infra["cluster_name"] == world.cfg.names.cluster
    assert gitops.seen_infra["zenml_host"].startswith("zenml.") and gitops.seen_infra[
        "zenml_host"
    ].endswith(".nip.io")
    assert gitops.seen_recorded is not None and "preflight" in gitops.seen_recorded
    # the secret output reaches later phases from the stack, as a SecretStr
    assert gitops.seen_infra["pipelines_sa_key"].get_secret_value() == SECRET
    assert world.ops() == ["up"]

    ids_before = {r["urn"]: r["id"] for r in state["resources"]}
    world.engine().deploy()
    rec = world.record()
    assert rec["phases"]["infra"]["outputs"]["changes"] == {
        "same": tiny_program.resource_count(world.cfg)
    }
    # an existing stack is refreshed, then previewed for stateful replacements
    assert world.ops() == ["up", "refresh", "preview", "up"]
    assert {r["urn"]: r["id"] for r in world.state()["resources"]} == ids_before
    assert world.journal == ["run:gitops", "run:register", "run:ci"] * 2


def test_a_resource_deleted_behind_the_state_s_back_is_recreated(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh before `up` finds what was deleted outside Pulumi (here the Cloud SQL
    instance) and drops it from the state, so `up` creates it again instead of trusting it."""
    world.engine().deploy()
    drift = world.tmp / "drift.json"
    drift.write_text(json.dumps({"deleted": ["mysql"]}))
    monkeypatch.setenv("FAKE_PULUMI_DRIFT", str(drift))
    world.engine().deploy()
    changes = world.record()["phases"]["infra"]["outputs"]["changes"]
    assert changes.get("create") == 1, changes
    assert "mysql" in {r["urn"].rsplit("::", 1)[-1] for r in world.state()["resources"]}


def test_failure_midway_then_resume(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_PULUMI_FAIL_RESOURCE", "mysql")
    with pytest.raises(PhaseError) as exc:
        world.engine().deploy()
    msg = str(exc.value)
    assert (
        "DatabaseInstance mysql: create failed: Error creating mysql: googleapi: Error 403: Quota 'CPUS'"
        in msg
    )
    assert "quota" in (exc.value.hint or "").lower()
    log = Path(msg.split("full log: ")[1].split(";")[0].rstrip(")").strip())
    assert log.exists() and "mysql" in log.read_text()
    rec = world.record()
    assert rec["phases"]["infra"]["status"] == "failed"
    assert "Quota" in rec["phases"]["infra"]["error"]
    assert "gitops" not in rec["phases"] and world.journal == []
    created = {r["urn"].rsplit("::", 1)[-1] for r in world.state()["resources"]}
    assert "gke" in created and "mysql" not in created  # what finished is in the state

    monkeypatch.delenv("FAKE_PULUMI_FAIL_RESOURCE")
    world.engine().deploy()
    rec = world.record()
    assert rec["phases"]["infra"]["status"] == "succeeded"
    assert rec["phases"]["infra"]["outputs"]["changes"].get("create") == 1  # only mysql was left
    assert world.journal == ["run:gitops", "run:register", "run:ci"]


def test_later_phase_failure_resumes_there_without_touching_infra(world: World) -> None:
    eng = world.engine()
    eng.phases[3] = FakePhase("register", world.journal, fail_times=1)
    with pytest.raises(PhaseError, match="register failed: register exploded"):
        eng.deploy()
    assert world.record()["phases"]["register"]["status"] == "failed"
    ops_before = world.ops()
    world.engine().deploy()
    assert world.ops() == ops_before  # infra skipped: no refresh/up on resume
    assert world.journal == ["run:gitops", "run:register", "run:register", "run:ci"]
    # --from-phase infra re-runs it on demand
    world.engine().deploy(from_phase="infra", stop_after="infra")
    assert world.ops()[-3:] == ["refresh", "preview", "up"]


def test_concurrent_deploy_names_the_lock_and_unlock_clears_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml_gcp_gitops.cli import cli
    from zenml_gcp_gitops.cli import deploy as deploy_cli

    world.engine().deploy(stop_after="infra")
    held = hold_lock(world.state_dir, PROJECT, world.cfg.names.pulumi_stack, pid=777)
    with pytest.raises(PhaseError) as exc:
        world.engine().deploy(stop_after="infra")
    # no other deploy holds the lease: the lock was left by a run that died, and it says so
    assert "died and left the Pulumi state lock" in exc.value.message
    assert "pid 777" in exc.value.message and "another deploy" not in exc.value.message
    assert "zenml-gcp-gitops unlock" in (exc.value.hint or "")
    assert world.record()["phases"]["infra"]["status"] == "succeeded"  # not the loser's to record

    monkeypatch.setattr(deploy_cli, "_make_engine", lambda cfg, options=None: world.engine())
    args = [
        "--project",
        "my-project-1",
        "--region",
        "europe-west4",
        "--state",
        f"file://{world.state_dir}",
    ]
    res = CliRunner().invoke(cli, ["unlock", *args])
    assert res.exit_code == 1 and "needs confirmation" in res.output and held.exists()
    res = CliRunner().invoke(cli, ["unlock", *args, "--yes"])
    assert res.exit_code == 0, res.output
    assert "pid 777" in res.output and "Removed 1 lock" in res.output
    assert not held.exists()
    world.engine().deploy(stop_after="infra")  # works again


def test_dry_run_changes_nothing(world: World) -> None:
    summary = world.engine().deploy(dry_run=True)
    assert (
        summary["preview"]["create"] == tiny_program.resource_count(world.cfg)
        and summary["preview"]["same"] == 0
    )
    assert not stack_file(world.state_dir, PROJECT, "zenml").exists()
    assert not local_record_path(world.cfg).exists()
    assert world.journal == [] and world.ops() == ["preview"]

    world.engine().deploy(stop_after="infra")
    before = stack_file(world.state_dir, PROJECT, "zenml").read_bytes()
    record_before = local_record_path(world.cfg).read_bytes()
    summary = world.engine().deploy(dry_run=True)
    assert summary["preview"] == {
        "create": 0,
        "update": 0,
        "replace": 0,
        "delete": 0,
        "same": tiny_program.resource_count(world.cfg),
        "stateful": [],
    }
    assert stack_file(world.state_dir, PROJECT, "zenml").read_bytes() == before
    assert local_record_path(world.cfg).read_bytes() == record_before


def _cli(world: World, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[str]]:
    from zenml_gcp_gitops.cli import cli
    from zenml_gcp_gitops.cli import deploy as deploy_cli

    def make(cfg: DeploymentConfig, options: RunOptions | None = None) -> Engine:
        eng = world.engine()
        options = options or RunOptions()
        eng.options = dataclasses.replace(
            options, pulumi_root=eng.options.pulumi_root, yes=options.yes or eng.options.yes
        )
        eng.reporter = PlainReporter(verbose=options.verbose)
        return eng

    monkeypatch.setattr(deploy_cli, "_make_engine", make)
    args = [
        "--project",
        "my-project-1",
        "--region",
        "europe-west4",
        "--state",
        f"file://{world.state_dir}",
        "--secrets-provider",
        "passphrase",
    ]
    return cli, args


def test_secrets_never_reach_stdout_json_record_or_logs(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, args = _cli(world, monkeypatch)
    runner = CliRunner()
    res = runner.invoke(cli, ["deploy", *args, "--output", "json", "-v"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] is True and doc["outputs"]["cluster_name"] == "zenml-gke"
    assert SECRET not in res.output
    assert "[infra]   Updating (zenml)" in res.stderr  # -v streams the engine log
    # a fake phase returned admin_password: the record masks it
    rec_text = local_record_path(world.cfg).read_text()
    assert SECRET not in rec_text and "hunter2" not in rec_text
    for log in (world.tmp / "home" / "logs").glob("*.log"):
        assert SECRET not in log.read_text()

    res = runner.invoke(cli, ["outputs", *args, "--output", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["pipelines_sa_key"] == "[secret]" and SECRET not in res.output
    res = runner.invoke(cli, ["outputs", *args, "--output", "json", "--show-secrets"])
    assert json.loads(res.stdout)["pipelines_sa_key"] == SECRET
    # later phases fetch it from the stack, never from the record
    assert (
        read_secret_output(world.cfg, "pipelines_sa_key", world.options(), world.services())
        == SECRET
    )

    res = runner.invoke(cli, ["status", *args, "--output", "json"])
    assert res.exit_code == 0, res.output
    st = json.loads(res.stdout)
    assert st["phases"]["infra"]["live"]["resources"] == tiny_program.resource_count(world.cfg)
    assert st["phases"]["gitops"]["live"] == {"reachable": True, "phase": "gitops"}
    assert st["infra"]["cluster_name"] == "zenml-gke"
    assert SECRET not in res.output


def test_destroy_needs_force_for_protected_resources_and_runs_in_reverse(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.engine().deploy()
    world.journal.clear()
    with pytest.raises(UserError) as exc:
        world.engine().destroy()
    assert "protected against deletion" in exc.value.message
    assert (
        "Cluster zenml-gke" in exc.value.message
        and "DatabaseInstance zenml-mysql" in exc.value.message
    )
    assert "--force" in (exc.value.hint or "")
    assert world.journal == []  # refused before tearing anything down
    assert len(world.state()["resources"]) == tiny_program.resource_count(world.cfg)

    ops_before = len(world.ops())
    summary = world.engine(force=True).destroy()
    assert world.journal == ["destroy:ci", "destroy:register", "destroy:gitops"]
    assert world.ops()[ops_before:] == ["up", "destroy"]  # one `up` lifts protection, then destroy
    assert world.state()["resources"] == []
    assert [v["status"] for v in summary["phases"].values()] == ["succeeded"] * 4
    # resumable: a second destroy skips what is done
    summary = world.engine(force=True).destroy()
    assert {v["status"] for v in summary["phases"].values()} == {"skipped"}
    # --purge-state removes the stack itself and the record (a file backend has no bucket/key)
    summary = world.engine(force=True, purge_state=True).destroy()
    assert summary["record"] == "deleted" and summary["purged"]["infra"] == {"stack": "removed"}
    assert not local_record_path(world.cfg).exists()
    assert not stack_file(world.state_dir, PROJECT, "zenml").exists()


def test_destroy_resumes_after_a_failed_teardown(world: World) -> None:
    world.engine().deploy()
    world.journal.clear()
    eng = world.engine(force=True)
    eng.phases[3] = FakePhase("register", world.journal)
    eng.phases[3].destroy = lambda ctx: (_ for _ in ()).throw(UserError("zenml unreachable"))  # type: ignore[method-assign]
    with pytest.raises(PhaseError, match="destroying register failed"):
        eng.destroy()
    assert world.journal == ["destroy:ci"]
    world.engine(force=True).destroy()
    assert world.journal == ["destroy:ci", "destroy:register", "destroy:gitops"]
    assert world.state()["resources"] == []


def test_ctrl_c_is_forwarded_recorded_and_resumable(world: World, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FAKE_PULUMI_ROOT": str(world.root),
        "FAKE_PULUMI_HANG_RESOURCE": "mysql",
        "FAKE_PULUMI_HANG_MARKER": str(tmp_path / "hanging"),
        "FAKE_PULUMI_SIGNAL_LOG": str(tmp_path / "signals"),
        "CI": "1",
    }
    args = [
        sys.executable,
        str(REPO / "tests/fakes/pulumi/run_cli.py"),
        "deploy",
        "--project",
        "my-project-1",
        "--region",
        "europe-west4",
        "--state",
        f"file://{world.state_dir}",
        "--secrets-provider",
        "passphrase",
        "--yes",
    ]
    # its own session: no terminal delivers a Ctrl-C to the engine, so the CLI must forward it
    proc = signals.start(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        signals.wait_for((tmp_path / "hanging").exists, proc, "the fake engine reaches mysql")
        # a second deploy while the first runs: the real concurrent case, refused by the
        # deploy lease before it touches anything, naming the holder
        before = world.record()
        with pytest.raises(LeaseHeld) as exc:
            world.engine().deploy(stop_after="infra")
        assert "another deploy or destroy of 'zenml' is running" in exc.value.message
        assert f"pid {proc.pid}" in exc.value.message and "deploy" in exc.value.message
        assert world.record() == before  # the loser wrote nothing
        assert "run:" not in " ".join(world.journal)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    finally:
        signals.stop(proc)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "re-run" in err
    assert (tmp_path / "signals").read_text() == "SIGINT\n"  # forwarded exactly once
    rec = world.record()
    assert rec["phases"]["infra"]["status"] == "interrupted"
    assert list(lock_dir(world.state_dir, PROJECT, "zenml").glob("*.json")) == []  # lock released
    done = {r["urn"].rsplit("::", 1)[-1] for r in world.state()["resources"]}
    assert "mysql" not in done and len(done) >= 1

    env.pop("FAKE_PULUMI_HANG_RESOURCE")
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert world.record()["phases"]["infra"]["status"] == "succeeded"
    assert len(world.state()["resources"]) == tiny_program.resource_count(world.cfg)


def test_real_program_deploys_through_the_fake_engine(world: World) -> None:
    """The packaged program (not the tiny one) runs inline and satisfies the outputs contract."""
    eng = world.engine()
    eng.services.program = None  # the packaged program
    eng.deploy(stop_after="infra")
    rec = world.record()["phases"]["infra"]["outputs"]
    outputs = InfraOutputs.from_mapping(rec["outputs"])
    assert outputs.cluster_name == world.cfg.names.cluster
    assert rec["resource_count"] > 50
    eng = world.engine()
    eng.services.program = None  # the packaged program
    eng.deploy(from_phase="infra", stop_after="infra")
    changes = world.record()["phases"]["infra"]["outputs"]["changes"]
    assert set(changes) == {"same"}, changes


def test_the_program_sends_byte_identical_inputs_on_a_rerun(world: World, tmp_path: Path) -> None:
    """Idempotency is the program's: the same config, run again in a fresh process (another
    hash seed), sends every resource exactly the same inputs. The engine's "same inputs =>
    no change" then makes the rerun a no-op; this proves the inputs really are the same."""
    args = [
        sys.executable,
        str(REPO / "tests/fakes/pulumi/run_cli.py"),
        "deploy",
        "--project",
        world.cfg.project,
        "--region",
        "europe-west4",
        "--state",
        f"file://{world.state_dir}",
        "--secrets-provider",
        "passphrase",
        "--stop-after",
        "infra",
        "--yes",
    ]
    runs: list[list[str]] = []
    for seed in ("1", "2"):
        log = tmp_path / f"inputs-{seed}.jsonl"
        env = {
            **os.environ,
            "FAKE_PULUMI_ROOT": str(world.root),
            "FAKE_PULUMI_REAL_PROGRAM": "1",
            "FAKE_PULUMI_INPUTS_LOG": str(log),
            "PYTHONHASHSEED": seed,
            "CI": "1",
        }
        res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        runs.append(sorted(log.read_text().splitlines()))  # registration order may vary
    first, second = runs
    assert len(first) > 50
    assert first == second, next((a, b) for a, b in zip(first, second, strict=False) if a != b)


def test_interrupted_later_phase_is_recorded(world: World) -> None:
    eng = world.engine()
    eng.phases[2] = FakePhase("gitops", world.journal, interrupt=True)
    with pytest.raises(Interrupted):
        eng.deploy()
    assert world.record()["phases"]["gitops"]["status"] == "interrupted"


def test_older_cli_events_through_a_log_file(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLIs up to 3.205 get `--event-log <file>` instead of a gRPC stream; progress still works."""
    import io

    monkeypatch.setenv("FAKE_PULUMI_VERSION", "3.200.0")
    out = io.StringIO()
    world.engine(stream=out).deploy(stop_after="infra")
    event_logs = [
        c[c.index("--event-log") + 1] for c in read_calls(world.calls_file) if "--event-log" in c
    ]
    assert event_logs and not event_logs[0].startswith("tcp://")
    assert world.record()["phases"]["infra"]["outputs"]["changes"] == {
        "create": tiny_program.resource_count(world.cfg)
    }
    n = tiny_program.resource_count(world.cfg)
    assert f"{n} resources ({n} create)" in out.getvalue()


def test_ctrl_c_on_a_terminal_is_not_forwarded_twice(world: World, tmp_path: Path) -> None:
    """On a terminal, Ctrl-C reaches the whole foreground group: the CLI must not send the
    engine a second SIGINT (a second one makes the real Pulumi stop without cleaning up)."""
    require(
        None
        if shutil.which("script")
        else "`script` for a pseudo-terminal (apt-get install bsdutils)"
    )
    marker, signal_log = tmp_path / "hanging", tmp_path / "signals"
    env = {
        **{k: v for k, v in os.environ.items() if k != "CI"},
        "FAKE_PULUMI_ROOT": str(world.root),
        "FAKE_PULUMI_HANG_RESOURCE": "mysql",
        "FAKE_PULUMI_HANG_MARKER": str(marker),
        "FAKE_PULUMI_SIGNAL_LOG": str(signal_log),
    }
    cmd = " ".join(
        [
            sys.executable,
            str(REPO / "tests/fakes/pulumi/run_cli.py"),
            "deploy",
            "--project",
            "my-project-1",
            "--region",
            "europe-west4",
            "--state",
            f"file://{world.state_dir}",
            "--secrets-provider",
            "passphrase",
            "--yes",
        ]
    )
    # `script` gives the CLI a terminal of its own (a new session), whatever pytest runs under;
    # SIGINT at its default, or an inherited "ignore" would reach the CLI through the shell
    proc = signals.start(
        ["script", "-qec", cmd, "/dev/null"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        signals.wait_for(marker.exists, proc, "the fake engine reaches mysql")
        assert proc.stdin is not None
        proc.stdin.write(b"\x03")  # Ctrl-C typed on the terminal
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=120)
    finally:
        signals.stop(proc)
    assert proc.returncode == 130, out.decode(errors="replace")[-2000:]
    assert signal_log.read_text() == "SIGINT\n"
    assert world.record()["phases"]["infra"]["status"] == "interrupted"


def test_deploy_destroy_deploy_adopts_the_key_ring_and_key_gcp_kept(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KMS key rings and keys are never deleted by GCP: a second deploy of the same name
    must import them, or `up` fails with 409 "already exists"."""
    cloud = world.tmp / "cloud.json"
    monkeypatch.setenv("FAKE_PULUMI_CLOUD", str(cloud))
    eng = world.engine()
    eng.services.program = None  # the packaged program: it owns the key ring and key
    eng.deploy(stop_after="infra")
    kept = json.loads(cloud.read_text())
    assert kept == [
        "gcp:kms/cryptoKey:CryptoKey::zenml-storage",
        "gcp:kms/keyRing:KeyRing::zenml-keyring",
    ]
    key = [r for r in world.state()["resources"] if r["type"] == "gcp:kms/cryptoKey:CryptoKey"]
    assert key[0]["protect"] and key[0]["retainOnDelete"]

    # a plain destroy never deletes the key: it is protected (and so are the cluster and SQL)
    with pytest.raises(UserError) as exc:
        eng = world.engine()
        eng.services.program = None
        eng.destroy()
    assert "CryptoKey zenml-storage (protect)" in exc.value.message
    eng = world.engine(force=True)
    eng.services.program = None
    eng.destroy()
    assert world.state()["resources"] == []
    assert json.loads(cloud.read_text()) == kept  # GCP still has both

    # what GCP kept, preflight sees (the fake KMS API reports the ring and key as existing)
    ring = world.gcp.kms.key_ring_path(world.cfg.project, world.cfg.region, "zenml-keyring")
    world.gcp.kms.rings.add(ring)
    world.gcp.kms.keys[f"{ring}/cryptoKeys/zenml-storage"] = {"purpose": "ENCRYPT_DECRYPT"}
    eng = world.engine()
    eng.services.program = None
    eng.deploy(stop_after="infra")
    rec = world.record()["phases"]
    assert rec["preflight"]["outputs"]["retained"] == {
        "kms_key_ring": ring,
        "kms_key": f"{ring}/cryptoKeys/zenml-storage",
    }
    changes = rec["infra"]["outputs"]["changes"]
    assert changes.get("import") == 2, changes
    ids = {
        r["type"]: r["id"] for r in world.state()["resources"] if r["type"].startswith("gcp:kms/")
    }
    assert ids["gcp:kms/keyRing:KeyRing"] == ring

    # and without adopting, the same redeploy is what used to fail
    eng = world.engine(force=True)
    eng.services.program = None
    eng.destroy()
    world.gcp.kms.rings.clear()  # preflight blind: nothing to adopt
    eng = world.engine()
    eng.services.program = None
    with pytest.raises(Exception, match="already exists"):
        eng.deploy(stop_after="infra")


def test_redeploy_undeletes_and_adopts_the_soft_deleted_github_pool(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Workload Identity pool deleted by an earlier destroy blocks its ID for 30 days."""
    cloud = world.tmp / "cloud.json"
    monkeypatch.setenv("FAKE_PULUMI_CLOUD", str(cloud))
    world.cfg = world.cfg.model_copy(
        update={"github_repo": "acme/ml", "github_repo_id": 11, "github_owner_id": 22}
    )
    eng = world.engine(force=True)
    eng.services.program = None
    eng.deploy(stop_after="infra")
    pool = [r for r in world.state()["resources"] if r["type"].endswith("WorkloadIdentityPool")]
    assert pool and pool[0]["retainOnDelete"]
    eng = world.engine(force=True)
    eng.services.program = None
    eng.destroy()
    assert "gcp:iam/workloadIdentityPool:WorkloadIdentityPool::github-pool" in json.loads(
        cloud.read_text()
    )

    # GCP shows the pool soft-deleted (as an older release's destroy left it), with the
    # key ring and key still there
    ring = world.gcp.kms.key_ring_path(world.cfg.project, world.cfg.region, "zenml-keyring")
    world.gcp.kms.rings.add(ring)
    world.gcp.kms.keys[f"{ring}/cryptoKeys/zenml-storage"] = {}
    world.gcp.wif_pools["zenml-github"] = "DELETED"
    world.gcp.wif_providers.add("zenml-github/github")
    eng = world.engine()
    eng.services.program = None
    eng.deploy(stop_after="infra")
    assert world.gcp.wif_pools["zenml-github"] == "ACTIVE"
    assert any(
        u.endswith("workloadIdentityPools/zenml-github:undelete") for _, u, _ in world.gcp.requests
    )
    retained = world.record()["phases"]["preflight"]["outputs"]["retained"]
    assert retained["wif_pool"].endswith("/workloadIdentityPools/zenml-github")
    assert retained["wif_provider"].endswith("/zenml-github/providers/github")
    assert world.record()["phases"]["infra"]["outputs"]["changes"].get("import") == 4


def test_after_kill_9_the_rerun_says_the_previous_run_died(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml_gcp_gitops.cli import cli
    from zenml_gcp_gitops.cli import deploy as deploy_cli

    env = {
        **os.environ,
        "FAKE_PULUMI_ROOT": str(world.root),
        "FAKE_PULUMI_HANG_RESOURCE": "mysql",
        "FAKE_PULUMI_HANG_MARKER": str(tmp_path / "hanging"),
        "CI": "1",
    }
    flags = [
        "--project", "my-project-1", "--region", "europe-west4",
        "--state", f"file://{world.state_dir}", "--secrets-provider", "passphrase",
    ]  # fmt: skip
    args = [sys.executable, str(REPO / "tests/fakes/pulumi/run_cli.py"), "deploy", *flags, "--yes"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fake_pid = 0
    try:
        signals.wait_for((tmp_path / "hanging").exists, proc, "the fake engine reaches mysql")
        fake_pid = int((tmp_path / "hanging").read_text())
        proc.kill()  # kill -9: no handler runs, the lease and the Pulumi lock stay behind
        proc.wait(10)
        os.kill(fake_pid, signal.SIGKILL)  # its engine goes too (as after a crash or reboot)
    finally:
        if proc.poll() is None:
            proc.kill()
    stack = world.cfg.names.pulumi_stack
    # a killed `pulumi up` leaves its lock file in a diy backend
    if not list(lock_dir(world.state_dir, PROJECT, stack).glob("*.json")):
        hold_lock(world.state_dir, PROJECT, stack, pid=fake_pid)
    with pytest.raises(PhaseError) as exc:
        world.engine().deploy(stop_after="infra")
    assert "another deploy" not in exc.value.message
    assert "died" in exc.value.message and f"pid {proc.pid}" in exc.value.message
    assert "unlock" in (exc.value.hint or "")
    monkeypatch.setattr(deploy_cli, "_make_engine", lambda cfg, options=None: world.engine())
    res = CliRunner().invoke(cli, ["unlock", *flags[:6], "--yes"])
    assert res.exit_code == 0, res.output
    world.engine().deploy(stop_after="infra")  # resumes
    assert world.record()["phases"]["infra"]["status"] == "succeeded"


def test_first_deploy_reruns_up_while_fresh_grants_propagate(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GCP refuses the CMEK repository, secrets and instance, and the cluster, while the key
    grants and node roles made by the same deploy propagate: `up` is rerun with backoff,
    says so, and the first deploy succeeds."""
    import io

    monkeypatch.setenv("FAKE_PULUMI_IAM_PROPAGATION", "1")
    waits: list[float] = []
    out = io.StringIO()
    eng = world.engine(stream=out)
    eng.services.program = None  # the packaged program: its real grant dependencies
    eng.services.sleep = waits.append
    eng.deploy(stop_after="infra")
    rec = world.record()["phases"]["infra"]
    assert rec["status"] == "succeeded"
    assert waits == [30.0]  # one rerun: the grants of the first attempt hold by then
    text = out.getvalue()
    assert "Permission denied after this deploy made" in text
    assert "Rerunning `up` in 30s (retry 1 of 4)" in text and "Error 403" in text
    assert world.ops() == ["up", "up"]
    # the record counts each resource once, as created
    changes = rec["outputs"]["changes"]
    assert set(changes) == {"create"} and changes["create"] == len(world.state()["resources"])


def test_permission_denied_without_fresh_grants_is_not_retried(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's own missing permission, with no grant made by this deploy, fails at once:
    waiting cannot fix it."""
    monkeypatch.setenv(
        "FAKE_PULUMI_FAIL_RESOURCE", "mysql=googleapi: Error 403: Permission denied, forbidden"
    )
    waits: list[float] = []
    eng = world.engine()
    eng.services.sleep = waits.append
    with pytest.raises(PhaseError, match="Permission denied"):
        eng.deploy(stop_after="infra")
    assert waits == [] and world.ops() == ["up"]


def test_audit_configs_merge_with_the_projects_and_destroy_restores_them(world: World) -> None:
    """The project already logs storage ADMIN_READ and DATA_READ (with an exemption): the
    stack's config keeps both and adds DATA_WRITE; `destroy` writes the earlier one back."""
    prior = [
        {"log_type": "ADMIN_READ", "exempted_members": []},
        {"log_type": "DATA_READ", "exempted_members": ["user:ops@example.com"]},
    ]
    world.gcp.audit_configs = {"storage.googleapis.com": [dict(c) for c in prior]}
    world.cfg = world.cfg.model_copy(
        update={"deletion_protection": False, "force_destroy_buckets": True}
    )
    eng = world.engine()
    eng.services.program = None  # the packaged program
    eng.deploy(stop_after="infra")
    audits = {
        r["inputs"]["service"]: r["inputs"]["auditLogConfigs"]
        for r in world.state()["resources"]
        if r["type"] == "gcp:projects/iAMAuditConfig:IAMAuditConfig"
    }
    storage = {c["logType"]: c.get("exemptedMembers", []) for c in audits["storage.googleapis.com"]}
    assert storage == {
        "ADMIN_READ": [],
        "DATA_READ": ["user:ops@example.com"],
        "DATA_WRITE": [],
    }
    assert {c["logType"] for c in audits["secretmanager.googleapis.com"]} == {
        "DATA_READ",
        "DATA_WRITE",
    }

    # what GCP holds once Pulumi's destroy has deleted the stack's configs
    world.gcp.audit_configs = {}
    eng = world.engine()
    eng.services.program = None
    eng.destroy()
    assert world.gcp.audit_configs == {"storage.googleapis.com": prior}
