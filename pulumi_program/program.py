"""The whole GCP side of a deployment: `build(cfg)` registers it and exports the outputs.

Runs three ways with no change: inline under the Automation API (`lambda: build(cfg)`),
under `pulumi.runtime.set_mocks` (`plan --offline` and the tests), and under the Pulumi
CLI through `__main__.py`. Every resource name comes from `cfg.names`.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_gcp as gcp

from zenml_gcp_gitops.config import PAUSED_KEY, SQL_DATABASE_FLAGS, DeploymentConfig
from zenml_gcp_gitops.gitops.images import admission_patterns
from zenml_gcp_gitops.outputs import InfraOutputs
from zenml_gcp_gitops.state.replace_guard import set_protection

from .apis import Apis, ApisArgs, services_for
from .audit import Audit, AuditArgs
from .backup import Backup, BackupArgs
from .binauthz import Binauthz, BinauthzArgs
from .database import Database, DatabaseArgs
from .dns import Dns, DnsArgs
from .gke import Gke, GkeArgs
from .handoff import Handoff
from .identity import KSA_OF, Identity, IdentityArgs
from .kms import Kms, KmsArgs
from .monitoring import Monitoring, MonitoringArgs
from .network import Network, NetworkArgs
from .registry import Registry, RegistryArgs
from .secrets import GENERATED, Secrets, SecretsArgs
from .storage import Storage, StorageArgs

# Output name -> value. The names are `InfraOutputs`' fields: that model is the one list.
StackOutputs = dict[str, pulumi.Output[Any]]


def export_outputs(values: dict[str, pulumi.Output[Any] | None]) -> StackOutputs:
    """Export exactly the fields of `InfraOutputs` (None: an optional output left out).

    A name out of step with the model fails every run, the offline plan included, so the
    program and the phases that read its outputs cannot drift apart.
    """
    fields = InfraOutputs.model_fields
    unknown = sorted(set(values) - set(fields))
    missing = sorted(k for k, f in fields.items() if f.is_required() and values.get(k) is None)
    if unknown or missing:
        raise ValueError(
            f"the program's outputs are out of step with InfraOutputs: "
            f"unknown {unknown or 'none'}, missing {missing or 'none'}"
        )
    exported = {k: v for k, v in values.items() if v is not None}
    for key, value in exported.items():
        pulumi.export(key, value)
    return exported


def publish(values: StackOutputs, after: list[pulumi.Resource | None]) -> None:
    """The outputs that need no database, as soon as the components in `after` exist."""
    Handoff("gitops-handoff", values, [r for r in after if r is not None])


def build(
    cfg: DeploymentConfig,
    adopt: dict[str, str] | None = None,
    *,
    audit_prior: dict[str, list[dict[str, Any]]] | None = None,
) -> StackOutputs:
    """Register every resource of the deployment and export the infra outputs.

    `adopt` maps a retained resource (`kms_key_ring`, `kms_key`, `wif_pool`, `wif_provider`)
    to the ID of the one GCP
    kept from an earlier deployment of the same name; it is imported instead of created.
    `audit_prior` is the project's audit config, per service, before the first deploy
    (preflight reads it): the program's Data Access logs merge with it.
    """
    adopt = adopt or {}
    # `pause` sets this stack config input; `deploy` keeps it until `resume` clears it
    paused = bool(pulumi.Config().get_bool(PAUSED_KEY))
    set_protection(cfg.deletion_protection)  # stateful resources get `protect` (see _base)
    names = cfg.names
    labels = names.labels
    p, r = cfg.project, cfg.region

    services = services_for(cfg.orchestrator, cfg.binary_authorization)
    if names.dns_zone and names.dns_zone_project == p:
        services += ("dns.googleapis.com",)
    if cfg.monitoring:  # uptime checks, policies, dashboard; the log-based backup alert
        services += ("monitoring.googleapis.com", "logging.googleapis.com")
    apis = Apis("apis", ApisArgs(project=p, services=services))

    def after_apis() -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(depends_on=[apis])  # a fresh object per component

    kms = Kms(
        "kms",
        KmsArgs(
            project=p,
            location=r,
            key_ring=names.kms_keyring,
            key=names.kms_key,
            labels=labels,
            protect=cfg.deletion_protection,
            import_key_ring=adopt.get("kms_key_ring"),
            import_key=adopt.get("kms_key"),
        ),
        after_apis(),
    )
    if cfg.data_access_logs:
        Audit("audit", AuditArgs(project=p, prior=dict(audit_prior or {})), after_apis())
    network = Network(
        "network",
        NetworkArgs(
            project=p,
            region=r,
            network=names.network,
            subnet=names.subnet,
            pods_range=names.pods_range,
            services_range=names.services_range,
            proxy_subnet=names.proxy_subnet if cfg.ingress == "gateway" else None,
            router=names.router,
            nat=names.nat,
            psa_range=names.psa_range,
            ingress_ip=names.ingress_ip,
            labels=labels,
            flow_log_sampling=cfg.flow_log_sampling,
        ),
        after_apis(),
    )
    secrets = Secrets(
        "secrets",
        SecretsArgs(
            project=p,
            region=r,
            secret_ids=dict(names.secrets),
            admin_users=dict(names.admin_users),
            labels=labels,
            kms_key=kms.key_id,
            kms_ready=kms.grant("secretmanager.googleapis.com"),
        ),
        after_apis(),
    )
    db_passwords = {
        "zenml": secrets.passwords["zenml_db_password"],
        "mlflow": secrets.passwords["mlflow_db_password"],
        "mlflow_auth": secrets.passwords["mlflow_auth_db_password"],
    }
    database = Database(
        "database",
        DatabaseArgs(
            project=p,
            region=r,
            instance=names.sql_instance,
            tier=cfg.sql_tier,
            availability=cfg.sql_availability_effective,
            deletion_protection=cfg.deletion_protection,
            network_id=network.vpc.id,
            databases=dict(names.databases),
            users=dict(names.sql_users),
            passwords=db_passwords,
            labels=labels,
            kms_key=kms.key_id,
            kms_ready=kms.grant("sqladmin.googleapis.com"),
            # one automated backup a day: keep as many days as the exports
            retained_backups=cfg.backup_retention_days,
            log_retention_days=cfg.sql_log_retention_days,
            paused=paused,
            flags=dict(SQL_DATABASE_FLAGS),
        ),
        pulumi.ResourceOptions(depends_on=[apis, network.psa_connection]),
    )
    registry = Registry(
        "registry",
        RegistryArgs(
            project=p,
            region=r,
            repository=names.registry_repo,
            keep_versions=cfg.registry_keep_versions,
            labels=labels,
            kms_key=kms.key_id,
            kms_ready=kms.grant("artifactregistry.googleapis.com"),
        ),
        after_apis(),
    )
    # The policy exists before the cluster starts enforcing it.
    binauthz: list[pulumi.Resource] = []
    if cfg.binary_authorization:
        binauthz.append(
            Binauthz(
                "binauthz", BinauthzArgs(project=p, patterns=admission_patterns(cfg)), after_apis()
            )
        )
    gke = Gke(
        "gke",
        GkeArgs(
            project=p,
            region=r,
            cluster=names.cluster,
            network=network.vpc.id,
            subnet=network.subnet.id,
            pods_range=names.pods_range,
            services_range=names.services_range,
            authorized_networks=cfg.authorized_networks,
            deletion_protection=cfg.deletion_protection,
            node_service_account=names.node_service_account,
            repository=registry.repository_id,
            labels=labels,
            binary_authorization=cfg.binary_authorization,
        ),
        pulumi.ResourceOptions(depends_on=[apis, *binauthz]),
    )
    storage = Storage(
        "storage",
        StorageArgs(
            project=p,
            region=r,
            buckets={"artifacts": names.artifact_bucket, "mlflow": names.mlflow_bucket},
            kms_key_id=kms.key_id,
            noncurrent_version_days=cfg.noncurrent_version_days,
            force_destroy=cfg.force_destroy_buckets,
            labels=labels,
            access_log_bucket=names.access_log_bucket if cfg.bucket_access_logs else None,
        ),
        after_apis(),
    )
    backup = Backup(
        "backup",
        BackupArgs(
            project=p,
            region=r,
            bucket=names.backup_bucket,
            kms_key_id=kms.key_id,
            retention_days=cfg.backup_retention_days,
            sql_service_account=database.service_account,
            force_destroy=cfg.force_destroy_buckets,
            labels=labels,
            log_bucket=storage.log_bucket.name if storage.log_bucket is not None else None,
        ),
        pulumi.ResourceOptions(depends_on=[apis, storage.kms_grant, *storage.log_deps]),
    )
    project_number = gcp.organizations.get_project_output(project_id=p).number
    identity = Identity(
        "identity",
        IdentityArgs(
            project=p,
            project_number=project_number,
            service_accounts=dict(names.service_accounts),
            workload_members={
                key: names.workload_identity_member(ksa, ns) for key, (ns, ksa) in KSA_OF.items()
            },
            artifact_bucket=storage.names["artifacts"],
            mlflow_bucket=storage.names["mlflow"],
            repository=registry.repository_id,
            repository_location=r,
            sql_instance=names.sql_instance,
            # External Secrets reads what it syncs: the generated secrets and, for a private
            # GitOps repo, the credentials the user adds to its slot
            eso_secrets={
                k: secrets.secrets[k].secret_id
                for k in (*GENERATED, "gitops_repo")
                if k in secrets.secrets
            },
            secrets_store_roles=dict(names.secrets_store_roles),
            vertex=cfg.orchestrator == "vertex",
            service_account_connector=cfg.connector_auth == "service-account",
            cloud_build="build" in names.service_accounts,
            build_submitter_role=names.build_submitter_role,
            build_context_prefix=names.build_context_prefix,
            github_repo=cfg.github_repo,
            github_repo_id=cfg.github_repo_id,
            github_owner_id=cfg.github_owner_id,
            github_ref=cfg.github_ref,
            wif_pool=names.wif_pool,
            wif_provider=names.wif_provider,
            import_wif_pool=adopt.get("wif_pool"),
            import_wif_provider=adopt.get("wif_provider"),
            cluster=gke.cluster,
        ),
        after_apis(),
    )
    if identity.pipelines_key is not None and "pipelines_sa_key" in secrets.secrets:
        secrets.add_version("pipelines_sa_key", identity.pipelines_key)

    dns: Dns | None = None
    if names.dns_zone and cfg.domain:
        dns01 = cfg.acme_challenge == "dns01"
        dns = Dns(
            "dns",
            DnsArgs(
                project=p,
                zone_project=names.dns_zone_project,
                zone=names.dns_zone,
                create_zone=cfg.create_dns_zone,
                domain=cfg.domain,
                records=dict(names.dns_records),
                ingress_ip=network.ingress_ip,
                labels=labels,
                dns01_account=names.dns01_account if dns01 else None,
                dns01_member=(
                    names.workload_identity_member("cert_manager", "cert_manager")
                    if dns01
                    else None
                ),
                cluster=gke.cluster,
            ),
            after_apis(),
        )

    hosts = network.ingress_ip.apply(cfg.hostnames)
    monitoring: Monitoring | None = None
    if cfg.monitoring:
        monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(
                project=p,
                deployment=cfg.name,
                region=r,
                hosts={"zenml": hosts.apply(lambda h: h[0]), "mlflow": hosts.apply(lambda h: h[1])},
                check_names=dict(names.uptime_checks),
                alert_prefix=names.alert_prefix,
                dashboard=names.dashboard,
                channel_name=names.notification_channel,
                alert_email=cfg.alert_email_effective,
                sql_instance=names.sql_instance,
                cluster=names.cluster,
                labels=labels,
                paused=paused,
            ),
            after_apis(),
        )
    none: pulumi.Output[Any] = pulumi.Output.from_input(None)
    exported = export_outputs(
        dict(
            project=pulumi.Output.from_input(p),
            region=pulumi.Output.from_input(r),
            name=pulumi.Output.from_input(cfg.name),
            cluster_name=gke.cluster_name,
            cluster_location=gke.location,
            cluster_endpoint=gke.endpoint,
            cluster_ca_certificate=gke.ca_certificate,
            network=network.network_name,
            subnet=network.subnet_name,
            sql_instance=database.instance_name,
            sql_connection_name=database.connection_name,
            sql_private_ip=database.private_ip,
            sql_server_ca_cert=database.server_ca_cert,
            artifact_bucket=storage.names["artifacts"],
            mlflow_bucket=storage.names["mlflow"],
            backup_bucket=backup.name,
            registry_uri=registry.uri,
            kms_key=kms.key_id,
            service_accounts=pulumi.Output.all(identity.emails).apply(lambda xs: dict(xs[0])),
            workload_identity_provider=(
                identity.workload_identity_provider.apply(lambda v: v)
                if identity.workload_identity_provider is not None
                else pulumi.Output.from_input(None)
            ),
            ingress_ip=network.ingress_ip,
            zenml_host=hosts.apply(lambda h: h[0]),
            mlflow_host=hosts.apply(lambda h: h[1]),
            secret_ids=pulumi.Output.all(secrets.secret_ids).apply(lambda xs: dict(xs[0])),
            pipelines_sa_key=identity.pipelines_key,
            dns_zone=dns.zone_name if dns is not None else pulumi.Output.from_input(None),
            dns_name_servers=(
                dns.name_servers
                if dns is not None and cfg.create_dns_zone
                else pulumi.Output.from_input(None)
            ),
            uptime_checks=(
                pulumi.Output.all(**{k: c.uptime_check_id for k, c in monitoring.checks.items()})
                if monitoring is not None and monitoring.checks
                else none
            ),
            dashboard_url=monitoring.dashboard_url if monitoring is not None else none,
            alerts_notify=pulumi.Output.from_input(
                cfg.alert_email_effective if monitoring is not None else None
            ),
        )
    )
    # not `database`, `backup` (its bucket grant waits for the instance; its bucket is
    # enough) or `monitoring`
    publish(
        exported,
        [apis, kms, network, secrets, registry, gke, storage, identity, dns, backup.bucket],
    )
    return exported
