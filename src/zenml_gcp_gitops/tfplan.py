"""Convert the offline plan into Terraform's plan JSON, for scanners that read that format.

pulumi-gcp is bridged from the Terraform google provider, so every resource and every
attribute has a Terraform twin: `gcp:storage/bucket:Bucket` is `google_storage_bucket` and
`uniformBucketLevelAccess` is `uniform_bucket_level_access`. Two things differ in spelling
only and are mapped here:

- the type token: `TYPES` names the Terraform type of every resource the program creates
  (an unknown type is an error, so a new resource cannot slip past a scan unnoticed);
- list blocks: the bridge pluralises a repeatable block (`lifecycle_rule` becomes
  `lifecycleRules`); `SINGULAR` undoes that.

Nested objects become one-element lists (how Terraform writes blocks), except map-typed
attributes such as labels, whose keys are user data and stay as they are. Property-level
references are not in the plan; the `depends_on` of each resource becomes the references of
its configuration entry, which is what a scanner's graph uses to connect resources.
"""

from __future__ import annotations

import re
from typing import Any

TERRAFORM_FORMAT_VERSION = "1.2"
TERRAFORM_VERSION = "1.9.0"  # the plan format this imitates; no Terraform binary is involved

TYPES: dict[str, str] = {
    "gcp:artifactregistry/repository:Repository": "google_artifact_registry_repository",
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": (
        "google_artifact_registry_repository_iam_member"
    ),
    "gcp:binaryauthorization/policy:Policy": "google_binary_authorization_policy",
    "gcp:compute/address:Address": "google_compute_address",
    "gcp:compute/globalAddress:GlobalAddress": "google_compute_global_address",
    "gcp:compute/network:Network": "google_compute_network",
    "gcp:compute/router:Router": "google_compute_router",
    "gcp:compute/routerNat:RouterNat": "google_compute_router_nat",
    "gcp:compute/subnetwork:Subnetwork": "google_compute_subnetwork",
    "gcp:container/cluster:Cluster": "google_container_cluster",
    "gcp:dns/dnsManagedZoneIamMember:DnsManagedZoneIamMember": "google_dns_managed_zone_iam_member",
    "gcp:dns/managedZone:ManagedZone": "google_dns_managed_zone",
    "gcp:dns/recordSet:RecordSet": "google_dns_record_set",
    "gcp:iam/workloadIdentityPool:WorkloadIdentityPool": "google_iam_workload_identity_pool",
    "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider": (
        "google_iam_workload_identity_pool_provider"
    ),
    "gcp:kms/cryptoKey:CryptoKey": "google_kms_crypto_key",
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": "google_kms_crypto_key_iam_member",
    "gcp:kms/keyRing:KeyRing": "google_kms_key_ring",
    "gcp:monitoring/alertPolicy:AlertPolicy": "google_monitoring_alert_policy",
    "gcp:monitoring/dashboard:Dashboard": "google_monitoring_dashboard",
    "gcp:monitoring/notificationChannel:NotificationChannel": "google_monitoring_notification_channel",
    "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig": "google_monitoring_uptime_check_config",
    "gcp:projects/iAMAuditConfig:IAMAuditConfig": "google_project_iam_audit_config",
    "gcp:projects/iAMCustomRole:IAMCustomRole": "google_project_iam_custom_role",
    "gcp:projects/iAMMember:IAMMember": "google_project_iam_member",
    "gcp:projects/service:Service": "google_project_service",
    "gcp:projects/serviceIdentity:ServiceIdentity": "google_project_service_identity",
    "gcp:secretmanager/secret:Secret": "google_secret_manager_secret",
    "gcp:secretmanager/secretIamMember:SecretIamMember": "google_secret_manager_secret_iam_member",
    "gcp:secretmanager/secretVersion:SecretVersion": "google_secret_manager_secret_version",
    "gcp:serviceaccount/account:Account": "google_service_account",
    "gcp:serviceaccount/iAMMember:IAMMember": "google_service_account_iam_member",
    "gcp:serviceaccount/key:Key": "google_service_account_key",
    "gcp:servicenetworking/connection:Connection": "google_service_networking_connection",
    "gcp:sql/database:Database": "google_sql_database",
    "gcp:sql/databaseInstance:DatabaseInstance": "google_sql_database_instance",
    "gcp:sql/user:User": "google_sql_user",
    "gcp:storage/bucket:Bucket": "google_storage_bucket",
    "gcp:storage/bucketIAMMember:BucketIAMMember": "google_storage_bucket_iam_member",
    "random:index/randomPassword:RandomPassword": "random_password",
}

