"""`restore` against kmock (Argo CD's objects) and the fake SQL Admin API.

The test plays Argo CD and Kubernetes as the real controllers do: while an Application has
auto-sync (with self-heal) its Deployment is held at the chart's replica count, and the root
app holds its children's sync policy; a Deployment's pods come and go with its replicas.
The controllers act after every write of the product and on each of its waits (no thread, no
timing): so a restore that scales before suspending auto-sync, or suspends the children
before the root, always sees its replicas healed back and its servers never stop.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.gcs_emulator import gcs_emulator
from tests.fakes.google_rest import sql_over_http
from tests.fakes.kube_kmock import FakeCluster
from tests.fakes.sqladmin import FakeSqlAdmin
from zenml_gcp_gitops.config import build_config
from zenml_gcp_gitops.errors import UserError
from zenml_gcp_gitops.gitops.kube import Kube
from zenml_gcp_gitops.ops import restore as rs
from zenml_gcp_gitops.ops import writers
from zenml_gcp_gitops.ops.backup import BackupDeps, OpsTarget, run_backup

CFG = build_config(None, {"project": "acme-ml-prod", "region": "europe-west4"})
N = CFG.names
ARGO = N.namespaces["argocd"]
AUTO = {"prune": True, "selfHeal": True}
SERVERS = {  # namespace -> (app, deployment, chart replicas)
    N.namespaces["zenml"]: (N.argocd_apps["zenml_server"], "zenml-server", 2),
    N.namespaces["mlflow"]: (N.argocd_apps["mlflow"], "mlflow", 1),
}


class Controllers:
    """Argo CD's self-heal and the Deployment controller, acting on kmock's objects."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.c = cluster
        self.events: list[str] = []
        self.now = 0.0

    def kube(self) -> Kube:
        """The product's client, with the controllers acting once after each of its writes."""
        return ControlledKube(self)

    def waits(self) -> writers.Waits:
        """The product's waits: each poll lets the controllers act, on a clock of their own."""

        def sleep(seconds: float) -> None:
            self.now += seconds
            self.tick()

        return writers.Waits(timeout=20, poll=1, sleep=sleep, clock=lambda: self.now)

    def seed(self) -> None:
        for app in (N.argocd_root_app, *(a for a, _, _ in SERVERS.values())):
            self.c.put({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": app, "namespace": ARGO},
                "spec": {"project": N.argocd_project, "syncPolicy": {"automated": dict(AUTO)}},
            })  # fmt: skip
        for ns, (_, dep, replicas) in SERVERS.items():
            self.c.put({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": dep, "namespace": ns},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": dep}}},
                "status": {"readyReplicas": 0},
            })  # fmt: skip

    def automated(self, app: str) -> Any:
        obj = self.c.get("Application", app, ARGO) or {}
        return ((obj.get("spec") or {}).get("syncPolicy") or {}).get("automated")

    def tick(self) -> None:
        root_auto = self.automated(N.argocd_root_app)
        for ns, (app, dep, chart_replicas) in SERVERS.items():
            if root_auto and not self.automated(app):
                # the root app re-applies its child Application, auto-sync included
                self.c.patch(
                    "Application", app, ARGO, {"spec": {"syncPolicy": {"automated": dict(AUTO)}}}
                )
                self.events.append(f"root healed {app}")
            d = self.c.get("Deployment", dep, ns)
            if d is None:
                continue
            want = int(d["spec"].get("replicas") or 0)
            if self.automated(app) and want != chart_replicas:
                self.c.patch("Deployment", dep, ns, {"spec": {"replicas": chart_replicas}})
                self.events.append(f"self-heal {dep} -> {chart_replicas}")
                want = chart_replicas
            pods = [p for p in self.c.names("Pod", ns) if p.startswith(dep + "-")]
            for i in range(want, len(pods)):
                self.c.remove("Pod", f"{dep}-{i}", ns)
            for i in range(len(pods), want):
                self.c.put({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": f"{dep}-{i}", "namespace": ns, "labels": {"app": dep}},
                    "status": {"phase": "Running"},
                })  # fmt: skip
            if int((d.get("status") or {}).get("readyReplicas") or 0) != want:
                self.c.patch("Deployment", dep, ns, {"status": {"readyReplicas": want}})


