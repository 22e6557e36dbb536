"""The Pulumi program under `pulumi.runtime.set_mocks`: every security property of issue 2.

Each config variant runs the real program once per module (about 0.15 s after the first
import) through `plan.run_program`, which records inputs exactly as the engine gets them.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from zenml_gcp_gitops.config import DeploymentConfig, build_config
from zenml_gcp_gitops.outputs import InfraOutputs
from zenml_gcp_gitops.plan import (
    MOCK_PROJECT_NUMBER,
    MockRun,
    Registration,
    _is_secret,
    offline_plan,
    run_program,
)

PROJECT, REGION = "acme-ml-prod", "europe-west4"

CLUSTER = "gcp:container/cluster:Cluster"
SQL = "gcp:sql/databaseInstance:DatabaseInstance"
BUCKET = "gcp:storage/bucket:Bucket"
PROJECT_IAM = "gcp:projects/iAMMember:IAMMember"
SA_IAM = "gcp:serviceaccount/iAMMember:IAMMember"
SECRET = "gcp:secretmanager/secret:Secret"
VERSION = "gcp:secretmanager/secretVersion:SecretVersion"

FORBIDDEN_PROJECT_ROLES = {
    "roles/owner",
    "roles/editor",
    "roles/storage.admin",
    "roles/container.admin",
    "roles/iam.serviceAccountUser",
    "roles/secretmanager.admin",
    "roles/iam.securityAdmin",
    "roles/resourcemanager.projectIamAdmin",
}


def cfg_of(**overrides: Any) -> DeploymentConfig:
    return build_config(None, {"project": PROJECT, "region": REGION, **overrides})


@cache
def _run(key: str) -> MockRun:
    return run_program(cfg_of(**json.loads(key)))


def run(**overrides: Any) -> MockRun:
    return _run(json.dumps(overrides, sort_keys=True))


FULL = {
    "orchestrator": "vertex",
    "github_repo": "acme/ml-pipelines",
    "connector_auth": "service-account",
    "authorized_networks": ["198.51.100.0/24"],
    "deletion_protection": False,
    "force_destroy_buckets": True,
    "sql_availability": "REGIONAL",
}


def of_type(r: MockRun, token: str) -> list[Registration]:
    return [x for x in r.registrations if x.type == token]


def one(r: MockRun, token: str) -> Registration:
    found = of_type(r, token)
    assert len(found) == 1, f"expected one {token}, got {len(found)}"
    return found[0]


def walk(value: Any) -> Any:
    """Every scalar in a nested input value (secret sentinels count as opaque)."""
    if _is_secret(value):
        yield "[secret]"
    elif isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from walk(v)
    else:
        yield value


# --------------------------------------------------------------------------- outputs


def test_an_output_out_of_step_with_infra_outputs_fails_the_run() -> None:
    """The program exports InfraOutputs' field list: no second declaration to drift."""
    from zenml_gcp_gitops.resources import program_package

    program_package()
    from importlib import import_module

    program = import_module(program_package().__name__ + ".program")
    with pytest.raises(ValueError, match=r"unknown \['cluster_nam'\], missing \[.*'cluster_name'"):
        program.export_outputs({"cluster_nam": None})


def test_exports_every_infra_output_and_they_validate() -> None:
    r = run()
    expected = set(InfraOutputs.model_fields) - {"pipelines_sa_key"}
    assert set(r.outputs) == expected
    out = InfraOutputs.from_mapping(r.outputs)
    assert out.cluster_name == "zenml-gke"
    assert out.ingress_ip.startswith("203.0.113.")
    assert out.zenml_host == f"zenml.{out.ingress_ip}.nip.io"
    assert out.workload_identity_provider is None
    assert out.secret_ids == cfg_of().names.secrets
    assert r.secret_outputs == set()


def test_service_account_connector_exports_key_as_pulumi_secret() -> None:
    r = run(**FULL)
    assert "pipelines_sa_key" in r.outputs
    assert r.secret_outputs == {"pipelines_sa_key"}
    key = json.loads(r.outputs["pipelines_sa_key"])
    assert key["type"] == "service_account"
    # ...and it is stored in Secret Manager as a secret value, under our own ID
    versions = [v for v in of_type(r, VERSION) if v.name == "pipelines-sa-key-v"]
    assert versions and _is_secret(versions[0].inputs["secretData"])
    out = InfraOutputs.from_mapping(r.outputs)
    assert out.workload_identity_provider is not None
    assert out.workload_identity_provider.endswith("/providers/github")


def test_domain_changes_hostnames() -> None:
    out = InfraOutputs.from_mapping(run(domain="ml.example.com").outputs)
    assert (out.zenml_host, out.mlflow_host) == ("zenml.ml.example.com", "mlflow.ml.example.com")


# --------------------------------------------------------------------------- apis


def test_apis_enabled_and_everything_waits_for_them() -> None:
    r = run()
    services = {x.inputs["service"] for x in of_type(r, "gcp:projects/service:Service")}
    for api in (
        "compute",
        "container",
        "sqladmin",
        "servicenetworking",
        "secretmanager",
        "cloudkms",
        "artifactregistry",
        "iam",
        "iamcredentials",
        "cloudbuild",
    ):
        assert f"{api}.googleapis.com" in services
    assert "aiplatform.googleapis.com" not in services
    assert all(
        s.inputs["disableOnDestroy"] is False for s in of_type(r, "gcp:projects/service:Service")
    )
    container_api = next(
        x.urn for x in of_type(r, "gcp:projects/service:Service") if x.name == "container"
    )
    assert container_api in one(r, CLUSTER).depends_on
    sqladmin = next(
        x.urn for x in of_type(r, "gcp:projects/service:Service") if x.name == "sqladmin"
    )
    assert sqladmin in one(r, SQL).depends_on


