"""How long a first deploy takes: typical creation times, the critical path, the sync waves.

`CREATE_TIMES` is the one table of typical creation times per resource type, each row with
its basis. The first-deploy estimate is the longest path through the deploy's step graph
(`estimate.graph`: the plan's resources, the Argo CD install and sync waves, the phases).
`deploy` records real durations per resource type from the engine's events and per sync
wave; `status` sets them against this table so it can be corrected, and `plan` uses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_COMPONENT_PREFIX = "zenml-gcp-gitops:"


@dataclass(frozen=True)
class Typical:
    min_s: float
    max_s: float
    source: str


_API = "typical API latency of a create call"
CREATE_TIMES: dict[str, Typical] = {
    "gcp:container/cluster:Cluster": Typical(
        360, 540, "GKE Autopilot regional cluster: control plane and first nodes, ~6-9 min"
    ),
    "gcp:sql/databaseInstance:DatabaseInstance": Typical(
        480, 720, "Cloud SQL MySQL instance with private IP, ~8-12 min"
    ),
    "gcp:servicenetworking/connection:Connection": Typical(
        30, 120, "private services access peering, ~0.5-2 min"
    ),
    "gcp:projects/service:Service": Typical(5, 60, "enabling an API, seconds to a minute"),
    "gcp:compute/network:Network": Typical(20, 45, "VPC create operation"),
    "gcp:compute/subnetwork:Subnetwork": Typical(15, 40, "subnet create operation"),
    "gcp:compute/router:Router": Typical(10, 25, "Cloud Router create operation"),
    "gcp:compute/routerNat:RouterNat": Typical(20, 60, "Cloud NAT config update on the router"),
    "gcp:compute/address:Address": Typical(5, 15, _API),
    "gcp:compute/globalAddress:GlobalAddress": Typical(10, 20, _API),
    "gcp:kms/keyRing:KeyRing": Typical(1, 5, _API),
    "gcp:kms/cryptoKey:CryptoKey": Typical(1, 5, _API),
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": Typical(5, 15, "IAM policy read-modify-write"),
    "gcp:secretmanager/secret:Secret": Typical(1, 3, _API),
    "gcp:secretmanager/secretVersion:SecretVersion": Typical(1, 3, _API),
    "gcp:secretmanager/secretIamMember:SecretIamMember": Typical(3, 10, "IAM policy update"),
    "random:index/randomPassword:RandomPassword": Typical(0, 1, "local, no API call"),
    "gcp:serviceaccount/account:Account": Typical(
        2, 10, "service account create (IAM is eventually consistent)"
    ),
    "gcp:serviceaccount/iAMMember:IAMMember": Typical(5, 15, "IAM policy update"),
    "gcp:serviceaccount/key:Key": Typical(2, 5, _API),
    "gcp:projects/iAMMember:IAMMember": Typical(5, 20, "project IAM policy update"),
    "gcp:projects/iAMCustomRole:IAMCustomRole": Typical(2, 5, _API),
    "gcp:storage/bucket:Bucket": Typical(2, 5, _API),
    "gcp:storage/bucketIAMMember:BucketIAMMember": Typical(3, 10, "IAM policy update"),
    "gcp:artifactregistry/repository:Repository": Typical(5, 15, _API),
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": Typical(
        3, 10, "IAM policy update"
    ),
    "gcp:sql/database:Database": Typical(5, 20, "Cloud SQL operation"),
    "gcp:sql/user:User": Typical(5, 20, "Cloud SQL operation"),
    "gcp:iam/workloadIdentityPool:WorkloadIdentityPool": Typical(5, 15, _API),
    "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider": Typical(5, 15, _API),
    "gcp:dns/managedZone:ManagedZone": Typical(5, 15, _API),
    "gcp:dns/recordSet:RecordSet": Typical(5, 30, "Cloud DNS change, until it is done"),
    "gcp:dns/dnsManagedZoneIamMember:DnsManagedZoneIamMember": Typical(3, 10, "IAM policy update"),
    "gcp:projects/serviceIdentity:ServiceIdentity": Typical(
        2, 10, "service agent lookup or creation (generateServiceIdentity)"
    ),
    "gcp:projects/iAMAuditConfig:IAMAuditConfig": Typical(5, 20, "project IAM policy update"),
    "gcp:binaryauthorization/policy:Policy": Typical(2, 10, _API),
    # Cloud Monitoring configs are plain API writes (no long-running operation)
    "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig": Typical(2, 10, _API),
    "gcp:monitoring/alertPolicy:AlertPolicy": Typical(2, 10, _API),
    "gcp:monitoring/notificationChannel:NotificationChannel": Typical(2, 10, _API),
    "gcp:monitoring/dashboard:Dashboard": Typical(2, 10, _API),
}
DEFAULT_TIME = Typical(2, 30, "no entry in the table: a generic API call")

_SQL = "gcp:sql/databaseInstance:DatabaseInstance"
# What the instance's shape adds to the ZONAL figure above. Google publishes no creation
# times: these are allowances, and `status` sets recorded runs against them.
SQL_SHAPE_EXTRA: dict[str, Typical] = {
    "REGIONAL": Typical(
        180, 360, "REGIONAL (HA): a standby in a second zone is created and kept in sync"
    ),
    "CMEK": Typical(
        30, 120, "CMEK: the disks and backups are created encrypted with the customer's key"
    ),
}

# After infra: phases and Argo CD apps, run one after another.
PHASE_TIMES: dict[str, Typical] = {
    "preflight": Typical(
        15, 90, "checks plus state bucket and key (Pulumi CLI install adds ~30 s)"
    ),
    "argocd_install": Typical(60, 180, "Argo CD install manifest until its Deployments are ready"),
    "dns_wait": Typical(
        0, 600, "public resolution of new records in an existing zone (TTL 300 s, caches)"
    ),
    # a new zone resolves only once the registrar delegates to it: the deploy waits at most
    # RunOptions.dns_wait_timeout (900 s) and then stops with what to fix
    "dns_delegation": Typical(0, 900, "a new zone: registrar NS delegation, bounded by the wait"),
    # DNS-01: cert-manager waits until the TXT record is seen on the zone's name servers,
    # then the ACME server checks it, once per host
    "dns01": Typical(60, 300, "ACME DNS-01: TXT record propagation and the ACME check"),
    "register": Typical(15, 60, "ZenML API calls"),
    "ci": Typical(5, 30, "service account, API key, Secret Manager"),
}
APP_TIMES: dict[str, Typical] = {
    "external_secrets": Typical(45, 120, "operator Deployments and CRDs"),
    "cert_manager": Typical(45, 120, "operator Deployments and CRDs"),
    "ingress_nginx": Typical(60, 240, "controller plus its L4 load balancer"),
    "platform": Typical(150, 480, "Gateway load balancer provisioning and certificate issuance"),
    "workloads": Typical(10, 60, "namespaces, service accounts, ExternalSecrets"),
    "zenml_server": Typical(90, 240, "image pull, database migration, readiness"),
    "mlflow": Typical(60, 180, "image pull, schema creation, readiness"),
}


def typical(type_token: str) -> Typical:
    return CREATE_TIMES.get(type_token, DEFAULT_TIME)


def typical_of(resource: dict[str, Any]) -> Typical:
    """The typical time of one planned resource: its type's row, plus what its shape adds
    (a REGIONAL or CMEK Cloud SQL instance)."""
    base = typical(resource["type"])
    if resource["type"] != _SQL:
        return base
    inputs = resource.get("inputs") or {}
    extras = []
    if (inputs.get("settings") or {}).get("availabilityType") == "REGIONAL":
        extras.append(SQL_SHAPE_EXTRA["REGIONAL"])
    if inputs.get("encryptionKeyName"):
        extras.append(SQL_SHAPE_EXTRA["CMEK"])
    if not extras:
        return base
    return Typical(
        base.min_s + sum(e.min_s for e in extras),
        base.max_s + sum(e.max_s for e in extras),
        "; ".join([base.source, *(f"+{e.min_s:g}-{e.max_s:g} s {e.source}" for e in extras)]),
    )


def _graph(
    resources: list[dict[str, Any]],
) -> tuple[dict[str, dict[str, Any]], dict[str, set[str]]]:
    """Custom resources and their dependencies, a component dependency expanded to all the
    component's custom descendants (the engine waits for those)."""
    by_urn = {r["urn"]: r for r in resources}
    custom = {u: r for u, r in by_urn.items() if not r["type"].startswith(_COMPONENT_PREFIX)}
    descendants: dict[str, set[str]] = {}
    for urn in custom:
        parent: str | None = by_urn[urn].get("parent")
        while parent is not None and parent in by_urn:
            descendants.setdefault(parent, set()).add(urn)
            parent = by_urn[parent].get("parent")
    deps: dict[str, set[str]] = {}
    for urn, r in custom.items():
        out: set[str] = set()
        for d in r.get("depends_on") or []:
            if d in custom:
                out.add(d)
            else:
                out |= descendants.get(d, set())
        out.discard(urn)
        deps[urn] = out
    return custom, deps