class ControlledKube(Kube):
    def __init__(self, ctl: Controllers) -> None:
        super().__init__(ctl.c.api_client())
        self._ctl = ctl

    def merge_patch(self, *args: Any, **kwargs: Any) -> None:
        super().merge_patch(*args, **kwargs)
        self._ctl.tick()  # before the product's next request, as a watching controller would


@pytest.fixture()
def cluster() -> Iterator[tuple[FakeCluster, Controllers]]:
    c = FakeCluster().start()
    ctl = Controllers(c)
    ctl.seed()
    ctl.tick()
    try:
        yield c, ctl
    finally:
        c.stop()


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with gcs_emulator(
        tmp_path_factory.mktemp("gcs"), [N.backup_bucket, N.artifact_bucket, N.mlflow_bucket]
    ) as s:
        yield s


def target() -> OpsTarget:
    return OpsTarget(CFG, N.sql_instance, N.backup_bucket, [N.artifact_bucket])


class Journal:
    def __init__(self) -> None:
        self.saved: dict[str, Any] | None = None
        self.history: list[dict[str, Any] | None] = []

    def __call__(self, state: dict[str, Any] | None) -> None:
        self.saved = state
        self.history.append(state)


def restore_deps(
    sql: FakeSqlAdmin, storage: Any, ctl: Controllers, log: list[str], journal: Journal
) -> rs.RestoreDeps:
    return rs.RestoreDeps(
        sql=sql_over_http(sql), storage=storage, poll=0, sleep=lambda s: None, log=log.append,
        kube=ctl.kube(), waits=ctl.waits(), journal=journal,
    )  # fmt: skip


def servers_state(c: FakeCluster) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ns, (app, dep, _) in SERVERS.items():
        a = c.get("Application", app, ARGO) or {}
        d = c.get("Deployment", dep, ns) or {}
        out[dep] = {"automated": a["spec"]["syncPolicy"].get("automated"),
                    "replicas": d["spec"]["replicas"], "ready": d["status"]["readyReplicas"]}  # fmt: skip
    root = c.get("Application", N.argocd_root_app, ARGO) or {}
    out["root"] = root["spec"]["syncPolicy"].get("automated")
    return out


UP = {
    "zenml-server": {"automated": AUTO, "replicas": 2, "ready": 2},
    "mlflow": {"automated": AUTO, "replicas": 1, "ready": 1},
    "root": AUTO,
}


def take_backup(sql: FakeSqlAdmin, storage: Any, rows: dict[str, list[str]], when: datetime) -> str:
    sql.instances[N.sql_instance].databases = {k: list(v) for k, v in rows.items()}
    d = BackupDeps(
        sql=sql_over_http(sql), storage=storage, poll=0, sleep=lambda s: None, now=lambda: when
    )
    return str(run_backup(target(), d)["id"])


# every database the deployment has (zenml, mlflow and MLflow's auth database when present)
BEFORE = {db: [f"{db}-row-1", f"{db}-row-2"] for db in N.databases.values()}
AFTER = {db: [f"{db}-row-1", f"{db}-new-table"] for db in N.databases.values()}


def test_restore_stops_writers_through_argocd_then_imports_then_brings_them_back(
    cluster: tuple[FakeCluster, Controllers], storage: Any
) -> None:
    c, ctl = cluster
    sql = FakeSqlAdmin(storage)
    sql.add_instance(N.sql_instance, {})
    bid = take_backup(sql, storage, BEFORE, datetime(2030, 5, 1, tzinfo=UTC))
    sql.instances[N.sql_instance].databases = {k: list(v) for k, v in AFTER.items()}
    sql.calls.clear()
    seen_at_import: dict[str, Any] = {}
    real_import = sql.import_sql

    def import_sql(instance: str, uri: str, database: str) -> dict[str, Any]:
        seen_at_import[database] = {ns: c.names("Pod", ns) for ns in SERVERS} | {
            "auto": [ctl.automated(a) for a, _, _ in SERVERS.values()]
        }
        return real_import(instance, uri, database)

    sql.import_sql = import_sql  # type: ignore[method-assign]
    log: list[str] = []
    journal = Journal()
    assert servers_state(c) == UP

    result = rs.run_restore(
        target(), rs.Source("export", bid), restore_deps(sql, storage, ctl, log, journal)
    )

    assert sql.instances[N.sql_instance].databases == BEFORE
    # every import ran while no server pod existed and auto-sync was off
    for db in BEFORE:
        assert seen_at_import[db] == {N.namespaces["zenml"]: [], N.namespaces["mlflow"]: [],
                                      "auto": [None, None]}  # fmt: skip
    # each database is dropped and re-created before its import (no table survives)
    assert [x for x in sql.calls if not x.startswith("done:")] == [
        step for db in BEFORE for step in (f"drop:{db}", f"create:{db}", f"import:{db}")
    ]
    assert result["databases"] == {db: f"restored from backup {bid}" for db in BEFORE}
    assert servers_state(c) == UP
    # the root app was suspended first and resumed last
    suspends = [line for line in log if line.startswith("suspending")]
    resumes = [line for line in log if line.startswith("resuming")]
    assert suspends[0].endswith(N.argocd_root_app) and resumes[-1].endswith(N.argocd_root_app)
    assert not [e for e in ctl.events if e.startswith(("self-heal", "root healed"))]
    # the saved state was journalled while the servers were down, and cleared afterwards
    assert journal.history[-1] is None
    saved = next(s for s in journal.history if s and s["replicas"])
    assert saved["replicas"] == {
        f"{N.namespaces['zenml']}/zenml-server": 2,
        f"{N.namespaces['mlflow']}/mlflow": 1,
    }


