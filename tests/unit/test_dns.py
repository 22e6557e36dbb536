"""Cloud DNS for --domain: config, the program's records and zone under mocks, preflight
against a fake Cloud DNS API, the wait for public resolution, and cert-manager's DNS-01."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.fakes.cloud_dns import FakeCloudDns, FakeZone
from tests.fakes.google_clients import FakeGcp
from tests.fakes.pulumi import make_fake_pulumi
from tests.support.typed_options import typed
from zenml_gcp_gitops.cli import cli as main
from zenml_gcp_gitops.config import DeploymentConfig, build_config
from zenml_gcp_gitops.errors import ConfigError, UserError
from zenml_gcp_gitops.gcp.dns import CloudDnsApi, DohResolver, check_dns, wait_for_records
from zenml_gcp_gitops.gitops.render import render
from zenml_gcp_gitops.outputs import InfraOutputs
from zenml_gcp_gitops.phases.base import PhaseContext
from zenml_gcp_gitops.phases.gitops import wait_for_dns
from zenml_gcp_gitops.phases.preflight import PreflightPhase
from zenml_gcp_gitops.plan import MOCK_INGRESS_IP, MOCK_NAME_SERVERS, offline_outputs, run_program

PROJECT = "my-project-1"
DOMAIN = "ml.example.com"
RECORD = "gcp:dns/recordSet:RecordSet"
ZONE = "gcp:dns/managedZone:ManagedZone"
ZONE_IAM = "gcp:dns/dnsManagedZoneIamMember:DnsManagedZoneIamMember"
PLAN = ["plan", "--offline", "--project", PROJECT, "--region", "europe-west4"]


def cfg_of(**kw: Any) -> DeploymentConfig:
    return build_config(None, {"project": PROJECT, "region": "europe-west4", **kw})


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dns_zone": "example-com"}, "dns_zone: Cloud DNS records need a domain"),
        ({"create_dns_zone": True}, "create_dns_zone: Cloud DNS records need a domain"),
        (
            {"domain": DOMAIN, "dns_zone": "example-com", "create_dns_zone": True},
            "create_dns_zone: choose one",
        ),
        ({"domain": DOMAIN, "acme_challenge": "dns01"}, "acme_challenge: dns01 answers through"),
        ({"domain": DOMAIN, "dns_zone": "Example_Com"}, "is not a Cloud DNS managed zone"),
        ({"domain": DOMAIN, "dns_zone": "a/b/c"}, "is not a Cloud DNS managed zone"),
    ],
)
def test_bad_dns_settings_name_the_field(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cfg_of(**overrides)


def test_zone_in_another_project_and_created_zone_names() -> None:
    n = cfg_of(domain=DOMAIN, dns_zone="dns-host-project/example-com").names
    assert (n.dns_zone_project, n.dns_zone) == ("dns-host-project", "example-com")
    assert n.dns_records == {"zenml": f"zenml.{DOMAIN}.", "mlflow": f"mlflow.{DOMAIN}."}
    n = cfg_of(domain=DOMAIN, create_dns_zone=True).names
    assert (n.dns_zone_project, n.dns_zone) == (PROJECT, "zenml-ml-example-com")
    assert cfg_of(domain=DOMAIN).names.dns_zone is None


def test_cli_bad_zone_is_one_line_exit_2() -> None:
    res = CliRunner().invoke(
        main,
        [*PLAN, "--dns-zone", "example-com"],
    )
    assert res.exit_code == 2
    assert "Cloud DNS records need a domain" in res.output
    assert "Traceback" not in res.output


# --------------------------------------------------------------------------- program


def _regs(cfg: DeploymentConfig, token: str) -> list[Any]:
    return [r for r in run_program(cfg).registrations if r.type == token]


def test_existing_zone_gets_two_short_ttl_a_records_and_is_never_owned() -> None:
    cfg = cfg_of(domain=DOMAIN, dns_zone="dns-host-project/example-com")
    run = run_program(cfg)
    records = sorted((r for r in run.registrations if r.type == RECORD), key=lambda r: r.name)
    assert [r.inputs["name"] for r in records] == [f"mlflow.{DOMAIN}.", f"zenml.{DOMAIN}."]
    for r in records:
        assert r.inputs["type"] == "A" and r.inputs["ttl"] <= 300
        assert r.inputs["rrdatas"] == [MOCK_INGRESS_IP]  # the stack's static IP
        assert r.inputs["managedZone"] == "example-com"
        assert r.inputs["project"] == "dns-host-project"
        assert r.parent and "zenml-gcp-gitops:infra:Dns" in r.parent  # owned by the stack
    assert not [r for r in run.registrations if r.type == ZONE]  # the zone is never managed
    # HTTP-01: no DNS-01 account, no zone IAM
    assert not [r for r in run.registrations if r.type == ZONE_IAM]
    out = InfraOutputs.from_mapping(run.outputs)
    assert out.dns_zone == "example-com" and out.dns_name_servers is None
    # the API is enabled only where the zone lives in this project (here: another project)
    services = {
        r.inputs["service"] for r in run.registrations if r.type == "gcp:projects/service:Service"
    }
    assert "dns.googleapis.com" not in services


def test_created_zone_is_the_stacks_and_its_name_servers_are_exported() -> None:
    cfg = cfg_of(domain=DOMAIN, create_dns_zone=True)
    run = run_program(cfg)
    (zone,) = [r for r in run.registrations if r.type == ZONE]
    assert zone.inputs["dnsName"] == f"{DOMAIN}." and zone.inputs["visibility"] == "public"
    assert zone.inputs["project"] == PROJECT
    for rec in (r for r in run.registrations if r.type == RECORD):
        assert zone.urn in rec.depends_on  # records go in after the zone (and out before it)
    out = InfraOutputs.from_mapping(run.outputs)
    assert out.dns_name_servers == MOCK_NAME_SERVERS
    services = {
        r.inputs["service"] for r in run.registrations if r.type == "gcp:projects/service:Service"
    }
    assert "dns.googleapis.com" in services


def test_dns01_account_has_dns_admin_on_the_zone_only_through_workload_identity() -> None:
    cfg = cfg_of(domain=DOMAIN, dns_zone="example-com", acme_challenge="dns01")
    run = run_program(cfg)
    accounts = [
        r
        for r in run.registrations
        if r.type == "gcp:serviceaccount/account:Account" and r.inputs["accountId"] == "zenml-dns01"
    ]
    assert len(accounts) == 1
    (grant,) = [r for r in run.registrations if r.type == ZONE_IAM]
    assert grant.inputs["role"] == "roles/dns.admin"
    assert grant.inputs["managedZone"] == "example-com" and grant.inputs["project"] == PROJECT
    assert grant.inputs["member"] == f"serviceAccount:zenml-dns01@{PROJECT}.iam.gserviceaccount.com"
    # nothing DNS-related at the project level
    for r in run.registrations:
        if r.type == "gcp:projects/iAMMember:IAMMember":
            assert not str(r.inputs["role"]).startswith("roles/dns.")
    wi = [
        r
        for r in run.registrations
        if r.type == "gcp:serviceaccount/iAMMember:IAMMember"
        and r.name == "dns01-workload-identity"
    ]
    assert wi[0].inputs["role"] == "roles/iam.workloadIdentityUser"
    assert wi[0].inputs["member"] == (
        f"serviceAccount:{PROJECT}.svc.id.goog[cert-manager/cert-manager]"
    )


def test_dns01_issuer_uses_cloud_dns_and_cert_manager_impersonates_its_account() -> None:
    cfg = cfg_of(domain=DOMAIN, dns_zone="dns-host/example-com", acme_challenge="dns01")
    r = render(cfg, offline_outputs(cfg))
    issuers = [o for o in r.objects if o["kind"] == "ClusterIssuer"]
    assert len(issuers) == 2
    for issuer in issuers:
        assert issuer["spec"]["acme"]["solvers"] == [
            {"dns01": {"cloudDNS": {"project": "dns-host", "hostedZoneName": "example-com"}}}
        ]
    values = r.app("cert_manager").manifest["spec"]["source"]["helm"]["valuesObject"]
    assert values["serviceAccount"] == {
        "annotations": {
            "iam.gke.io/gcp-service-account": f"zenml-dns01@{PROJECT}.iam.gserviceaccount.com"
        }
    }
    # HTTP-01 (the default) keeps its solver and adds nothing to cert-manager's values
    cfg = cfg_of(domain=DOMAIN, dns_zone="example-com")
    r = render(cfg, offline_outputs(cfg))
    issuer = next(o for o in r.objects if o["kind"] == "ClusterIssuer")
    assert list(issuer["spec"]["acme"]["solvers"][0]) == ["http01"]
    values = r.app("cert_manager").manifest["spec"]["source"]["helm"]["valuesObject"]
    assert "serviceAccount" not in values


# --------------------------------------------------------------------------- preflight


def _dns(**zones: FakeZone) -> FakeCloudDns:
    fake = FakeCloudDns(FakeGcp(project=PROJECT))
    for key, zone in zones.items():
        project, _, name = key.partition("__")
        fake.zones[(project.replace("_", "-"), name.replace("_", "-"))] = zone
    return fake


def _check(fake: FakeCloudDns, cfg: DeploymentConfig) -> dict[str, Any]:
    api = fake.api(cfg)
    return check_dns(cfg, CloudDnsApi(api.dns), api.missing_permissions)


def test_preflight_accepts_a_zone_for_a_parent_of_the_domain() -> None:
    fake = _dns(my_project_1__example_com=FakeZone("example.com."))
    out = _check(fake, cfg_of(domain=DOMAIN, dns_zone="example-com"))
    assert out["dns_zone"] == f"{PROJECT}/example-com" and out["dns_zone_action"] == "exists"
    assert (
        "GET",
        f"https://dns.googleapis.com/dns/v1/projects/{PROJECT}/managedZones/example-com",
    ) in fake.requests


@pytest.mark.parametrize(
    ("zone", "dns_zone", "message", "hint"),
    [
        (
            None,
            "example-com",
            "does not exist in project my-project-1",
            "gcloud dns managed-zones list",
        ),
        (
            FakeZone("other.org."),
            "example-com",
            "serves other.org., which is not a suffix of ml.example.com",
            "choose a zone",
        ),
        (FakeZone("ample.com."), "example-com", "not a suffix", "choose a zone"),
        (
            FakeZone("example.com.", visibility="private"),
            "example-com",
            "is private",
            "public zone",
        ),
        (
            FakeZone(
                "example.com.", missing=("dns.resourceRecordSets.create", "dns.changes.create")
            ),
            "example-com",
            "cannot edit the zone my-project-1/example-com (missing dns.resourceRecordSets.create, dns.changes.create)",
            "roles/dns.admin",
        ),
    ],
)
def test_preflight_refuses_with_the_fix(
    zone: FakeZone | None, dns_zone: str, message: str, hint: str
) -> None:
    fake = _dns(**({"my_project_1__example_com": zone} if zone else {}))
    with pytest.raises(UserError) as exc:
        _check(fake, cfg_of(domain=DOMAIN, dns_zone=dns_zone))
    assert message in exc.value.message
    assert hint in (exc.value.hint or "")


def test_preflight_dns01_needs_set_iam_policy_on_the_zone() -> None:
    zone = FakeZone("example.com.", missing=("dns.managedZones.setIamPolicy",))
    fake = _dns(my_project_1__example_com=zone)
    _check(fake, cfg_of(domain=DOMAIN, dns_zone="example-com"))  # HTTP-01 does not need it
    with pytest.raises(UserError, match=r"dns\.managedZones\.setIamPolicy"):
        _check(fake, cfg_of(domain=DOMAIN, dns_zone="example-com", acme_challenge="dns01"))


def test_preflight_zone_in_a_project_without_cloud_dns() -> None:
    fake = _dns()
    fake.api_disabled_in.add("dns-host")
    with pytest.raises(UserError, match="Cloud DNS API is disabled in project dns-host"):
        _check(fake, cfg_of(domain=DOMAIN, dns_zone="dns-host/example-com"))


def test_preflight_create_zone_needs_the_permission_and_a_free_name() -> None:
    fake = _dns()
    fake.api_disabled_in.add(PROJECT)  # a fresh project: the program turns Cloud DNS on
    out = _check(fake, cfg_of(domain=DOMAIN, create_dns_zone=True))
    assert out["dns_zone_action"] == "will create"
    fake.api_disabled_in.clear()
    fake.gcp.missing = ("dns.managedZones.create",)
    with pytest.raises(UserError, match="cannot create Cloud DNS zones in my-project-1"):
        _check(fake, cfg_of(domain=DOMAIN, create_dns_zone=True))
    fake.gcp.missing = ()
    assert (
        _check(fake, cfg_of(domain=DOMAIN, create_dns_zone=True))["dns_zone_action"]
        == "will create"
    )
    fake.zones[(PROJECT, "zenml-ml-example-com")] = FakeZone("elsewhere.org.")
    with pytest.raises(UserError, match=r"already exists for elsewhere\.org\."):
        _check(fake, cfg_of(domain=DOMAIN, create_dns_zone=True))


def test_preflight_phase_checks_the_zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole preflight phase, with the real GcpApi and CloudDnsApi on the fake session."""
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi-home"))
    root = make_fake_pulumi(tmp_path / "fake-pulumi")
    cfg = cfg_of(domain=DOMAIN, dns_zone="example-com")
    fake = _dns()
    ctx = PhaseContext(
        cfg=cfg, **typed({"gcp_api": fake.api(cfg), "pulumi_root": str(root), "yes": True})
    )
    with pytest.raises(UserError, match="zone example-com does not exist"):
        PreflightPhase().run(ctx)
    # the zone's own name servers, not the fake's defaults, must reach the phase's outputs
    servers = ("ns-cloud-d1.googledomains.com.", "ns-cloud-d3.googledomains.com.")
    fake.zones[(PROJECT, "example-com")] = FakeZone("example.com.", name_servers=servers)
    ctx = PhaseContext(
        cfg=cfg, **typed({"gcp_api": fake.api(cfg), "pulumi_root": str(root), "yes": True})
    )
    out = PreflightPhase().run(ctx)
    assert out["dns_zone"] == f"{PROJECT}/example-com"
    assert out["dns_name_servers"] == list(servers)
    assert fake.refused == []  # only methods Cloud DNS has, with bodies it accepts