# The Google API behind each pulumi-gcp resource module (and, for `projects`, each type).
API_OF_MODULE = {
    "artifactregistry": "artifactregistry",
    "binaryauthorization": "binaryauthorization",
    "compute": "compute",
    "container": "container",
    "dns": "dns",
    "iam": "iam",
    "kms": "cloudkms",
    "secretmanager": "secretmanager",
    "serviceaccount": "iam",
    "servicenetworking": "servicenetworking",
    "sql": "sqladmin",
    "monitoring": "monitoring",
    "storage": "storage",
    "projects/iAMMember": "cloudresourcemanager",
    "projects/iAMAuditConfig": "cloudresourcemanager",
    "projects/iAMCustomRole": "iam",
    "projects/service": "serviceusage",
    "projects/serviceIdentity": "serviceusage",
}


@pytest.mark.parametrize(
    "variant",
    [{}, FULL, {"binary_authorization": True, "domain": "ml.example.com", "create_dns_zone": True}],
)
def test_the_program_enables_every_api_it_calls(variant: dict[str, Any]) -> None:
    """Each resource's API, and Resource Manager for the project lookup (an invoke)."""
    r = run(**variant)
    services = {x.inputs["service"] for x in of_type(r, "gcp:projects/service:Service")}
    needed = {"cloudresourcemanager.googleapis.com"}  # gcp.organizations.get_project
    for x in r.registrations:
        pkg, _, rest = x.type.partition(":")
        if pkg != "gcp":
            continue
        module = rest.split(":")[0]
        api = API_OF_MODULE.get(module) or API_OF_MODULE[module.split("/")[0]]
        needed.add(f"{api}.googleapis.com")
    assert needed <= services, sorted(needed - services)


def test_vertex_enables_aiplatform_and_grants_it() -> None:
    r = run(orchestrator="vertex")
    services = {x.inputs["service"] for x in of_type(r, "gcp:projects/service:Service")}
    assert "aiplatform.googleapis.com" in services
    roles = {(x.inputs["role"], x.inputs["member"]) for x in of_type(r, PROJECT_IAM)}
    pipelines = cfg_of().names.sa_email("pipelines")
    assert ("roles/aiplatform.user", f"serviceAccount:{pipelines}") in roles


# --------------------------------------------------------------------------- network


def test_network_is_private_with_nat_psa_and_regional_ingress_ip() -> None:
    r = run()
    names = cfg_of().names
    vpc = one(r, "gcp:compute/network:Network")
    assert vpc.inputs["autoCreateSubnetworks"] is False
    subnets = {s.inputs["name"]: s.inputs for s in of_type(r, "gcp:compute/subnetwork:Subnetwork")}
    nodes = subnets[names.subnet]
    assert nodes["privateIpGoogleAccess"] is True
    assert {x["rangeName"] for x in nodes["secondaryIpRanges"]} == {
        names.pods_range,
        names.services_range,
    }
    proxy = subnets[names.proxy_subnet]
    assert (proxy["purpose"], proxy["role"]) == ("REGIONAL_MANAGED_PROXY", "ACTIVE")
    nat = one(r, "gcp:compute/routerNat:RouterNat")
    assert nat.inputs["name"] == names.nat
    psa = one(r, "gcp:compute/globalAddress:GlobalAddress")
    assert psa.inputs["purpose"] == "VPC_PEERING"
    conn = one(r, "gcp:servicenetworking/connection:Connection")
    assert conn.inputs["service"] == "servicenetworking.googleapis.com"
    ip = one(r, "gcp:compute/address:Address")
    assert ip.inputs["addressType"] == "EXTERNAL"
    assert ip.inputs["region"] == REGION  # regional: what gke-l7-regional-external-managed needs


def test_nginx_ingress_needs_no_proxy_only_subnet() -> None:
    r = run(ingress="nginx")
    names = cfg_of(ingress="nginx").names
    assert names.proxy_subnet not in {
        s.inputs["name"] for s in of_type(r, "gcp:compute/subnetwork:Subnetwork")
    }


# --------------------------------------------------------------------------- gke


def test_cluster_is_private_autopilot_on_a_release_channel() -> None:
    c = one(run(), CLUSTER).inputs
    assert c["enableAutopilot"] is True
    assert c["privateClusterConfig"]["enablePrivateNodes"] is True
    assert c["privateClusterConfig"]["enablePrivateEndpoint"] is True  # no authorized networks
    assert c["controlPlaneEndpointsConfig"]["dnsEndpointConfig"]["allowExternalTraffic"] is True
    assert c["masterAuthorizedNetworksConfig"]["cidrBlocks"] == []
    assert c["masterAuthorizedNetworksConfig"]["gcpPublicCidrsAccessEnabled"] is False
    assert c["releaseChannel"]["channel"] in {"REGULAR", "STABLE", "RAPID"}
    assert "minMasterVersion" not in c and "nodeVersion" not in c
    assert c["gatewayApiConfig"]["channel"] == "CHANNEL_STANDARD"
    assert c["ipAllocationPolicy"]["clusterSecondaryRangeName"] == cfg_of().names.pods_range
    assert c["workloadIdentityConfig"]["workloadPool"] == f"{PROJECT}.svc.id.goog"
    assert c["deletionProtection"] is True