def test_a_failed_import_brings_the_servers_back_and_says_what_state_the_data_is_in(
    cluster: tuple[FakeCluster, Controllers], storage: Any
) -> None:
    c, ctl = cluster
    sql = FakeSqlAdmin(storage)
    sql.add_instance(N.sql_instance, {})
    bid = take_backup(sql, storage, BEFORE, datetime(2030, 5, 2, tzinfo=UTC))
    sql.instances[N.sql_instance].databases = {k: list(v) for k, v in AFTER.items()}
    sql.fail["import:mlflow"] = "ERROR 1064: syntax error in dump"
    journal = Journal()

    with pytest.raises(UserError) as e:
        rs.run_restore(
            target(), rs.Source("export", bid), restore_deps(sql, storage, ctl, [], journal)
        )

    msg = e.value.message
    assert "restore failed while importing" in msg and "ERROR 1064" in msg
    assert f"zenml: restored from backup {bid}" in msg
    assert "mlflow: EMPTY (re-created; the import did not finish)" in msg
    later = list(BEFORE)[list(BEFORE).index("mlflow") + 1 :]
    for db in later:  # never touched
        assert f"{db}: unchanged" in msg
    assert "the servers are running again" in msg
    assert "run the same restore again" in (e.value.hint or "")
    assert sql.instances[N.sql_instance].databases == {
        "zenml": BEFORE["zenml"],
        "mlflow": [],
        **{db: AFTER[db] for db in later},
    }
    assert servers_state(c) == UP
    assert journal.saved is None


def test_a_restore_interrupted_while_servers_are_down_is_undone_by_the_next_run(
    cluster: tuple[FakeCluster, Controllers], storage: Any
) -> None:
    """The journal (the deployment record) remembers the chart's replicas: a second run
    that finds the servers already at zero still brings them back to 2 and 1."""
    c, ctl = cluster
    sql = FakeSqlAdmin(storage)
    sql.add_instance(N.sql_instance, {})
    bid = take_backup(sql, storage, BEFORE, datetime(2030, 5, 3, tzinfo=UTC))
    journal = Journal()
    writers.stop(ctl.kube(), CFG, lambda s: None, ctl.waits(),
                 on_saved=lambda s: journal(s.to_dict()))  # fmt: skip  # then the process died
    assert servers_state(c)["zenml-server"]["replicas"] == 0
    d = restore_deps(sql, storage, ctl, [], journal)
    d.saved = journal.saved
    rs.run_restore(target(), rs.Source("export", bid), d)
    assert servers_state(c) == UP


