"""`plan --offline`: run the real Pulumi program in-process under mocks and describe it.

The program runs against `pulumi.runtime.set_mocks` with a monitor that records every
registration exactly as the engine would receive it (type token, camelCase inputs, parent,
dependencies). Computed values (IPs, endpoints, emails) are fakes from documentation
ranges; generated credentials are random per run and never leave this module except as
`[secret]`. Each run happens on a fresh thread: Pulumi keeps its runtime state in context
variables, and a new thread starts with a clean context and its own event loop.
"""

from __future__ import annotations

import atexit
import base64
import gc
import hashlib
import json
import re
import secrets as pysecrets
import string
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import SECRET_MARK
from .placeholders import (
    FAKE_PEM as _FAKE_PEM,
)
from .placeholders import (
    MOCK_INGRESS_IP,
    MOCK_NAME_SERVERS,
    MOCK_PROJECT_NUMBER,
    MOCK_PSA_ADDRESS,
    MOCK_SQL_PRIVATE_IP,
)

if TYPE_CHECKING:
    from .config import DeploymentConfig
    from .estimate.graph import Measured
    from .estimate.prices import PriceBook
    from .gitops.render import Rendered
    from .outputs import InfraOutputs

PLAN_VERSION = 1
_STACK_TYPE = "pulumi:pulumi:Stack"
_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


# Google-managed service agents: service -> the domain part of its agent's email.
_SERVICE_AGENTS = {
    "artifactregistry.googleapis.com": "gcp-sa-artifactregistry",
    "secretmanager.googleapis.com": "gcp-sa-secretmanager",
    "sqladmin.googleapis.com": "gcp-sa-cloud-sql",
}


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(_SECRET_SIG_KEY) == _SECRET_SIG


def _unwrap(value: Any) -> Any:
    """The plain value of a possibly secret-wrapped RPC value (for computing mock state)."""
    return value["value"] if _is_secret(value) else value