def _longest(
    custom: dict[str, dict[str, Any]], deps: dict[str, set[str]], weight: str
) -> tuple[float, list[str]]:
    finish: dict[str, float] = {}
    via: dict[str, str | None] = {}

    def visit(urn: str, stack: frozenset[str]) -> float:
        if urn in finish:
            return finish[urn]
        best, best_dep = 0.0, None
        for d in sorted(deps.get(urn, ())):
            if d in stack:  # a cycle cannot occur in a valid plan; never loop on one
                continue
            t = visit(d, stack | {urn})
            if t > best:
                best, best_dep = t, d
        finish[urn] = best + getattr(typical_of(custom[urn]), weight)
        via[urn] = best_dep
        return finish[urn]

    for urn in sorted(custom):
        visit(urn, frozenset())
    if not finish:
        return 0.0, []
    end = max(sorted(finish), key=lambda u: finish[u])
    path = [end]
    while via.get(path[-1]):
        path.append(str(via[path[-1]]))
    return finish[end], list(reversed(path))


def infra_critical_path(resources: list[dict[str, Any]]) -> dict[str, Any]:
    custom, deps = _graph(resources)
    low, _ = _longest(custom, deps, "min_s")
    high, path = _longest(custom, deps, "max_s")
    steps = []
    for urn in path:
        t = typical_of(custom[urn])
        steps.append(
            {
                "urn": urn,
                "type": custom[urn]["type"],
                "name": custom[urn]["name"],
                "min_s": t.min_s,
                "max_s": t.max_s,
                "source": t.source,
            }
        )
    return {"min_s": low, "max_s": high, "critical_path": steps}