def test_point_in_time_clones_exports_deletes_the_clone_and_imports_before_stopping_nothing_else(
    cluster: tuple[FakeCluster, Controllers], storage: Any
) -> None:
    c, ctl = cluster
    sql = FakeSqlAdmin(storage)
    sql.add_instance(N.sql_instance, {k: list(v) for k, v in AFTER.items()})
    when = rs.parse_point_in_time("2026-05-04T10:00:00Z")
    sql.history[when] = BEFORE
    journal = Journal()
    result = rs.run_restore(
        target(), rs.Source("point_in_time", when), restore_deps(sql, storage, ctl, [], journal)
    )
    steps = [x for x in sql.calls if not x.startswith("done:")]
    clone = next(s.split(":", 1)[1] for s in steps if s.startswith("clone:"))
    assert clone.startswith(f"{N.sql_instance}-pitr-")
    assert (
        steps[: 2 + len(BEFORE)]
        == [
            f"clone:{clone}",
            *(f"export:{db}@{clone}" for db in BEFORE),
            f"delete_instance:{clone}",
        ][: 2 + len(BEFORE)]
    )
    assert f"delete_instance:{clone}" in steps
    assert clone not in sql.instances
    assert sql.instances[N.sql_instance].databases == BEFORE
    assert result["databases"] == {db: f"restored from the point in time {when}" for db in BEFORE}
    assert servers_state(c) == UP


def test_backup_run_restores_the_whole_instance_and_unknown_runs_are_refused_before_any_stop(
    cluster: tuple[FakeCluster, Controllers], storage: Any
) -> None:
    c, ctl = cluster
    sql = FakeSqlAdmin(storage)
    sql.add_instance(N.sql_instance, {k: list(v) for k, v in BEFORE.items()})
    take_backup(sql, storage, BEFORE, datetime(2030, 5, 5, tzinfo=UTC))
    run_id = next(iter(sql.instances[N.sql_instance].backup_runs))
    sql.instances[N.sql_instance].databases = {k: list(v) for k, v in AFTER.items()}
    log: list[str] = []
    with pytest.raises(UserError, match="no successful backup run '42'"):
        rs.run_restore(
            target(), rs.Source("backup_run", "42"), restore_deps(sql, storage, ctl, log, Journal())
        )
    assert not [line for line in log if "suspending" in line]  # nothing was stopped
    rs.run_restore(
        target(), rs.Source("backup_run", run_id), restore_deps(sql, storage, ctl, [], Journal())
    )
    assert sql.instances[N.sql_instance].databases == BEFORE
    assert servers_state(c) == UP


def test_point_in_time_input_is_checked() -> None:
    assert rs.parse_point_in_time("2026-01-31 12:00") == "2026-01-31T12:00:00Z"
    assert rs.parse_point_in_time("2026-01-31T13:00:00+01:00") == "2026-01-31T12:00:00Z"
    with pytest.raises(UserError, match="is not a time"):
        rs.parse_point_in_time("yesterday")


def test_restore_cli_refuses_without_yes_when_no_tty_and_says_what_is_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: Any
) -> None:
    from click.testing import CliRunner

    from zenml_gcp_gitops.cli import cli
    from zenml_gcp_gitops.cli import ops as ops_cli
    from zenml_gcp_gitops.run_options import RunOptions, Services
    from zenml_gcp_gitops.state.record import DeploymentRecord, PhaseRecord, local_record_path

    monkeypatch.setenv("ZENML_GCP_GITOPS_HOME", str(tmp_path / "home"))  # a record of its own
    cfg = build_config(
        None, {"project": "acme-ml-prod", "region": "europe-west4", "state": "local"}
    )
    rec = DeploymentRecord.new(cfg)
    rec.phases["infra"] = PhaseRecord(
        status="succeeded", outputs={"outputs": {"sql_instance": N.sql_instance}}
    )
    path = local_record_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rec.model_dump_json())
    sql = FakeSqlAdmin(storage)
    sql.add_instance(N.sql_instance, {k: list(v) for k, v in BEFORE.items()})
    bid = take_backup(sql, storage, BEFORE, datetime(2030, 5, 6, tzinfo=UTC))
    monkeypatch.setattr(ops_cli, "_options", lambda: (
        RunOptions(no_servers=True),
        Services(sql_admin=sql, storage_client=storage, kube_api_client=object()),
    ))  # fmt: skip
    r = CliRunner().invoke(cli, ["restore", bid, "--project", "acme-ml-prod", "--region",
                                 "europe-west4", "--state", "local", "--no-verify"])  # fmt: skip
    assert r.exit_code == 1
    assert f"Restoring backup {bid} overwrites: database zenml on {N.sql_instance}" in r.output
    assert "pass --yes" in r.output
    assert sql.instances[N.sql_instance].databases == BEFORE
    assert not [x for x in sql.calls if x.startswith(("drop", "import"))]
    r = CliRunner().invoke(
        cli, ["restore", "--project", "acme-ml-prod", "--region", "europe-west4"]
    )
    assert r.exit_code == 2 and "exactly one source" in r.output
    assert json.loads(path.read_text())["name"] == cfg.name