# --------------------------------------------------------------------------- waiting


class ScriptedResolver:
    """Answers per host from a script of successive answers (the last one repeats)."""

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = script
        self.calls: list[str] = []

    def resolve_a(self, name: str) -> list[str]:
        self.calls.append(name)
        answers = self.script[name]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return list(answer)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def test_wait_returns_once_public_dns_sees_both_records() -> None:
    ip = "203.0.113.10"
    resolver = ScriptedResolver(
        {
            "zenml.ml.example.com": [[], OSError("unreachable"), [ip]],
            "mlflow.ml.example.com": [["198.51.100.9"], [ip]],
        }
    )
    clock = FakeClock()
    seen = wait_for_records(
        {"zenml.ml.example.com": ip, "mlflow.ml.example.com": ip},
        resolver,
        timeout=300,
        interval=10,
        clock=clock,
        sleep=clock.sleep,
    )
    assert seen == {"zenml.ml.example.com": [ip], "mlflow.ml.example.com": [ip]}
    assert clock.now == 20  # two waits: the third poll saw both


def test_wait_times_out_with_what_it_saw_and_the_name_servers() -> None:
    resolver = ScriptedResolver({"zenml.ml.example.com": [["192.0.2.1"]]})
    clock = FakeClock()
    with pytest.raises(UserError) as exc:
        wait_for_records(
            {"zenml.ml.example.com": "203.0.113.10"},
            resolver,
            timeout=60,
            interval=10,
            name_servers=["ns-a.example.net.", "ns-b.example.net."],
            clock=clock,
            sleep=clock.sleep,
        )
    assert "after 60s" in exc.value.message and "resolves to 192.0.2.1" in exc.value.message
    assert "ns-a.example.net, ns-b.example.net" in (exc.value.hint or "")
    assert "--skip-dns-wait" in (exc.value.hint or "")
    assert clock.now == 60