def test_authorized_networks_open_only_those_cidrs() -> None:
    c = one(run(**FULL), CLUSTER).inputs
    assert c["privateClusterConfig"]["enablePrivateEndpoint"] is False
    assert [b["cidrBlock"] for b in c["masterAuthorizedNetworksConfig"]["cidrBlocks"]] == [
        "198.51.100.0/24"
    ]
    assert c["deletionProtection"] is False


@pytest.mark.parametrize("variant", [{}, FULL])
def test_nothing_is_ever_open_to_the_whole_internet(variant: dict[str, Any]) -> None:
    for reg in run(**variant).registrations:
        for value in walk(reg.inputs):
            assert value not in ("0.0.0.0/0", "::/0"), reg.urn


# --------------------------------------------------------------------------- database


def test_cloud_sql_private_tls_backups_pitr() -> None:
    r = run()
    sql = one(r, SQL).inputs
    assert sql["databaseVersion"].startswith("MYSQL_8")
    ipc = sql["settings"]["ipConfiguration"]
    assert ipc["ipv4Enabled"] is False
    assert ipc["sslMode"] == "ENCRYPTED_ONLY"
    assert ipc["privateNetwork"].endswith(f"/networks/{cfg_of().names.network}")
    assert "requireSsl" not in ipc and "authorizedNetworks" not in ipc
    backups = sql["settings"]["backupConfiguration"]
    assert backups["enabled"] is True and backups["binaryLogEnabled"] is True
    assert sql["settings"]["availabilityType"] == "ZONAL"
    assert sql["deletionProtection"] is True
    assert sql["settings"]["deletionProtectionEnabled"] is True
    psa = one(r, "gcp:servicenetworking/connection:Connection").urn
    assert psa in one(r, SQL).depends_on
    assert _is_secret(sql["rootPassword"])  # never an empty root password


def test_sql_availability_and_deletion_protection_follow_config() -> None:
    sql = one(run(**FULL), SQL).inputs
    assert sql["settings"]["availabilityType"] == "REGIONAL"
    assert sql["deletionProtection"] is False
    assert sql["settings"]["deletionProtectionEnabled"] is False


def test_one_database_and_one_user_per_app_with_secret_urlsafe_passwords() -> None:
    r = run()
    names = cfg_of().names
    dbs = sorted(d.inputs["name"] for d in of_type(r, "gcp:sql/database:Database"))
    # MLflow's users and permissions have their own database (not a file in the pod)
    assert dbs == sorted(names.databases.values()) == ["mlflow", "mlflow_auth", "zenml"]
    users = of_type(r, "gcp:sql/user:User")
    assert sorted(u.inputs["name"] for u in users) == sorted(names.sql_users.values())
    assert all(_is_secret(u.inputs["password"]) for u in users)
    for pw in of_type(r, "random:index/randomPassword:RandomPassword"):
        assert pw.inputs["special"] is False  # alphanumeric: safe in URLs without escaping
        assert pw.inputs["length"] >= 32
    # the generated values really are URL-safe
    assert r.generated_secrets and all(s.isalnum() for s in r.generated_secrets)


# --------------------------------------------------------------------------- storage, kms