def pitr_deps(sql: FakeSqlAdmin, storage: Any, ctl: Controllers, log: list[str],
              now: datetime) -> rs.RestoreDeps:  # fmt: skip
    d = restore_deps(sql, storage, ctl, log, Journal())
    d.now = lambda: now
    return d


def test_point_in_time_unprotects_the_inherited_clone_before_deleting_it(
    cluster: tuple[FakeCluster, Controllers], storage: Any
) -> None:
    """The instance has deletion protection (the default); its clone inherits it and Cloud
    SQL refuses to delete a protected instance, so nothing may be left running."""
    _c, ctl = cluster
    sql = FakeSqlAdmin(storage)
    sql.add_instance(N.sql_instance, {k: list(v) for k, v in AFTER.items()},
                     deletion_protection=CFG.deletion_protection)  # fmt: skip
    assert CFG.deletion_protection
    when = rs.parse_point_in_time("2026-05-04T10:00:00Z")
    sql.history[when] = BEFORE
    rs.run_restore(target(), rs.Source("point_in_time", when),
                   pitr_deps(sql, storage, ctl, [], datetime(2030, 5, 7, 9, tzinfo=UTC)))  # fmt: skip
    assert list(sql.instances) == [N.sql_instance]  # no clone left billing
    clone = rs.clone_name(N.sql_instance, datetime(2030, 5, 7, 9, tzinfo=UTC))
    steps = [x for x in sql.calls if not x.startswith("done:")]
    assert steps.index(f"protect:{clone}=False") < steps.index(f"delete_instance:{clone}")
    assert sql.instances[N.sql_instance].databases == BEFORE
    assert sql.instances[N.sql_instance].deletion_protection  # the instance keeps its own


def test_a_clone_that_cannot_be_deleted_is_an_error_and_the_retry_cleans_it_up(
    cluster: tuple[FakeCluster, Controllers], storage: Any
) -> None:
    c, ctl = cluster
    sql = FakeSqlAdmin(storage)
    sql.add_instance(N.sql_instance, {k: list(v) for k, v in AFTER.items()})
    # named like a clone, but no restore of ours made it: never deleted
    lookalike = f"{N.sql_instance}-pitr-20300101t000000"
    sql.add_instance(lookalike, {})
    record: dict[str, dict[str, str]] = {}  # the deployment record's pitr_clones
    when = rs.parse_point_in_time("2026-05-04T10:00:00Z")
    sql.history[when] = BEFORE
    first_at, retry_at = datetime(2030, 5, 8, 9, tzinfo=UTC), datetime(2030, 5, 8, 9, 5, tzinfo=UTC)
    knob = f"delete_instance:{N.sql_instance}-pitr-*"
    sql.fail[knob] = "INTERNAL_ERROR backend unavailable"
    log: list[str] = []
    d = pitr_deps(sql, storage, ctl, log, first_at)
    d.save_clones = lambda clones: record.update(clones=clones)
    with pytest.raises(UserError) as e:
        rs.run_restore(target(), rs.Source("point_in_time", when), d)
    [first] = [n for n in sql.instances if n not in (N.sql_instance, lookalike)]  # still billed
    assert f"could not delete the point-in-time clone {first}" in e.value.message
    assert (
        f"gcloud sql instances patch {first} --no-deletion-protection --project acme-ml-prod && "
        f"gcloud sql instances delete {first} --project acme-ml-prod --quiet"
    ) in (e.value.hint or "")
    assert not [line for line in log if "suspending" in line]  # nothing else was touched
    assert sql.instances[N.sql_instance].databases == AFTER

    del sql.fail[knob]
    sql.instances[first].deletion_protection = True  # as a clone of a protected instance
    assert list(record["clones"]) == [first]  # recorded as ours before it was made
    log.clear()
    d = pitr_deps(sql, storage, ctl, log, retry_at)  # a new process: it knows the record only
    d.clones, d.save_clones = dict(record["clones"]), lambda clones: record.update(clones=clones)
    rs.run_restore(target(), rs.Source("point_in_time", when), d)
    assert f"found the clone {first} an earlier restore left" in log
    assert sorted(sql.instances) == sorted([N.sql_instance, lookalike])
    assert record["clones"] == {}
    assert rs.clone_name(N.sql_instance, retry_at) != first  # a name Cloud SQL still holds
    assert sql.instances[N.sql_instance].databases == BEFORE
    assert servers_state(c) == UP