class _DohHandler(BaseHTTPRequestHandler):
    answers: dict[str, list[str]] = {}

    def do_GET(self) -> None:
        from urllib.parse import parse_qs, urlparse

        q = parse_qs(urlparse(self.path).query)
        name, qtype = q["name"][0], q["type"][0]
        ips = self.answers.get(name)
        body: dict[str, Any] = {
            "Status": 3 if ips is None else 0,
            "Question": [{"name": name, "type": 1}],
        }
        if ips:
            body["Answer"] = [
                {"name": name + ".", "type": 5, "TTL": 300, "data": "alias.example."}
            ] + [{"name": name + ".", "type": 1, "TTL": 300, "data": ip} for ip in ips]
        assert qtype == "A"
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-javascript; charset=UTF-8")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_doh_resolver_reads_the_json_api_over_http() -> None:
    _DohHandler.answers = {"zenml.ml.example.com": ["203.0.113.10"]}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DohHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        resolver = DohResolver(url=f"http://127.0.0.1:{server.server_port}/resolve", timeout=5)
        assert resolver.resolve_a("zenml.ml.example.com") == ["203.0.113.10"]  # CNAME skipped
        assert resolver.resolve_a("nothing.ml.example.com") == []  # NXDOMAIN
    finally:
        server.shutdown()