def _range(t: Typical) -> dict[str, float]:
    return {"min_s": t.min_s, "max_s": t.max_s}


# --------------------------------------------------------------------------- real runs


def summarize(samples: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Per resource type: how many were created or updated, the mean and the longest.

    A list of rows, not a mapping by type: the record scrubs values under secret-looking
    keys, and type tokens such as `...:RandomPassword` look like one."""
    return [
        {
            "type": t,
            "count": len(v),
            "min_s": round(min(v), 2),
            "mean_s": round(sum(v) / len(v), 2),
            "max_s": round(max(v), 2),
        }
        for t, v in sorted(samples.items())
        if v
    ]


def compare(
    recorded: list[dict[str, Any]], shapes: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Recorded durations per type against the table: `slower`/`faster` mark rows to fix.
    `shapes`: a planned resource per type (its inputs), so a type's shape extras count."""
    rows = []
    for real in sorted(recorded, key=lambda r: str(r.get("type"))):
        type_token = str(real.get("type"))
        shape = (shapes or {}).get(type_token)
        t = typical_of({**shape, "type": type_token}) if shape else typical(type_token)
        longest = float(real.get("max_s", 0))
        verdict = "slower" if longest > t.max_s else "faster" if longest < t.min_s else "within"
        rows.append(
            {
                "type": type_token,
                "count": int(real.get("count", 0)),
                "mean_s": real.get("mean_s"),
                "max_s": longest,
                "estimate_min_s": t.min_s,
                "estimate_max_s": t.max_s,
                "verdict": verdict,
            }
        )
    return rows


def fmt_duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def sql_shape(availability: str, cmek: bool) -> dict[str, dict[str, Any]]:
    """The Cloud SQL instance's shape as `compare` takes it."""
    inputs: dict[str, Any] = {"settings": {"availabilityType": availability}}
    if cmek:
        inputs["encryptionKeyName"] = "(customer-managed)"
    return {_SQL: {"inputs": inputs}}