class IamStorage:
    """The emulator's client plus bucket IAM policies, which the emulator does not serve."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.policies: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def bucket(self, name: str) -> Any:
        from google.api_core.iam import Policy

        outer, b = self, self.inner.bucket(name)

        class Bucket:
            def __getattr__(self, attr: str) -> Any:
                return getattr(b, attr)

            def get_iam_policy(self, requested_policy_version: int = 1) -> Any:
                p = Policy(version=requested_policy_version)
                for binding in outer.policies.get(name, []):
                    p.bindings.append({"role": binding["role"], "members": set(binding["members"])})
                return p

            def set_iam_policy(self, policy: Any) -> Any:
                outer.policies[name] = [dict(x) for x in policy.bindings]
                return policy

        return Bucket()

    def members(self, bucket: str) -> set[str]:
        return {m for x in self.policies.get(bucket, []) for m in x["members"]}


def test_a_clone_with_its_own_service_account_is_granted_on_the_bucket_for_the_export_only(
    cluster: tuple[FakeCluster, Controllers], storage: Any
) -> None:
    _c, ctl = cluster
    iam = IamStorage(storage)
    instance_sa = "serviceAccount:p123456789-abcdef@gcp-sa-cloud-sql.iam.gserviceaccount.com"
    iam.policies[N.backup_bucket] = [  # what the program grants
        {"role": "roles/storage.objectAdmin", "members": {instance_sa}}
    ]
    sql = FakeSqlAdmin(iam)
    sql.add_instance(N.sql_instance, {k: list(v) for k, v in AFTER.items()})
    sql.clone_service_account = "p123456789-zyxwvu@gcp-sa-cloud-sql.iam.gserviceaccount.com"
    sql.bucket_access = lambda bucket, sa: f"serviceAccount:{sa}" in iam.members(bucket)
    when = rs.parse_point_in_time("2026-05-04T10:00:00Z")
    sql.history[when] = BEFORE
    rs.run_restore(target(), rs.Source("point_in_time", when),
                   pitr_deps(sql, iam, ctl, [], datetime(2030, 5, 9, tzinfo=UTC)))  # fmt: skip
    assert sql.instances[N.sql_instance].databases == BEFORE
    assert iam.members(N.backup_bucket) == {instance_sa}  # the clone's grant is gone again


def test_the_backup_run_confirmation_says_the_point_in_time_logs_are_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: Any
) -> None:
    from click.testing import CliRunner

    from zenml_gcp_gitops.cli import cli
    from zenml_gcp_gitops.cli import ops as ops_cli
    from zenml_gcp_gitops.run_options import RunOptions, Services
    from zenml_gcp_gitops.state.record import DeploymentRecord, PhaseRecord, local_record_path

    monkeypatch.setenv("ZENML_GCP_GITOPS_HOME", str(tmp_path / "home"))
    cfg = build_config(
        None, {"project": "acme-ml-prod", "region": "europe-west4", "state": "local"}
    )
    rec = DeploymentRecord.new(cfg)
    rec.phases["infra"] = PhaseRecord(
        status="succeeded", outputs={"outputs": {"sql_instance": N.sql_instance}}
    )
    path = local_record_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rec.model_dump_json())
    sql = FakeSqlAdmin(storage)
    sql.add_instance(N.sql_instance, {k: list(v) for k, v in BEFORE.items()})
    take_backup(sql, storage, BEFORE, datetime(2030, 5, 10, tzinfo=UTC))
    run_id = next(iter(sql.instances[N.sql_instance].backup_runs))
    monkeypatch.setattr(ops_cli, "_options", lambda: (
        RunOptions(no_servers=True),
        Services(sql_admin=sql, storage_client=storage, kube_api_client=object()),
    ))  # fmt: skip
    r = CliRunner().invoke(cli, ["restore", "--backup-run", run_id, "--project", "acme-ml-prod",
                                 "--region", "europe-west4", "--state", "local", "--no-verify"])  # fmt: skip
    assert r.exit_code == 1 and "pass --yes" in r.output
    text = " ".join(r.output.split())
    assert f"Cloud SQL also erases {N.sql_instance}'s point-in-time logs" in text
    assert "no time before this restore can be restored with --point-in-time" in text
    assert not [x for x in sql.calls if x.startswith("restore_run")]