def test_gitops_waits_only_with_cloud_dns_and_not_when_skipped() -> None:
    cfg = cfg_of(domain=DOMAIN, dns_zone="example-com")
    infra = offline_outputs(cfg)
    ok = ScriptedResolver(
        {infra.zenml_host: [[infra.ingress_ip]], infra.mlflow_host: [[infra.ingress_ip]]}
    )
    ctx = PhaseContext(cfg=cfg, **typed({"dns_resolver": ok}), _infra=infra)
    assert wait_for_dns(ctx) == {
        "resolved": {infra.zenml_host: [infra.ingress_ip], infra.mlflow_host: [infra.ingress_ip]}
    }
    never = ScriptedResolver({infra.zenml_host: [[]], infra.mlflow_host: [[]]})
    ctx = PhaseContext(
        cfg=cfg,
        **typed({"dns_resolver": never, "dns_wait_timeout": 0, "dns_wait_interval": 0}),
        _infra=infra,
    )
    with pytest.raises(UserError, match="public DNS does not show"):
        wait_for_dns(ctx)
    # an existing zone: the hint names its name servers, as preflight recorded them
    ctx.recorded = {"preflight": {"dns_name_servers": ["ns-x.example.net."]}}
    with pytest.raises(UserError) as exc:
        wait_for_dns(ctx)
    assert "ns-x.example.net" in (exc.value.hint or "")
    ctx = PhaseContext(
        cfg=cfg, **typed({"dns_resolver": never, "skip_dns_wait": True}), _infra=infra
    )
    calls = len(never.calls)
    assert wait_for_dns(ctx) is None and len(never.calls) == calls  # not even asked
    plain = cfg_of(domain=DOMAIN)  # records managed elsewhere: nothing to wait for here
    ctx = PhaseContext(cfg=plain, **typed({"dns_resolver": never}), _infra=offline_outputs(plain))
    assert wait_for_dns(ctx) is None


