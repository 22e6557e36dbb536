"""Preflight against fake Google clients: every failure names its fix; the happy path makes
the state bucket and key exactly once; a dry run creates nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes.google_clients import FakeGcp
from tests.fakes.pulumi import make_fake_pulumi
from tests.support.typed_options import typed
from zenml_gcp_gitops.config import DeploymentConfig, build_config
from zenml_gcp_gitops.errors import UserError
from zenml_gcp_gitops.phases.base import PhaseContext
from zenml_gcp_gitops.phases.preflight import PreflightPhase

PROJECT = "my-project-1"


@pytest.fixture(scope="module")
def pulumi_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_pulumi(tmp_path_factory.mktemp("fake-pulumi"))


def _cfg(**kw: Any) -> DeploymentConfig:
    return build_config(None, {"project": PROJECT, "region": "europe-west4", **kw})


def _run(gcp: FakeGcp, cfg: DeploymentConfig | None = None, **options: Any) -> dict[str, Any]:
    cfg = cfg or _cfg()
    ctx = PhaseContext(cfg=cfg, **typed({"gcp_api": gcp.api(cfg), **options}))
    return PreflightPhase().run(ctx)


@pytest.fixture
def ok(pulumi_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi-home"))
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    return {"pulumi_root": str(pulumi_root), "yes": True}


@pytest.mark.parametrize(
    ("knobs", "message", "hint"),
    [
        (
            {"adc": False},
            "no Google Application Default Credentials",
            "gcloud auth application-default login",
        ),
        (
            {"creds_expired": True},
            "have expired or were revoked",
            "gcloud auth application-default login",
        ),
        (
            {"project_exists": False},
            f"project {PROJECT} does not exist or your account cannot see it",
            "gcloud projects list",
        ),
        ({"project_state": "DELETE_REQUESTED"}, "is DELETE_REQUESTED", "undelete"),
        ({"billing_enabled": False}, "billing is not enabled", "billing/linkedaccount"),
        (
            {"billing_api_disabled": True},
            "Cloud Billing API is disabled",
            "gcloud services enable cloudbilling.googleapis.com",
        ),
        ({"missing": ("serviceusage.services.enable",)}, "cannot enable services", "roles/owner"),
        (
            {"missing": ("container.clusters.create", "cloudsql.instances.create")},
            "lacks container.clusters.create, cloudsql.instances.create",
            "roles/owner",
        ),
        (
            {"enable_fails": True},
            "could not enable cloudresourcemanager.googleapis.com",
            "serviceusage.services.enable",
        ),
        (
            {"foreign_buckets": {f"{PROJECT}-zenml-state"}},
            "belongs to someone else",
            "--state gs://",
        ),
        ({"deny_key_use": True}, "cannot use the KMS key", "--secrets-provider passphrase"),
    ],
)
def test_each_failure_names_its_fix(
    ok: dict[str, Any], knobs: dict[str, Any], message: str, hint: str
) -> None:
    with pytest.raises(UserError) as exc:
        _run(FakeGcp(project=PROJECT, **knobs), **ok)
    assert message in exc.value.message
    assert hint in (exc.value.hint or "")


def test_happy_path_creates_state_bucket_and_key_once(ok: dict[str, Any]) -> None:
    gcp = FakeGcp(project=PROJECT)
    out = _run(gcp, **ok)
    bucket = gcp.storage.buckets[f"{PROJECT}-zenml-state"]
    assert bucket.location == "europe-west4" and bucket.versioning_enabled
    assert bucket.iam_configuration.uniform_bucket_level_access_enabled
    assert bucket.iam_configuration.public_access_prevention == "enforced"
    assert bucket.labels["managed-by"] == "zenml-gcp-gitops"
    key = f"projects/{PROJECT}/locations/europe-west4/keyRings/zenml-pulumi-state/cryptoKeys/state"
    assert key in gcp.kms.keys
    assert out["state_bucket_action"] == "created" and out["state_kms_key_action"] == "created"
    assert out["pulumi_version"] == "3.225.0" and out["state_ready"] is True
    assert out["gcp_plugin"] and out["gcp_plugin_installed"] is False
    assert set(gcp.enabled_services) == {
        "cloudresourcemanager.googleapis.com",
        "serviceusage.googleapis.com",
        "storage.googleapis.com",
        "cloudkms.googleapis.com",
    }
    # idempotent: a second run keeps both
    out = _run(gcp, **ok)
    assert out["state_bucket_action"] == "exists" and out["state_kms_key_action"] == "exists"
    assert gcp.kms.calls.count("create_crypto_key") == 1


def test_dry_run_creates_nothing(ok: dict[str, Any]) -> None:
    gcp = FakeGcp(project=PROJECT)
    out = _run(gcp, dry_run=True, **ok)
    assert gcp.storage.buckets == {} and gcp.kms.keys == {} and gcp.enabled_services == []
    assert (
        out["state_bucket_action"] == "would create"
        and out["state_kms_key_action"] == "would create"
    )
    assert out["state_ready"] is False
    assert gcp.called("batch_enable_services") == []
    assert "cloudresourcemanager.googleapis.com" in out["services_to_enable"]


def test_local_backend_with_passphrase_needs_no_bucket_or_key(
    ok: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = _cfg(state=f"file://{tmp_path}/state", secrets_provider="passphrase")
    with pytest.raises(UserError) as exc:
        _run(FakeGcp(project=PROJECT), cfg, **ok)
    assert "PULUMI_CONFIG_PASSPHRASE" in exc.value.message
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "pw")
    gcp = FakeGcp(project=PROJECT)
    out = _run(gcp, cfg, **ok)
    assert gcp.storage.buckets == {} and gcp.kms.keys == {} and "state_bucket" not in out
    # the program's project lookup and project IAM still need Resource Manager, on first
    assert out["services_enabled"] == [
        "cloudresourcemanager.googleapis.com",
        "serviceusage.googleapis.com",
    ]


def test_pulumi_missing_without_yes_explains_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi anywhere
    monkeypatch.setenv("CI", "1")
    with pytest.raises(UserError) as exc:
        _run(FakeGcp(project=PROJECT))
    assert exc.value.message == "the Pulumi CLI is not installed"
    assert "--yes" in (exc.value.hint or "") and "get.pulumi.com" in (exc.value.hint or "")


def test_pulumi_install_is_offered_and_a_failed_download_explains(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pulumi_root: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    calls: list[dict[str, Any]] = []

    def failing(**kw: Any) -> Any:
        calls.append(kw)
        raise OSError("network is unreachable")

    with pytest.raises(UserError) as exc:
        _run(FakeGcp(project=PROJECT), yes=True, pulumi_installer=failing)
    assert "could not download the Pulumi CLI v3.225.0" in exc.value.message
    assert "network is unreachable" in exc.value.message
    assert "curl -fsSL https://get.pulumi.com" in (exc.value.hint or "")
    assert calls[0]["root"].endswith("pulumi") and str(calls[0]["version"]) == "3.225.0"

    from pulumi import automation as auto

    out = _run(
        FakeGcp(project=PROJECT),
        yes=True,
        pulumi_installer=lambda **kw: auto.PulumiCommand(
            root=str(pulumi_root), skip_version_check=True
        ),
    )
    assert out["pulumi_cli"] == str(pulumi_root / "bin" / "pulumi")


def test_old_pulumi_is_rejected(ok: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_PULUMI_VERSION", "3.90.0")
    with pytest.raises(UserError) as exc:
        _run(FakeGcp(project=PROJECT), **ok)
    assert "version 3.90.0" in exc.value.message and "3.160.0" in exc.value.message


def test_plugin_check_sees_an_installed_matching_plugin(ok: dict[str, Any]) -> None:
    from pulumi import automation as auto

    from zenml_gcp_gitops.infra.cli import gcp_plugin_version

    cmd = auto.PulumiCommand(root=ok["pulumi_root"], skip_version_check=True)
    cmd.run(["plugin", "install", "resource", "gcp", gcp_plugin_version()], ".", {})
    out = _run(FakeGcp(project=PROJECT), **ok)
    assert out["gcp_plugin_installed"] is True and out["gcp_plugins_present"] == [
        gcp_plugin_version()
    ]


def test_purge_deletes_our_bucket_and_destroys_key_versions(ok: dict[str, Any]) -> None:
    gcp = FakeGcp(project=PROJECT)
    cfg = _cfg()
    _run(gcp, cfg, **ok)
    # Pulumi's state in the versioned bucket: rewritten (a noncurrent version) and a file
    # deleted (only noncurrent versions left). GCS refuses to delete a bucket holding either.
    bucket = gcp.storage.bucket(cfg.names.state_bucket)
    assert bucket.versioning_enabled
    for text in ("v1", "v2"):
        bucket.blob(".pulumi/stacks/prod.json").upload_from_string(text)
    bucket.blob(".pulumi/locks/x.json").upload_from_string("lock")
    bucket.blob(".pulumi/locks/x.json").delete()
    assert len(gcp.storage.list_blobs(cfg.names.state_bucket, versions=True)) == 3
    ctx = PhaseContext(cfg=cfg, **typed({"gcp_api": gcp.api(cfg)}))
    out = PreflightPhase().purge(ctx)
    assert out == {"state_bucket": "deleted", "state_kms_key_versions_destroyed": 1}
    assert gcp.storage.buckets == {}
    assert gcp.storage.list_blobs(cfg.names.state_bucket, versions=True) == []


def test_old_pulumi_on_path_is_replaced_by_the_pinned_one(
    pulumi_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from semver import VersionInfo

    monkeypatch.setenv("PATH", f"{pulumi_root / 'bin'}:{tmp_path}")
    monkeypatch.setenv("FAKE_PULUMI_VERSION", "3.90.0")
    installed = SimpleNamespace(
        command=str(tmp_path / "new" / "bin" / "pulumi"),
        version=VersionInfo.parse("3.225.0"),
        run=lambda *args: SimpleNamespace(stdout="[]"),  # no plugins installed yet
    )
    out = _run(FakeGcp(project=PROJECT), yes=True, pulumi_installer=lambda **kw: installed)
    assert out["pulumi_version"] == "3.225.0" and out["pulumi_cli"] == installed.command
    monkeypatch.setenv("CI", "1")
    with pytest.raises(UserError) as exc:
        _run(FakeGcp(project=PROJECT), pulumi_installer=lambda **kw: installed)
    assert exc.value.message == "the Pulumi CLI is v3.90.0, too old" and "--yes" in (
        exc.value.hint or ""
    )


def test_install_prompt_pauses_the_live_display(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pulumi_root: Path
) -> None:
    import click
    from pulumi import automation as auto

    from zenml_gcp_gitops.infra.cli import ensure_pulumi

    events: list[str] = []

    class Rep:
        def step(self, m: str) -> None:
            events.append("step")

        def paused(self) -> Any:
            import contextlib

            @contextlib.contextmanager
            def cm() -> Any:
                events.append("pause")
                yield
                events.append("resume")

            return cm()

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("zenml_gcp_gitops.ui.is_interactive", lambda: True)
    answers = iter([False, True])
    monkeypatch.setattr(click, "confirm", lambda *a, **k: (events.append("ask"), next(answers))[1])
    cfg = _cfg()
    installer = lambda **kw: auto.PulumiCommand(root=str(pulumi_root), skip_version_check=True)  # noqa: E731
    with pytest.raises(UserError, match="the Pulumi CLI is required"):
        ensure_pulumi(cfg, Rep(), installer=installer)
    assert events == ["pause", "ask", "resume"]
    cmd = ensure_pulumi(cfg, Rep(), installer=installer)
    assert str(cmd.version) == "3.225.0"


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, message: str) -> None:
        pass

    def progress(self, done: int, total: int | None, current: str | None = None) -> None:
        pass

    def log(self, line: str) -> None:
        self.lines.append(line)


@pytest.mark.parametrize(
    ("knobs", "warned"),
    [
        ({"compute_default_editor": True}, True),
        ({}, False),
        ({"compute_default_editor": True, "deny_get_iam_policy": True}, False),
    ],
)
def test_warns_when_the_default_compute_account_is_editor(
    ok: dict[str, Any], knobs: dict[str, Any], warned: bool
) -> None:
    gcp = FakeGcp(project=PROJECT, **knobs)
    # an unreadable policy stops the audit config read (below), not this warning
    cfg = _cfg(data_access_logs=not knobs.get("deny_get_iam_policy"))
    rep = _Lines()
    ctx = PhaseContext(cfg=cfg, reporter=rep, **typed({"gcp_api": gcp.api(cfg), **ok}))
    out = PreflightPhase().run(ctx)  # a warning, never a failure
    assert out["state_ready"]
    email = "123456789012-compute@developer.gserviceaccount.com"
    if warned:
        [warning] = out["warnings"]
        assert email in warning and "roles/editor" in warning
        assert "remove-iam-policy-binding" in warning
        assert rep.lines == [f"WARNING: {warning}"]
    else:
        assert out["warnings"] == [] and not any("WARNING" in x for x in rep.lines)
    assert set(gcp.called("get_iam_policy")) == {f"projects/{PROJECT}"}


def test_an_unreadable_iam_policy_stops_before_audit_configs_are_replaced(
    ok: dict[str, Any],
) -> None:
    with pytest.raises(UserError) as exc:
        _run(FakeGcp(project=PROJECT, deny_get_iam_policy=True), **ok)
    assert "audit configs" in exc.value.message
    assert "data_access_logs: false" in (exc.value.hint or "")


def test_the_audit_config_read_once_is_kept(ok: dict[str, Any]) -> None:
    """The first deploy records what the project had; later deploys see the stack's own
    merged config, so they keep the first read."""
    gcp = FakeGcp(
        project=PROJECT,
        audit_configs={"storage.googleapis.com": [{"log_type": "ADMIN_READ"}]},
    )
    first = _run(gcp, **ok)["audit_prior"]
    assert first == {"storage.googleapis.com": [{"log_type": "ADMIN_READ", "exempted_members": []}]}
    gcp.audit_configs["storage.googleapis.com"].append({"log_type": "DATA_READ"})
    cfg = _cfg()
    ctx = PhaseContext(
        cfg=cfg,
        recorded={"preflight": {"audit_prior": first}},
        **typed({"gcp_api": gcp.api(cfg), **ok}),
    )
    assert PreflightPhase().run(ctx)["audit_prior"] == first