@pytest.mark.parametrize("variant", [{}, FULL])
def test_buckets_private_versioned_cmek_and_never_delete_live_objects(
    variant: dict[str, Any],
) -> None:
    r = run(**variant)
    names = cfg_of(**variant).names
    key = one(r, "gcp:kms/cryptoKey:CryptoKey")
    assert key.inputs["rotationPeriod"].endswith("s")
    buckets = {b.inputs["name"]: b for b in of_type(r, BUCKET)}
    assert set(buckets) == {names.artifact_bucket, names.mlflow_bucket, names.backup_bucket}
    del buckets[names.backup_bucket]  # its exports expire: see the backup bucket's test
    [grant] = [
        g
        for g in of_type(r, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
        if g.inputs["member"].endswith("@gs-project-accounts.iam.gserviceaccount.com")
    ]
    assert grant.inputs["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    for b in buckets.values():
        i = b.inputs
        assert i["uniformBucketLevelAccess"] is True
        assert i["publicAccessPrevention"] == "enforced"
        assert i["versioning"]["enabled"] is True
        assert i["encryption"]["defaultKmsKeyName"].endswith(f"/cryptoKeys/{names.kms_key}")
        assert i["forceDestroy"] is bool(variant.get("force_destroy_buckets", False))
        assert grant.urn in b.depends_on  # the agent may use the key before the bucket exists
        for rule in i.get("lifecycleRules", []):
            if rule["action"]["type"] == "Delete":
                cond = rule["condition"]
                assert cond.get("withState") == "ARCHIVED"  # noncurrent versions only
                assert "age" not in cond


@pytest.mark.parametrize("variant", [{}, {"backup_retention_days": 90}])
def test_backup_bucket_is_versioned_cmek_expires_exports_and_only_the_sql_agent_writes(
    variant: dict[str, Any],
) -> None:
    r = run(**variant)
    cfg = cfg_of(**variant)
    names = cfg.names
    b = next(x for x in of_type(r, BUCKET) if x.inputs["name"] == names.backup_bucket)
    assert b.parent is not None and "zenml-gcp-gitops:infra:Backup" in b.parent
    i = b.inputs
    assert i["versioning"]["enabled"] is True
    assert i["uniformBucketLevelAccess"] is True and i["publicAccessPrevention"] == "enforced"
    assert i["encryption"]["defaultKmsKeyName"].endswith(f"/cryptoKeys/{names.kms_key}")
    conds = [rule["condition"] for rule in i["lifecycleRules"]]
    assert {"age": cfg.backup_retention_days, "withState": "LIVE"} in conds
    assert any(c.get("withState") == "ARCHIVED" for c in conds)
    [kms_grant] = [  # the GCS agent's grant (the other agents have their own)
        g
        for g in of_type(r, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
        if g.inputs["member"].endswith("@gs-project-accounts.iam.gserviceaccount.com")
    ]
    assert kms_grant.urn in b.depends_on  # CMEK usable before the bucket exists
    sql = one(r, SQL)
    agent = (
        "serviceAccount:p"
        + MOCK_PROJECT_NUMBER
        + "-abcdef@gcp-sa-cloud-sql.iam.gserviceaccount.com"
    )
    grants = [
        g
        for g in of_type(r, "gcp:storage/bucketIAMMember:BucketIAMMember")
        if g.inputs["member"] == agent
    ]
    assert [(g.inputs["bucket"], g.inputs["role"]) for g in grants] == [
        (names.backup_bucket, "roles/storage.objectAdmin")
    ]
    retention = sql.inputs["settings"]["backupConfiguration"]["backupRetentionSettings"]
    assert retention["retainedBackups"] == cfg.backup_retention_days
    out = r.outputs
    assert out["backup_bucket"] == names.backup_bucket


def test_ha_makes_cloud_sql_regional_and_keeps_pitr() -> None:
    sql = one(run(ha=True), SQL).inputs["settings"]
    assert sql["availabilityType"] == "REGIONAL"
    assert sql["backupConfiguration"]["binaryLogEnabled"] is True
    assert one(run(), SQL).inputs["settings"]["availabilityType"] == "ZONAL"


# --------------------------------------------------------------------------- registry


def test_registry_is_docker_with_cleanup_policies() -> None:
    repo = one(run(), "gcp:artifactregistry/repository:Repository").inputs
    assert repo["format"] == "DOCKER"
    policies = {p["id"]: p for p in repo["cleanupPolicies"]}
    keep = [p for p in policies.values() if p["action"] == "KEEP"]
    delete = [p for p in policies.values() if p["action"] == "DELETE"]
    assert keep[0]["mostRecentVersions"]["keepCount"] == cfg_of().registry_keep_versions
    assert delete[0]["condition"]["tagState"] == "UNTAGGED"
    assert repo["cleanupPolicyDryRun"] is False


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize("variant", [{}, FULL])
def test_no_broad_project_roles_and_no_authoritative_iam(variant: dict[str, Any]) -> None:
    r = run(**variant)
    for reg in r.registrations:
        assert not any(
            word in reg.type for word in ("IAMPolicy", "IamPolicy", "IAMBinding", "IamBinding")
        ), reg.type
    for m in of_type(r, PROJECT_IAM):
        assert m.inputs["role"] not in FORBIDDEN_PROJECT_ROLES, m.inputs
        assert not m.inputs["role"].startswith("roles/storage."), m.inputs


def test_one_service_account_per_workload() -> None:
    r = run()
    names = cfg_of().names
    ids = {a.inputs["accountId"] for a in of_type(r, "gcp:serviceaccount/account:Account")}
    assert ids == set(names.service_accounts.values()) | {names.node_service_account}
    assert "ci" not in names.service_accounts


def test_gke_nodes_use_their_own_account_not_the_compute_default() -> None:
    r = run()
    names = cfg_of().names
    email = f"{names.node_service_account}@{PROJECT}.iam.gserviceaccount.com"
    defaults = one(r, CLUSTER).inputs["clusterAutoscaling"]["autoProvisioningDefaults"]
    assert defaults["serviceAccount"] == email
    node_roles = {
        m.inputs["role"]
        for m in of_type(r, PROJECT_IAM)
        if m.inputs["member"] == f"serviceAccount:{email}"
    }
    assert node_roles == {"roles/container.defaultNodeServiceAccount"}
    pulls = [
        m.inputs
        for m in of_type(r, "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
        if m.inputs["member"] == f"serviceAccount:{email}"
    ]
    assert [(p["repository"], p["role"]) for p in pulls] == [
        (names.registry_repo, "roles/artifactregistry.reader")
    ]


def test_bucket_and_repository_roles_are_resource_level() -> None:
    r = run()
    names = cfg_of().names
    bucket_members = {
        (b.inputs["bucket"], b.inputs["member"])
        for b in of_type(r, "gcp:storage/bucketIAMMember:BucketIAMMember")
    }
    assert (
        names.artifact_bucket,
        f"serviceAccount:{names.sa_email('pipelines')}",
    ) in bucket_members
    assert (names.mlflow_bucket, f"serviceAccount:{names.sa_email('mlflow')}") in bucket_members
    # mlflow cannot touch ZenML artifacts, and pipelines cannot touch MLflow's bucket
    assert (
        names.artifact_bucket,
        f"serviceAccount:{names.sa_email('mlflow')}",
    ) not in bucket_members
    assert (
        names.mlflow_bucket,
        f"serviceAccount:{names.sa_email('pipelines')}",
    ) not in bucket_members
    repo = {
        m.inputs["member"]: m.inputs
        for m in of_type(r, "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    }[f"serviceAccount:{names.sa_email('pipelines')}"]
    assert repo["repository"] == names.registry_repo
    assert repo["role"] == "roles/artifactregistry.reader"


def test_cloudsql_client_only_for_db_clients_and_only_this_instance() -> None:
    r = run()
    names = cfg_of().names
    grants = [m for m in of_type(r, PROJECT_IAM) if m.inputs["role"] == "roles/cloudsql.client"]
    assert {g.inputs["member"] for g in grants} == {
        f"serviceAccount:{names.sa_email('zenml_server')}",
        f"serviceAccount:{names.sa_email('mlflow')}",
    }
    for g in grants:
        assert f"instances/{names.sql_instance}" in g.inputs["condition"]["expression"]


def test_zenml_secrets_store_roles_as_zenml_documents_them() -> None:
    r = run()
    names = cfg_of().names
    roles = {
        x.inputs["roleId"]: x.inputs for x in of_type(r, "gcp:projects/iAMCustomRole:IAMCustomRole")
    }
    creator = roles[names.secrets_store_roles["creator"]]
    editor = roles[names.secrets_store_roles["editor"]]
    assert creator["permissions"] == ["secretmanager.secrets.create"]
    assert sorted(editor["permissions"]) == sorted(
        [
            "secretmanager.secrets.get",
            "secretmanager.secrets.update",
            "secretmanager.versions.access",
            "secretmanager.versions.add",
            "secretmanager.secrets.delete",
        ]
    )
    server = f"serviceAccount:{names.sa_email('zenml_server')}"
    bindings = {
        m.inputs["role"].rsplit("/", 1)[-1]: m.inputs
        for m in of_type(r, PROJECT_IAM)
        if m.inputs["member"] == server and "/roles/" in m.inputs["role"]
    }
    assert "condition" not in bindings[names.secrets_store_roles["creator"]]
    cond = bindings[names.secrets_store_roles["editor"]]["condition"]
    assert cond["expression"] == (
        f'resource.name.startsWith("projects/{MOCK_PROJECT_NUMBER}/secrets/zenml-")'
    )


def test_workload_identity_binds_each_ksa_to_its_own_gsa() -> None:
    r = run()
    names = cfg_of().names
    wi = [b for b in of_type(r, SA_IAM) if b.inputs["role"] == "roles/iam.workloadIdentityUser"]
    pairs = {(b.inputs["serviceAccountId"].rsplit("/", 1)[-1], b.inputs["member"]) for b in wi}
    expected = {
        (names.sa_email("zenml_server"), names.workload_identity_member("zenml_server", "zenml")),
        (names.sa_email("mlflow"), names.workload_identity_member("mlflow", "mlflow")),
        (names.sa_email("pipelines"), names.workload_identity_member("pipelines", "pipelines")),
        (
            names.sa_email("external_secrets"),
            names.workload_identity_member("external_secrets", "external_secrets"),
        ),
    }
    assert pairs == expected
    cluster = one(r, CLUSTER).urn
    assert all(cluster in b.depends_on for b in wi)  # the identity pool exists with the cluster


def test_external_secrets_reads_only_the_secrets_it_syncs() -> None:
    r = run(**FULL)
    names = cfg_of(**FULL).names
    eso = f"serviceAccount:{names.sa_email('external_secrets')}"
    grants = of_type(r, "gcp:secretmanager/secretIamMember:SecretIamMember")
    assert grants and all(g.inputs["member"] == eso for g in grants)
    assert all(g.inputs["role"] == "roles/secretmanager.secretAccessor" for g in grants)
    read = {g.inputs["secretId"] for g in grants}
    assert names.secrets["pipelines_sa_key"] not in read
    assert names.secrets["ci_api_key"] not in read
    assert names.secrets["zenml_db_password"] in read


def test_github_repo_adds_ci_account_and_keyless_federation() -> None:
    r = run(**FULL)
    names = cfg_of(**FULL).names
    ids = {a.inputs["accountId"] for a in of_type(r, "gcp:serviceaccount/account:Account")}
    assert names.service_accounts["ci"] in ids
    provider = one(r, "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider").inputs
    assert provider["attributeCondition"] == "assertion.repository == 'acme/ml-pipelines'"
    assert provider["oidc"]["issuerUri"] == "https://token.actions.githubusercontent.com"
    ci_binding = [b for b in of_type(r, SA_IAM) if b.inputs["member"].startswith("principalSet://")]
    assert len(ci_binding) == 1
    assert ci_binding[0].inputs["member"].endswith("/attribute.repository/acme/ml-pipelines")
    assert ci_binding[0].inputs["serviceAccountId"].endswith(names.sa_email("ci"))
    # Vertex: CI and the connector identity may act as the pipelines account (jobs run as
    # it) and the build account (builds run as it) only, never project-wide
    acts = [b for b in of_type(r, SA_IAM) if b.inputs["role"] == "roles/iam.serviceAccountUser"]
    assert {a.inputs["serviceAccountId"].rsplit("/", 1)[-1] for a in acts} == {
        names.sa_email("pipelines"),
        names.sa_email("build"),
    }
    assert {a.inputs["member"] for a in acts} == {
        f"serviceAccount:{names.sa_email('ci')}",
        f"serviceAccount:{names.sa_email('pipelines')}",  # the connector's key is pipelines'
    }
    assert len(of_type(r, "gcp:serviceaccount/key:Key")) == 1


def test_without_github_repo_or_key_auth_there_is_no_ci_wif_or_key() -> None:
    r = run()
    assert not of_type(r, "gcp:iam/workloadIdentityPool:WorkloadIdentityPool")
    assert not of_type(r, "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider")
    assert not of_type(r, "gcp:serviceaccount/key:Key")


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("name", ["zenml", "zenml-prod", "team-a"])
def test_secret_ids_never_use_zenml_prefix(name: str) -> None:
    r = run(name=name, connector_auth="service-account")
    ids = [s.inputs["secretId"] for s in of_type(r, SECRET)]
    assert sorted(ids) == sorted(
        cfg_of(name=name, connector_auth="service-account").names.secrets.values()
    )
    for secret_id in ids:
        assert not secret_id.startswith("zenml-"), secret_id


def test_secret_values_are_pulumi_secrets_and_json_where_several_fields() -> None:
    r = run(**FULL)
    versions = of_type(r, VERSION)
    assert {v.name for v in versions} >= {
        "zenml-db-password-v",
        "mlflow-db-password-v",
        "zenml-admin-v",
        "zenml-jwt-v",
        "mlflow-auth-v",
        "mlflow-flask-v",
    }
    for v in versions:
        assert _is_secret(v.inputs["secretData"]), v.name
    admin = next(v for v in versions if v.name == "zenml-admin-v")
    assert set(json.loads(admin.inputs["secretData"]["value"])) == {"username", "password"}


@pytest.mark.parametrize("variant", [{}, FULL])
def test_generated_secrets_only_travel_inside_secret_values(variant: dict[str, Any]) -> None:
    r = run(**variant)
    assert r.generated_secrets
    for reg in r.registrations:
        text = json.dumps(list(walk(reg.inputs)), default=str)
        for secret in r.generated_secrets:
            assert secret not in text, f"{reg.urn} exposes a generated secret"
    public = {k: v for k, v in r.outputs.items() if k not in r.secret_outputs}
    public_text = json.dumps(public)
    assert not any(s in public_text for s in r.generated_secrets)


# --------------------------------------------------------------------------- names


def test_every_named_resource_uses_the_deployment_prefix() -> None:
    r = run(name="alpha")
    for reg in r.registrations:
        i = reg.inputs
        for field in ("name", "accountId", "secretId", "repositoryId", "workloadIdentityPoolId"):
            value = i.get(field)
            if isinstance(value, str) and reg.type.startswith("gcp:") and field in i:
                if reg.type in ("gcp:sql/database:Database", "gcp:sql/user:User"):
                    continue  # inside the deployment's own instance
                assert "alpha" in value, (reg.type, field, value)


def test_two_deployments_in_one_project_do_not_collide() -> None:
    def gcp_names(r: MockRun) -> set[tuple[str, str]]:
        out = set()
        for reg in r.registrations:
            for field in (
                "name",
                "accountId",
                "secretId",
                "repositoryId",
                "roleId",
                "workloadIdentityPoolId",
            ):
                v = reg.inputs.get(field)
                if isinstance(v, str) and reg.type not in (
                    "gcp:sql/database:Database",
                    "gcp:sql/user:User",
                ):
                    out.add((reg.type, v))
        return out

    a = gcp_names(run(name="alpha", github_repo="acme/x"))
    b = gcp_names(run(name="beta", github_repo="acme/x"))
    assert a and b and not (a & b)


@pytest.mark.parametrize("variant", [{}, FULL, {"ingress": "nginx"}])
def test_urns_are_unique(variant: dict[str, Any]) -> None:
    # The mock monitor accepts duplicates; the real engine refuses them at `pulumi up`.
    urns = [reg.urn for reg in run(**variant).registrations]
    assert len(urns) == len(set(urns))


BUILD_EDITOR = "roles/cloudbuild.builds.editor"
COMPUTE_DEFAULT = "-compute@developer.gserviceaccount.com"
REPO_IAM = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
BUCKET_IAM = "gcp:storage/bucketIAMMember:BucketIAMMember"


def _submitter_role_bindings(r: MockRun, cfg: DeploymentConfig) -> set[str]:
    role = f"projects/{PROJECT}/roles/{cfg.names.build_submitter_role}"
    return {x.inputs["member"] for x in of_type(r, PROJECT_IAM) if x.inputs["role"] == role}


@pytest.mark.parametrize("auth", ["implicit", "service-account"])
def test_connector_identity_gets_exactly_registry_cluster_and_build_access(auth: str) -> None:
    """Clients get the connector's identity: the server's own account when keyless, else the
    pipelines account. It must push images, reach the cluster and submit Cloud Builds."""
    r = run(connector_auth=auth)
    cfg = cfg_of(connector_auth=auth)
    names = cfg.names
    connector = "zenml_server" if auth == "implicit" else "pipelines"
    member = f"serviceAccount:{names.sa_email(connector)}"
    project_roles = {(x.inputs["role"], x.inputs["member"]) for x in of_type(r, PROJECT_IAM)}
    assert ("roles/container.clusterViewer", member) in project_roles
    assert _submitter_role_bindings(r, cfg) == {member}
    repo_roles = {(m.inputs["member"], m.inputs["role"]) for m in of_type(r, REPO_IAM)}
    assert (member, "roles/artifactregistry.writer") in repo_roles
    # the other identity stays without cluster or build access
    other = (
        f"serviceAccount:{names.sa_email('pipelines' if auth == 'implicit' else 'zenml_server')}"
    )
    assert ("roles/container.clusterViewer", other) not in project_roles
    acts_as_build = {
        m.inputs["member"]
        for m in of_type(r, SA_IAM)
        if m.inputs["role"] == "roles/iam.serviceAccountUser"
        and m.inputs["serviceAccountId"].endswith(f"/{names.sa_email('build')}")
    }
    assert acts_as_build == {member}


@pytest.mark.parametrize("variant", [{}, FULL, {"connector_auth": "service-account"}])
def test_no_workload_account_may_edit_builds_and_the_default_build_account_gets_nothing(
    variant: dict[str, Any],
) -> None:
    """Whoever may submit a build acts as the account it runs as. With project-level
    `cloudbuild.builds.editor` and no account named, that was the default build account,
    Editor in many projects; no grant goes to it, and none of ours may edit builds."""
    plan = offline_plan(cfg_of(**variant))
    grants = [res["inputs"] for res in plan["resources"] if res["type"] == PROJECT_IAM]
    assert grants
    assert not [g for g in grants if g["role"].startswith("roles/cloudbuild.")]
    for res in plan["resources"]:
        assert COMPUTE_DEFAULT not in json.dumps(res["inputs"]), res["urn"]


def test_build_account_pushes_reads_contexts_and_writes_logs_only() -> None:
    r = run(github_repo="acme/ml-pipelines")
    cfg = cfg_of(github_repo="acme/ml-pipelines")
    names = cfg.names
    assert names.service_accounts["build"] == f"{cfg.name}-build"
    build = f"serviceAccount:{names.sa_email('build')}"
    assert {x.inputs["role"] for x in of_type(r, PROJECT_IAM) if x.inputs["member"] == build} == {
        "roles/logging.logWriter"
    }
    assert [
        (m.inputs["repository"], m.inputs["role"])
        for m in of_type(r, REPO_IAM)
        if m.inputs["member"] == build
    ] == [(names.registry_repo, "roles/artifactregistry.writer")]
    reads = [b.inputs for b in of_type(r, BUCKET_IAM) if b.inputs["member"] == build]
    assert [(b["bucket"], b["role"]) for b in reads] == [
        (names.artifact_bucket, "roles/storage.objectViewer")
    ]
    assert reads[0]["condition"]["expression"] == (
        f'resource.name.startsWith("projects/_/buckets/{names.artifact_bucket}'
        f'/objects/{names.build_context_prefix}/")'
    )
    # submitters: the connector identity and CI, with the custom role that only creates and
    # polls builds, and actAs on the build account alone
    roles = {
        x.inputs["roleId"]: x.inputs for x in of_type(r, "gcp:projects/iAMCustomRole:IAMCustomRole")
    }
    assert sorted(roles[names.build_submitter_role]["permissions"]) == [
        "cloudbuild.builds.create",
        "cloudbuild.builds.get",
        "cloudbuild.operations.get",
    ]
    submitters = {
        f"serviceAccount:{names.sa_email('zenml_server')}",
        f"serviceAccount:{names.sa_email('ci')}",
    }
    assert _submitter_role_bindings(r, cfg) == submitters
    acts_as = [
        (m.inputs["serviceAccountId"], m.inputs["member"])
        for m in of_type(r, SA_IAM)
        if m.inputs["role"] == "roles/iam.serviceAccountUser" and m.inputs["member"] in submitters
    ]
    assert sorted(acts_as) == sorted(
        (f"projects/{PROJECT}/serviceAccounts/{names.sa_email('build')}", m) for m in submitters
    )


def test_local_image_builder_grants_no_cloud_build() -> None:
    r = run(image_builder="local")
    cfg = cfg_of(image_builder="local")
    assert "build" not in cfg.names.service_accounts
    assert not _submitter_role_bindings(r, cfg)
    assert not any(
        x.inputs["roleId"] == cfg.names.build_submitter_role
        for x in of_type(r, "gcp:projects/iAMCustomRole:IAMCustomRole")
    )


# --------------------------------------------------------------------------- CMEK, logs


@pytest.mark.parametrize("variant", [{}, FULL])
def test_registry_secrets_and_sql_use_the_key_after_their_agent_may(
    variant: dict[str, Any],
) -> None:
    r = run(**variant)
    names = cfg_of(**variant).names
    key_suffix = f"/cryptoKeys/{names.kms_key}"
    agents = {
        a.inputs["service"]: a for a in of_type(r, "gcp:projects/serviceIdentity:ServiceIdentity")
    }
    assert set(agents) == {
        "artifactregistry.googleapis.com",
        "secretmanager.googleapis.com",
        "sqladmin.googleapis.com",
    }
    grants = {
        g.inputs["member"]: g for g in of_type(r, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
    }

    def grant_for(agent_domain: str) -> Registration:
        [g] = [g for m, g in grants.items() if f"@{agent_domain}." in m]
        assert g.inputs["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
        assert g.inputs["cryptoKeyId"].endswith(key_suffix)
        return g

    repo = one(r, "gcp:artifactregistry/repository:Repository")
    assert repo.inputs["kmsKeyName"].endswith(key_suffix)
    assert grant_for("gcp-sa-artifactregistry").urn in repo.depends_on
    sm_grant = grant_for("gcp-sa-secretmanager")
    for secret in of_type(r, SECRET):
        [replica] = secret.inputs["replication"]["userManaged"]["replicas"]
        assert replica["customerManagedEncryption"]["kmsKeyName"].endswith(key_suffix)
        assert sm_grant.urn in secret.depends_on
    sql = one(r, "gcp:sql/databaseInstance:DatabaseInstance")
    assert sql.inputs["encryptionKeyName"].endswith(key_suffix)
    assert grant_for("gcp-sa-cloud-sql").urn in sql.depends_on


def test_flow_logs_and_data_access_audit_logs_by_default_and_switchable() -> None:
    r = run()
    [nodes] = [s for s in of_type(r, "gcp:compute/subnetwork:Subnetwork") if s.name == "nodes"]
    assert nodes.inputs["logConfig"]["flowSampling"] == 0.5
    audits = {
        a.inputs["service"]: a for a in of_type(r, "gcp:projects/iAMAuditConfig:IAMAuditConfig")
    }
    assert set(audits) == {"storage.googleapis.com", "secretmanager.googleapis.com"}
    for a in audits.values():
        assert {c["logType"] for c in a.inputs["auditLogConfigs"]} == {"DATA_READ", "DATA_WRITE"}
    assert all("logging" not in b.inputs for b in of_type(r, BUCKET))

    off = run(flow_log_sampling=0, data_access_logs=False)
    [nodes] = [s for s in of_type(off, "gcp:compute/subnetwork:Subnetwork") if s.name == "nodes"]
    assert "logConfig" not in nodes.inputs
    assert not of_type(off, "gcp:projects/iAMAuditConfig:IAMAuditConfig")

    logged = run(bucket_access_logs=True, flow_log_sampling=0.1)
    names = cfg_of(bucket_access_logs=True).names
    buckets = {b.inputs["name"]: b for b in of_type(logged, BUCKET)}
    assert set(buckets) == {
        names.artifact_bucket,
        names.mlflow_bucket,
        names.backup_bucket,
        names.access_log_bucket,
    }
    for name in (names.artifact_bucket, names.mlflow_bucket, names.backup_bucket):
        assert buckets[name].inputs["logging"]["logBucket"] == names.access_log_bucket
    assert buckets[names.access_log_bucket].inputs["encryption"]["defaultKmsKeyName"]
    writers = [
        m
        for m in of_type(logged, "gcp:storage/bucketIAMMember:BucketIAMMember")
        if m.inputs["member"] == "group:cloud-storage-analytics@google.com"
    ]
    assert [w.inputs["role"] for w in writers] == ["roles/storage.objectCreator"]


def test_github_federation_pins_immutable_ids_and_the_ref_when_known() -> None:
    ids = {"github_repo_id": 123456789, "github_owner_id": 987654, "github_ref": "refs/heads/main"}
    r = run(**FULL, **ids)
    provider = one(r, "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider").inputs
    assert provider["attributeCondition"] == (
        "assertion.repository_id == '123456789' && assertion.repository_owner_id == '987654'"
        " && assertion.ref == 'refs/heads/main'"
    )
    assert "acme/ml-pipelines" not in provider["attributeCondition"]  # names can be re-taken
    assert provider["attributeMapping"]["attribute.repository_id"] == "assertion.repository_id"
    [ci_binding] = [b for b in of_type(r, SA_IAM) if b.inputs["member"].startswith("principalSet")]
    assert ci_binding.inputs["member"].endswith("/attribute.repository_id/123456789")


def test_binary_authorization_is_opt_in_and_admits_only_known_images() -> None:
    from zenml_gcp_gitops.gitops.images import CHART_IMAGES, qualified

    off = run()
    assert "binaryAuthorization" not in one(off, "gcp:container/cluster:Cluster").inputs
    assert not of_type(off, "gcp:binaryauthorization/policy:Policy")

    r = run(binary_authorization=True)
    names = cfg_of(binary_authorization=True).names
    cluster = one(r, "gcp:container/cluster:Cluster")
    assert cluster.inputs["binaryAuthorization"] == {
        "evaluationMode": "PROJECT_SINGLETON_POLICY_ENFORCE"
    }
    policy = one(r, "gcp:binaryauthorization/policy:Policy")
    assert policy.inputs["defaultAdmissionRule"]["evaluationMode"] == "ALWAYS_DENY"
    assert policy.inputs["globalPolicyEvaluationMode"] == "ENABLE"  # GKE system images
    patterns = [p["namePattern"] for p in policy.inputs["admissionWhitelistPatterns"]]
    assert patterns[0] == f"{names.registry_uri}/**"
    for image in CHART_IMAGES:
        assert f"{qualified(image)}*" in patterns
    assert "docker.io/burakince/mlflow:3.15.1*" in patterns
    assert policy.urn in cluster.depends_on  # the policy exists before enforcement starts
    services = {s.inputs["service"] for s in of_type(r, "gcp:projects/service:Service")}
    assert "binaryauthorization.googleapis.com" in services