# --------------------------------------------------------------------------- plan


def test_plan_offline_shows_the_zone_and_records() -> None:
    res = CliRunner().invoke(
        main,
        [*PLAN, "--domain", DOMAIN, "--dns-zone", "example-com"],
    )
    assert res.exit_code == 0, res.output
    assert "Cloud DNS zone example-com (existing, never modified)" in res.output
    assert f"A zenml.{DOMAIN}. ttl 300 -> static IP" in res.output
    assert f"A mlflow.{DOMAIN}. ttl 300 -> static IP" in res.output
    res = CliRunner().invoke(
        main,
        [*PLAN, "--domain", DOMAIN, "--create-dns-zone", "--output", "json"],
    )
    plan = json.loads(res.output)
    assert plan["outputs"]["dns_name_servers"] == MOCK_NAME_SERVERS
    assert plan["config"]["create_dns_zone"] is True


def test_created_zone_wait_first_tells_which_ns_records_to_set() -> None:
    cfg = cfg_of(domain=DOMAIN, create_dns_zone=True)
    infra = offline_outputs(cfg)
    steps: list[str] = []
    reporter = type(
        "R",
        (),
        {
            "step": lambda self, m: steps.append(m),
            "progress": lambda self, *a: None,
            "log": lambda self, line: None,
        },
    )()
    ok = ScriptedResolver(
        {infra.zenml_host: [[infra.ingress_ip]], infra.mlflow_host: [[infra.ingress_ip]]}
    )
    ctx = PhaseContext(cfg=cfg, **typed({"dns_resolver": ok}), reporter=reporter, _infra=infra)
    wait_for_dns(ctx)
    ns = ", ".join(n.rstrip(".") for n in MOCK_NAME_SERVERS)
    assert steps[0] == f"Set the NS records of {DOMAIN} at your registrar to: {ns}"
