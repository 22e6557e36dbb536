"""A small stand-in for the real Pulumi program: a few real pulumi_gcp resources and every key
of `InfraOutputs` exported, one of them a Pulumi secret. It honours `deletion_protection` and
`force_destroy_buckets` the way the real program does, so the destroy path can be tested."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from zenml_gcp_gitops.config import DeploymentConfig

SECRET_KEY_VALUE = "s3cr3t-sa-key-never-printed"


def resource_count(cfg: DeploymentConfig) -> int:
    """What `build` creates: bucket, cluster, SQL instance, address, one account per workload."""
    return 4 + len(cfg.names.service_accounts)


def build(cfg: DeploymentConfig) -> None:
    n = cfg.names
    bucket = gcp.storage.Bucket(
        "artifacts",
        name=n.artifact_bucket,
        location=cfg.region,
        force_destroy=cfg.force_destroy_buckets,
        uniform_bucket_level_access=True,
    )
    cluster = gcp.container.Cluster(
        "gke",
        name=n.cluster,
        location=cfg.region,
        enable_autopilot=True,
        deletion_protection=cfg.deletion_protection,
    )
    sql = gcp.sql.DatabaseInstance(
        "mysql",
        name=n.sql_instance,
        region=cfg.region,
        database_version="MYSQL_8_0",
        deletion_protection=cfg.deletion_protection,
        settings={"tier": cfg.sql_tier},
    )
    ip = gcp.compute.GlobalAddress("ingress-ip", name=n.ingress_ip)
    sas = {
        k: gcp.serviceaccount.Account(f"sa-{k}", account_id=v)
        for k, v in n.service_accounts.items()
    }
    pulumi.export("project", cfg.project)
    pulumi.export("region", cfg.region)
    pulumi.export("name", cfg.name)
    pulumi.export("cluster_name", cluster.name)
    pulumi.export("cluster_location", cluster.location)
    pulumi.export("cluster_endpoint", cluster.endpoint)
    pulumi.export("cluster_ca_certificate", cluster.master_auth.cluster_ca_certificate)
    pulumi.export("network", n.network)
    pulumi.export("subnet", n.subnet)
    pulumi.export("sql_instance", sql.name)
    pulumi.export("sql_connection_name", sql.connection_name)
    pulumi.export("sql_private_ip", sql.private_ip_address)
    pulumi.export("sql_server_ca_cert", sql.server_ca_certs[0].cert)
    pulumi.export("artifact_bucket", bucket.name)
    pulumi.export("mlflow_bucket", n.mlflow_bucket)
    pulumi.export("registry_uri", n.registry_uri)
    pulumi.export("kms_key", "projects/p/locations/r/keyRings/k/cryptoKeys/c")
    pulumi.export("service_accounts", {k: sa.email for k, sa in sas.items()})
    pulumi.export("ingress_ip", ip.address)
    pulumi.export("zenml_host", ip.address.apply(lambda a: cfg.hostnames(a)[0]))
    pulumi.export("mlflow_host", ip.address.apply(lambda a: cfg.hostnames(a)[1]))
    pulumi.export("secret_ids", dict(n.secrets))
    pulumi.export("pipelines_sa_key", pulumi.Output.secret(SECRET_KEY_VALUE))