# Pulumi's plural name of a repeatable block -> the Terraform block name (snake_case).
SINGULAR: dict[str, str] = {
    "admissionWhitelistPatterns": "admission_whitelist_pattern",
    "auditLogConfigs": "audit_log_config",
    "clusterAdmissionRules": "cluster_admission_rules",
    "lifecycleRules": "lifecycle_rule",
    "secondaryIpRanges": "secondary_ip_range",
    "sourceIpRangesToNats": "source_ip_ranges_to_nat",
    "subnetworks": "subnetwork",
}

# Map-typed attributes: their keys are data (label names, OIDC claims), not attribute names.
MAPS: frozenset[str] = frozenset(
    {"labels", "resourceLabels", "userLabels", "attributeMapping", "annotations"}
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class UnmappedTypeError(ValueError):
    """A resource type with no Terraform twin in `TYPES`."""


def snake(name: str) -> str:
    """`uniformBucketLevelAccess` -> `uniform_bucket_level_access`."""
    return _CAMEL.sub("_", name).lower()


def tf_attribute(name: str) -> str:
    return SINGULAR.get(name) or snake(name)


def tf_values(value: Any) -> Any:
    """Pulumi inputs -> Terraform values: snake_case keys, nested objects as blocks."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key.startswith("__"):  # SDK bookkeeping such as `__defaults`
                continue
            if key in MAPS and isinstance(item, dict):
                out[tf_attribute(key)] = dict(item)
            elif isinstance(item, dict):
                out[tf_attribute(key)] = [tf_values(item)]
            else:
                out[tf_attribute(key)] = tf_values(item)
        return out
    if isinstance(value, list):
        return [tf_values(v) for v in value]
    return value


def _identifier(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def to_terraform_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan's cloud resources as a Terraform plan JSON document (all `create`)."""
    resources = [r for r in plan["resources"] if not r["type"].startswith("zenml-gcp-gitops:")]
    unknown = sorted({r["type"] for r in resources} - TYPES.keys())
    if unknown:
        raise UnmappedTypeError(f"no Terraform type for: {', '.join(unknown)}")
    by_urn = {r["urn"]: r for r in plan["resources"]}
    addresses: dict[str, str] = {}
    taken: set[str] = set()
    for r in resources:
        tf_type, name = TYPES[r["type"]], _identifier(r["name"])
        parent = by_urn.get(r.get("parent") or "")
        if f"{tf_type}.{name}" in taken and parent is not None:
            name = _identifier(f"{parent['name']}_{r['name']}")
        n, base = 2, name
        while f"{tf_type}.{name}" in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(f"{tf_type}.{name}")
        addresses[r["urn"]] = f"{tf_type}.{name}"

    planned: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    config: list[dict[str, Any]] = []
    for r in resources:
        address = addresses[r["urn"]]
        tf_type, name = address.split(".", 1)
        values = tf_values(r["inputs"])
        provider = "registry.terraform.io/hashicorp/" + tf_type.split("_", 1)[0]
        planned.append(
            {
                "address": address,
                "mode": "managed",
                "type": tf_type,
                "name": name,
                "provider_name": provider,
                "schema_version": 0,
                "values": values,
                "sensitive_values": {},
            }
        )
        changes.append(
            {
                "address": address,
                "mode": "managed",
                "type": tf_type,
                "name": name,
                "provider_name": provider,
                "change": {"actions": ["create"], "before": None, "after": values},
            }
        )
        refs = [addresses[d] for d in r.get("depends_on") or [] if d in addresses]
        config.append(
            {
                "address": address,
                "mode": "managed",
                "type": tf_type,
                "name": name,
                "provider_config_key": tf_type.split("_", 1)[0],
                "expressions": {},
                "depends_on": refs,
                "schema_version": 0,
            }
        )
    return {
        "format_version": TERRAFORM_FORMAT_VERSION,
        "terraform_version": TERRAFORM_VERSION,
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {"root_module": {"resources": config}},
    }