def redact(value: Any) -> Any:
    """Replace every secret sentinel with `[secret]`, recursively; sort mapping keys.

    The SDK serialises some inputs in set order (it varies with the hash seed), so keys are
    sorted to make the plan byte-identical across processes.
    """
    if _is_secret(value):
        return SECRET_MARK
    if isinstance(value, dict):
        return {k: redact(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _random_secret(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(pysecrets.choice(alphabet) for _ in range(length))


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# The IDs Google gives the compute resources the offline plan mocks.
_COMPUTE_IDS = {
    "gcp:compute/network:Network": "projects/{p}/global/networks/{name}",
    "gcp:compute/subnetwork:Subnetwork": "projects/{p}/regions/{r}/subnetworks/{name}",
    "gcp:compute/address:Address": "projects/{p}/regions/{r}/addresses/{name}",
    "gcp:compute/globalAddress:GlobalAddress": "projects/{p}/global/addresses/{name}",
    "gcp:compute/router:Router": "projects/{p}/regions/{r}/routers/{name}",
}


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    depends_on: list[str]
    inputs: dict[str, Any]
    protect: bool = False


def _make_mocks(project: str, region: str) -> Any:
    """An `OfflineMocks` instance (built lazily: importing pulumi costs ~0.3 s)."""
    from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks

    class OfflineMocks(Mocks):
        """Deterministic fake state for every resource and invoke the program uses.

        `generated` collects every secret value the mocks invent (passwords, keys), so
        tests can prove none of them reaches the plan.
        """

        def __init__(self) -> None:
            self.generated: list[str] = []
            self.lock = threading.Lock()

        def _secret(self, length: int) -> str:
            value = _random_secret(length)
            with self.lock:
                self.generated.append(value)
            return value

        def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
            tok = args.token
            if tok == "gcp:organizations/getProject:getProject":
                pid = args.args.get("projectId") or project
                return {
                    "projectId": pid,
                    "number": MOCK_PROJECT_NUMBER,
                    "name": pid,
                    "id": f"projects/{pid}",
                }, []
            if tok == "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
                email = f"service-{MOCK_PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"
                return {
                    "emailAddress": email,
                    "member": f"serviceAccount:{email}",
                    "project": args.args.get("project") or project,
                    "id": email,
                }, []
            # An unmocked invoke would silently return nothing and hide a real bug.
            raise NotImplementedError(f"plan --offline has no mock for invoke {tok}")

        def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
            inputs = {k: _unwrap(v) for k, v in args.inputs.items()}
            state: dict[str, Any] = dict(args.inputs)
            typ, name = args.typ, inputs.get("name") or args.name
            p = inputs.get("project") or project
            r = inputs.get("region") or inputs.get("location") or region
            rid: str = f"{name}-id"
            if typ == "random:index/randomPassword:RandomPassword":
                state["result"] = self._secret(int(inputs.get("length", 32)))
                rid = "none"
            elif typ in _COMPUTE_IDS:
                rid = _COMPUTE_IDS[typ].format(p=p, r=r, name=name)
                if typ.endswith(("etwork:Network", "etwork:Subnetwork")):
                    state["selfLink"] = f"https://www.googleapis.com/compute/v1/{rid}"
                elif typ.endswith("Address"):
                    state["address"] = MOCK_INGRESS_IP if "/address:" in typ else MOCK_PSA_ADDRESS
            elif typ == "gcp:container/cluster:Cluster":
                rid = f"projects/{p}/locations/{r}/clusters/{name}"
                cpe = dict(inputs.get("controlPlaneEndpointsConfig") or {})
                dns = dict(cpe.get("dnsEndpointConfig") or {})
                dns["endpoint"] = f"gke-{_short_hash(rid)}-{MOCK_PROJECT_NUMBER}.{r}.gke.goog"
                cpe["dnsEndpointConfig"] = dns
                state["controlPlaneEndpointsConfig"] = cpe
                state["endpoint"] = "192.0.2.2"
                state["masterAuth"] = {
                    "clusterCaCertificate": base64.b64encode(_FAKE_PEM.encode()).decode()
                }
            elif typ == "gcp:sql/databaseInstance:DatabaseInstance":
                rid = str(name)
                state["connectionName"] = f"{p}:{r}:{name}"
                state["privateIpAddress"] = MOCK_SQL_PRIVATE_IP
                state["serverCaCerts"] = [{"cert": _FAKE_PEM, "commonName": "mock-ca"}]
                # the per-project Cloud SQL service agent (its real form)
                state["serviceAccountEmailAddress"] = (
                    f"p{MOCK_PROJECT_NUMBER}-abcdef@gcp-sa-cloud-sql.iam.gserviceaccount.com"
                )
            elif typ == "gcp:serviceaccount/account:Account":
                email = f"{inputs['accountId']}@{p}.iam.gserviceaccount.com"
                rid = f"projects/{p}/serviceAccounts/{email}"
                state.update(email=email, name=rid, member=f"serviceAccount:{email}")
            elif typ == "gcp:serviceaccount/key:Key":
                fake_key = {
                    "type": "service_account",
                    "project_id": p,
                    "private_key_id": self._secret(40),
                    "private_key": "-----BEGIN PRIVATE KEY-----\n"
                    + self._secret(64)
                    + "\n-----END PRIVATE KEY-----\n",
                    "client_email": f"mock@{p}.iam.gserviceaccount.com",
                }
                state["privateKey"] = base64.b64encode(json.dumps(fake_key).encode()).decode()
                rid = f"{inputs.get('serviceAccountId')}/keys/mock"
            elif typ == "gcp:kms/keyRing:KeyRing":
                rid = f"projects/{p}/locations/{inputs.get('location')}/keyRings/{name}"
            elif typ == "gcp:kms/cryptoKey:CryptoKey":
                rid = f"{inputs.get('keyRing')}/cryptoKeys/{name}"
            elif typ == "gcp:secretmanager/secret:Secret":
                rid = f"projects/{p}/secrets/{inputs['secretId']}"
                state["name"] = f"projects/{MOCK_PROJECT_NUMBER}/secrets/{inputs['secretId']}"
            elif typ == "gcp:secretmanager/secretVersion:SecretVersion":
                rid = f"{inputs.get('secret')}/versions/1"
                state["name"] = rid
            elif typ == "gcp:projects/iAMCustomRole:IAMCustomRole":
                rid = f"projects/{p}/roles/{inputs['roleId']}"
                state["name"] = rid
            elif typ == "gcp:artifactregistry/repository:Repository":
                rid = f"projects/{p}/locations/{r}/repositories/{inputs['repositoryId']}"
                state["name"] = inputs["repositoryId"]
            elif typ == "gcp:projects/serviceIdentity:ServiceIdentity":
                agent = _SERVICE_AGENTS.get(str(inputs["service"]), "gcp-sa-unknown")
                email = f"service-{MOCK_PROJECT_NUMBER}@{agent}.iam.gserviceaccount.com"
                state.update(email=email, member=f"serviceAccount:{email}")
                rid = f"projects/{p}/services/{inputs['service']}"
            elif typ == "gcp:storage/bucket:Bucket":
                rid = str(name)
                state["url"] = f"gs://{name}"
            elif typ == "gcp:dns/managedZone:ManagedZone":
                rid = f"projects/{p}/managedZones/{name}"
                state["nameServers"] = list(MOCK_NAME_SERVERS)
            elif typ == "gcp:dns/recordSet:RecordSet":
                rid = f"projects/{p}/managedZones/{inputs.get('managedZone')}/rrsets/{name}/A"
            elif typ == "gcp:iam/workloadIdentityPool:WorkloadIdentityPool":
                pool = inputs["workloadIdentityPoolId"]
                rid = (
                    f"projects/{MOCK_PROJECT_NUMBER}/locations/global/workloadIdentityPools/{pool}"
                )
                state["name"] = rid
            elif typ == "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider":
                pool = inputs["workloadIdentityPoolId"]
                prov = inputs["workloadIdentityPoolProviderId"]
                rid = (
                    f"projects/{MOCK_PROJECT_NUMBER}/locations/global/workloadIdentityPools/"
                    f"{pool}/providers/{prov}"
                )
                state["name"] = rid
            elif typ == "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig":
                # Google derives the ID from the display name and appends a random suffix
                display = str(inputs.get("displayName", args.name))
                slug = re.sub(r"[^a-z0-9]+", "-", display.lower()).strip("-")
                check_id = f"{slug}-{_short_hash(display)}"
                rid = f"projects/{p}/uptimeCheckConfigs/{check_id}"
                state.update(uptimeCheckId=check_id, name=rid)
            elif typ == "gcp:monitoring/notificationChannel:NotificationChannel":
                rid = f"projects/{p}/notificationChannels/{_short_hash(args.name)}"
                state["name"] = rid
            elif typ == "gcp:monitoring/alertPolicy:AlertPolicy":
                rid = f"projects/{p}/alertPolicies/{_short_hash(args.name)}"
                state["name"] = rid
            elif typ == "gcp:monitoring/dashboard:Dashboard":
                rid = f"projects/{MOCK_PROJECT_NUMBER}/dashboards/{_short_hash(args.name)}"
            return rid, state

    return OfflineMocks()


def _make_monitor(mocks: Any) -> Any:
    from pulumi.runtime import rpc
    from pulumi.runtime.mocks import MockMonitor
    from pulumi.runtime.settings import get_project, get_stack

    class RecordingMonitor(MockMonitor):
        """A MockMonitor that also keeps what the engine would see: parent and dependencies."""

        def __init__(self, mocks: Any) -> None:
            super().__init__(mocks)
            self.registrations: list[Registration] = []
            self._lock = threading.Lock()

        def make_urn(self, parent: str, type_: str, name: str) -> str:
            # As the engine does: the parent's whole type chain, minus the root stack
            # (MockMonitor keeps only the last parent type, and keeps the stack's).
            if parent:
                qualified = parent.split("::")[2]
                if qualified != _STACK_TYPE:
                    type_ = f"{qualified}${type_}"
            return "urn:pulumi:" + "::".join([get_stack(), get_project(), type_, name])

        def RegisterResource(self, request: Any) -> Any:
            response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
            if request.type != _STACK_TYPE:
                reg = Registration(
                    urn=self.make_urn(request.parent, request.type, request.name),
                    type=request.type,
                    name=request.name,
                    custom=bool(request.custom),
                    parent=request.parent or None,
                    depends_on=sorted(set(request.dependencies)),
                    inputs=rpc.deserialize_properties(request.object),
                    protect=bool(request.protect),
                )
                with self._lock:
                    self.registrations.append(reg)
            return response

    return RecordingMonitor(mocks)


@dataclass
class MockRun:
    """What one mocked run of the program produced."""

    registrations: list[Registration]
    outputs: dict[str, Any]  # export key -> plain value (secrets included, for InfraOutputs)
    secret_outputs: set[str]
    generated_secrets: list[str] = field(default_factory=list)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: importing pulumi_gcp creates ~10^5 objects and each collection
    walks all of them again (a quarter of the plan's CPU time). Nothing here needs it, nor
    the renders and estimates that follow a run in the same command."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_exit_hook_registered = False


def _cheap_exit() -> None:
    """At interpreter exit, skip the final collection over pulumi_gcp's object graph
    (~0.9 s of CPU for a CLI run that is already done). Live objects are still freed."""
    global _exit_hook_registered
    if not _exit_hook_registered:
        atexit.register(gc.freeze)
        _exit_hook_registered = True


def run_program(cfg: DeploymentConfig) -> MockRun:
    """Run `pulumi_program.program.build(cfg)` under mocks on a fresh thread."""
    _cheap_exit()
    with gc_paused():
        run = _run_on_thread(cfg)
        _freeze_once()
        return run


_frozen = False


def _freeze_once() -> None:
    """After the first run in a process, move what exists (mostly pulumi_gcp's modules and
    classes, which live as long as the process) out of the collector's reach: otherwise
    the first collection after the pause walks all of it (~0.1 s). Once per process, so
    at most one run's leftovers are kept past their time."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


def _run_on_thread(cfg: DeploymentConfig) -> MockRun:
    # A fresh thread each time: the mocks and Pulumi's event loop are per-thread state.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="zenml-gcp-gitops-plan") as pool:
        return pool.submit(_run_in_thread, cfg).result()


def _run_in_thread(cfg: DeploymentConfig) -> MockRun:
    import asyncio

    import pulumi
    from pulumi.runtime import set_mocks
    from pulumi.runtime.stack import run_pulumi_func

    from .lazy_gcp import install
    from .resources import program_package

    install()  # only the pulumi_gcp modules the program names
    program_package()  # registers `zenml_gcp_gitops.pulumi_program`, wheel or checkout
    from importlib import import_module

    program = import_module("zenml_gcp_gitops.pulumi_program.program")

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    mocks = _make_mocks(cfg.project, cfg.region)
    monitor = _make_monitor(mocks)
    set_mocks(
        mocks,
        project=cfg.names.pulumi_project,
        stack=cfg.names.pulumi_stack,
        preview=False,
        monitor=monitor,
    )
    values: dict[str, Any] = {}
    secret_keys: set[str] = set()

    async def main() -> None:
        outs = program.build(cfg)
        for key, out in outs.items():
            assert isinstance(out, pulumi.Output)
            values[key] = await out.future()
            if await out.is_secret():
                secret_keys.add(key)

    try:
        loop.run_until_complete(run_pulumi_func(main))
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    stack_urns = {
        r.parent
        for r in monitor.registrations
        if r.parent and r.parent.split("::")[2] == _STACK_TYPE
    }
    regs = []
    for reg in monitor.registrations:
        reg.parent = None if reg.parent in stack_urns else reg.parent
        reg.depends_on = [d for d in reg.depends_on if d not in stack_urns]
        regs.append(reg)
    regs.sort(key=lambda r: r.urn)
    return MockRun(regs, values, secret_keys, list(mocks.generated))


def _infra_outputs(cfg: DeploymentConfig, run: MockRun) -> InfraOutputs:
    from .outputs import InfraOutputs

    return InfraOutputs.from_mapping(dict(run.outputs), source="offline outputs")


def offline_outputs(cfg: DeploymentConfig) -> InfraOutputs:
    """The infra outputs a deploy would produce, with fake computed values (no cloud)."""
    return _infra_outputs(cfg, run_program(cfg))


def _resource_entry(reg: Registration) -> dict[str, Any]:
    return {
        "urn": reg.urn,
        "type": reg.type,
        "name": reg.name,
        "inputs": redact(reg.inputs),
        "parent": reg.parent,
        "depends_on": reg.depends_on,
    }


def plan_from_run(
    cfg: DeploymentConfig,
    run: MockRun,
    prices: PriceBook | None = None,
    measured: Measured | None = None,
) -> dict[str, Any]:
    outputs = _infra_outputs(cfg, run)
    public = outputs.public_dict()
    for key in run.secret_outputs:
        if public.get(key) is not None:
            public[key] = SECRET_MARK
    resources = [
        _resource_entry(r) for r in run.registrations if not r.type.startswith("pulumi:providers:")
    ]
    from .gitops.render import render

    rendered = render(cfg, outputs)  # once, for the argocd section and the estimates
    return {
        "version": PLAN_VERSION,
        "config": cfg.redacted(),
        "resources": resources,
        "outputs": public,
        "argocd": _argocd_section(cfg, outputs, rendered),
        "zenml_stack": _zenml_stack_section(cfg, outputs),
        **estimates(cfg, outputs, resources, prices, rendered, measured),
    }


def estimates(
    cfg: DeploymentConfig,
    outputs: InfraOutputs,
    resources: list[dict[str, Any]],
    prices: PriceBook | None = None,
    rendered: Rendered | None = None,
    measured: Measured | None = None,
) -> dict[str, Any]:
    """The `cost` and `duration` sections: monthly cost and first-deploy time of this plan.
    `measured`: durations of this deployment's last deploy, preferred over typical ones."""
    from .estimate.cost import estimate_cost
    from .estimate.graph import estimate_duration
    from .estimate.prices import snapshot_prices
    from .gitops.database_free import database_apps, overlap_possible
    from .gitops.render import render

    if rendered is None:
        rendered = render(cfg, outputs)
    book = prices if prices is not None else snapshot_prices(cfg.region)
    keys = {a.name: a.key for a in rendered.apps}
    return {
        "cost": estimate_cost(cfg, resources, rendered, book),
        "duration": estimate_duration(
            resources,
            [a.manifest for a in rendered.apps],
            keys,
            dns_wait=cfg.names.dns_zone is not None,
            new_zone=cfg.create_dns_zone,
            dns01=cfg.acme_challenge == "dns01" and cfg.names.dns_zone is not None,
            db_apps=database_apps(rendered, outputs),
            measured=measured,
            overlap=overlap_possible(cfg),
        ),
    }


def database_apps(rendered: Rendered, outputs: InfraOutputs) -> list[str]:
    from .gitops.database_free import database_apps as apps

    return apps(rendered, outputs)


def offline_plan(
    cfg: DeploymentConfig, prices: PriceBook | None = None, measured: Measured | None = None
) -> dict[str, Any]:
    """The plan contract (see docs/infra.md): what a deploy would create, without a cloud.

    `prices` defaults to the shipped snapshot for the config's region; `measured`: the
    durations of this deployment's last deploy (its record), preferred over typical ones."""
    return plan_from_run(cfg, run_program(cfg), prices, measured)


def _argocd_section(
    cfg: DeploymentConfig, outputs: InfraOutputs, rendered: Rendered | None = None
) -> dict[str, Any]:
    try:
        from .gitops.render import argocd_plan
    except (ImportError, AttributeError):
        return {}  # TODO(integration): gitops.render.argocd_plan lands with issue 4
    result: dict[str, Any] = argocd_plan(cfg, outputs, rendered)
    return result


def _zenml_stack_section(cfg: DeploymentConfig, outputs: InfraOutputs) -> dict[str, Any]:
    try:
        from .phases.register import zenml_stack_plan
    except (ImportError, AttributeError):
        return {}  # TODO(integration): phases.register.zenml_stack_plan lands with issue 5
    result: dict[str, Any] = zenml_stack_plan(cfg, outputs)
    return result
