"""One Google service account per workload, least-privilege grants, keyless CI.

Grants are resource-level wherever GCP allows it (bucket, repository, secret, service
account). The few project-level ones are roles that cannot be scoped to a resource, and
two of those carry IAM conditions. Every grant is a non-authoritative `*IAMMember`: the
program never replaces a policy, so it cannot remove anyone else's access.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from ._base import Component

GITHUB_OIDC_ISSUER = "https://token.actions.githubusercontent.com"

# Permissions exactly as ZenML documents them for its GCP secrets store.
SECRETS_STORE_CREATOR = ("secretmanager.secrets.create",)
SECRETS_STORE_EDITOR = (
    "secretmanager.secrets.get",
    "secretmanager.secrets.update",
    "secretmanager.versions.access",
    "secretmanager.versions.add",
    "secretmanager.secrets.delete",
)
ZENML_SECRET_PREFIX = "zenml-"
# Cloud Build cannot scope builds to a resource: project-level create and poll is the least.
BUILD_SUBMITTER = (
    "cloudbuild.builds.create",
    "cloudbuild.builds.get",
    "cloudbuild.operations.get",
)

# workload key -> (Kubernetes namespace key, KSA key) it runs as in the cluster
KSA_OF: dict[str, tuple[str, str]] = {
    "zenml_server": ("zenml", "zenml_server"),
    "mlflow": ("mlflow", "mlflow"),
    "pipelines": ("pipelines", "pipelines"),
    "external_secrets": ("external_secrets", "external_secrets"),
}


@dataclass(frozen=True)
class IdentityArgs:
    project: str
    project_number: pulumi.Input[str]
    service_accounts: dict[str, str]  # workload key -> account ID
    workload_members: dict[str, str]  # workload key -> KSA IAM member (workload identity)
    artifact_bucket: pulumi.Input[str]
    mlflow_bucket: pulumi.Input[str]
    repository: pulumi.Input[str]
    repository_location: str
    sql_instance: str
    eso_secrets: dict[str, pulumi.Input[str]]  # logical key -> secret resource ID
    secrets_store_roles: dict[str, str]  # creator/editor -> custom role ID
    vertex: bool
    service_account_connector: bool
    cloud_build: bool
    build_submitter_role: str
    build_context_prefix: str
    github_repo: str | None
    github_repo_id: int | None
    github_owner_id: int | None
    github_ref: str | None
    wif_pool: str
    wif_provider: str
    cluster: pulumi.Resource  # workload-identity bindings need the cluster's identity pool
    labels: dict[str, str] = field(default_factory=dict)
    # IDs of a pool/provider GCP kept from an earlier deployment: imported, not created
    import_wif_pool: str | None = None
    import_wif_provider: str | None = None


def github_condition(args: IdentityArgs) -> str:
    """Which GitHub OIDC tokens the provider accepts.

    Repository and owner names can be renamed and then taken by someone else; their numeric
    IDs never change, so they are what the condition pins once known (the deploy looks them
    up). `github_ref` narrows it to one branch or tag.
    """
    if args.github_repo_id and args.github_owner_id:
        parts = [
            f"assertion.repository_id == '{args.github_repo_id}'",
            f"assertion.repository_owner_id == '{args.github_owner_id}'",
        ]
    else:
        parts = [f"assertion.repository == '{args.github_repo}'"]
    if args.github_ref:
        parts.append(f"assertion.ref == '{args.github_ref}'")
    return " && ".join(parts)


def _sa_member(sa: gcp.serviceaccount.Account) -> pulumi.Output[str]:
    return sa.email.apply(lambda email: f"serviceAccount:{email}")


class Identity(Component):
    def __init__(self, name: str, args: IdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Identity", name, opts)
        self._project = args.project
        self.accounts: dict[str, gcp.serviceaccount.Account] = {
            key: gcp.serviceaccount.Account(
                f"sa-{key.replace('_', '-')}",
                account_id=account_id,
                project=args.project,
                display_name=f"zenml-gcp-gitops {key.replace('_', ' ')}",
                opts=self.child(),
            )
            for key, account_id in args.service_accounts.items()
        }
        self.members = {key: _sa_member(sa) for key, sa in self.accounts.items()}
        has_ci = "ci" in self.accounts

        # --- buckets: object access only on the bucket each workload uses
        bucket_roles = ("roles/storage.objectAdmin", "roles/storage.legacyBucketReader")
        artifact_users = ["zenml_server", "pipelines"] + (["ci"] if has_ci else [])
        for key in artifact_users:
            for role in bucket_roles:
                self._bucket(args.artifact_bucket, "artifacts", key, role)
        for role in bucket_roles:
            self._bucket(args.mlflow_bucket, "mlflow", "mlflow", role)

        # --- registry: pods pull; whoever builds images pushes
        pipelines_ar = (
            "roles/artifactregistry.writer"
            if args.service_account_connector  # the connector's key also pushes images
            else "roles/artifactregistry.reader"
        )
        self._repo(args, "pipelines", pipelines_ar)
        if has_ci:
            self._repo(args, "ci", "roles/artifactregistry.writer")

        # --- Cloud SQL: only the two database clients, only on this instance
        sql_condition = gcp.projects.IAMMemberConditionArgs(
            title="only-this-instance",
            description="Cloud SQL client for this deployment's instance only",
            expression=(
                f'resource.name == "projects/{args.project}/instances/{args.sql_instance}"'
                ' && resource.type == "sqladmin.googleapis.com/Instance"'
            ),
        )
        for key in ("zenml_server", "mlflow"):
            self._project_role(key, "roles/cloudsql.client", sql_condition)

        # --- ZenML's secrets store, exactly as ZenML documents it: create unconditionally,
        # manage only secrets named `zenml-*` (our own secrets never use that prefix).
        creator = gcp.projects.IAMCustomRole(
            "zenml-secrets-creator",
            role_id=args.secrets_store_roles["creator"],
            project=args.project,
            title="ZenML Server Secrets Store Creator",
            description="Allow the ZenML server to create new secrets",
            permissions=list(SECRETS_STORE_CREATOR),
            stage="GA",
            opts=self.child(),
        )
        editor = gcp.projects.IAMCustomRole(
            "zenml-secrets-editor",
            role_id=args.secrets_store_roles["editor"],
            project=args.project,
            title="ZenML Server Secrets Store Editor",
            description="Allow the ZenML server to manage its zenml-* secrets",
            permissions=list(SECRETS_STORE_EDITOR),
            stage="GA",
            opts=self.child(),
        )
        self._project_role("zenml_server", creator.name, None, label="secrets-creator")
        self._project_role(
            "zenml_server",
            editor.name,
            gcp.projects.IAMMemberConditionArgs(
                title="limit_access_zenml",
                description="Limit access to secrets with prefix zenml-",
                expression=pulumi.Output.concat(
                    'resource.name.startsWith("projects/',
                    args.project_number,
                    f'/secrets/{ZENML_SECRET_PREFIX}")',
                ),
            ),
            label="secrets-editor",
        )

        # --- External Secrets reads exactly the secrets it syncs into the cluster
        for key, secret_id in args.eso_secrets.items():
            gcp.secretmanager.SecretIamMember(
                f"eso-reads-{key.replace('_', '-')}",
                project=args.project,
                secret_id=secret_id,
                role="roles/secretmanager.secretAccessor",
                member=self.members["external_secrets"],
                opts=self.child(),
            )

        # --- orchestrator, image builder, connector. The ZenML connector hands clients
        # short-lived credentials of one identity: the server's own account when keyless
        # (implicit), else the pipelines account whose key it holds. That identity gets the
        # stack's registry, cluster and build access; RBAC inside the cluster decides the rest.
        connector = "pipelines" if args.service_account_connector else "zenml_server"
        if connector == "zenml_server":
            self._repo(args, "zenml_server", "roles/artifactregistry.writer")
        self._project_role(connector, "roles/container.clusterViewer")
        if args.vertex:
            # Vertex jobs run as the pipelines account; the connector identity submits them.
            self._project_role("pipelines", "roles/aiplatform.user")
            if connector != "pipelines":
                self._project_role(connector, "roles/aiplatform.user")
            self._acts_as_pipelines(connector)
        if args.cloud_build:
            self._build_account(args, submitters=[connector] + (["ci"] if has_ci else []))
        if has_ci:
            self._project_role("ci", "roles/container.clusterViewer")
            if args.vertex:
                self._project_role("ci", "roles/aiplatform.user")
                # Vertex runs jobs as the pipelines account: CI may act as that one only.
                self._acts_as_pipelines("ci")

        # --- workload identity: each Kubernetes SA may impersonate its Google SA only
        for key, member in args.workload_members.items():
            gcp.serviceaccount.IAMMember(
                f"wi-{key.replace('_', '-')}",
                service_account_id=self.accounts[key].name,
                role="roles/iam.workloadIdentityUser",
                member=member,
                opts=self.child([args.cluster]),
            )

        # --- keyless CI: GitHub OIDC tokens from this one repository become the ci account
        self.workload_identity_provider: pulumi.Output[str] | None = None
        if has_ci and args.github_repo:
            principal = (
                f"attribute.repository_id/{args.github_repo_id}"
                if args.github_repo_id
                else f"attribute.repository/{args.github_repo}"
            )
            # Retained on delete: a deleted pool blocks its ID for 30 days, so `destroy` leaves
            # it (and its provider) and the next deploy of the same name adopts them.
            pool_opts = self.child()
            pool_opts.retain_on_delete = True
            pool_opts.import_ = args.import_wif_pool
            pool = gcp.iam.WorkloadIdentityPool(
                "github-pool",
                workload_identity_pool_id=args.wif_pool,
                project=args.project,
                display_name="GitHub Actions",
                description=f"CI of {args.github_repo}",
                opts=pool_opts,
            )
            provider_opts = self.child()
            provider_opts.retain_on_delete = True
            provider_opts.import_ = args.import_wif_provider
            provider = gcp.iam.WorkloadIdentityPoolProvider(
                "github-provider",
                workload_identity_pool_id=pool.workload_identity_pool_id,
                workload_identity_pool_provider_id=args.wif_provider,
                project=args.project,
                display_name="GitHub OIDC",
                attribute_mapping={
                    "google.subject": "assertion.sub",
                    "attribute.repository": "assertion.repository",
                    "attribute.repository_id": "assertion.repository_id",
                    "attribute.repository_owner": "assertion.repository_owner",
                    "attribute.repository_owner_id": "assertion.repository_owner_id",
                    "attribute.ref": "assertion.ref",
                },
                attribute_condition=github_condition(args),
                oidc=gcp.iam.WorkloadIdentityPoolProviderOidcArgs(issuer_uri=GITHUB_OIDC_ISSUER),
                opts=provider_opts,
            )
            gcp.serviceaccount.IAMMember(
                "ci-from-github",
                service_account_id=self.accounts["ci"].name,
                role="roles/iam.workloadIdentityUser",
                member=pool.name.apply(
                    lambda pool_name: f"principalSet://iam.googleapis.com/{pool_name}/{principal}"
                ),
                opts=self.child(),
            )
            self.workload_identity_provider = provider.name

        # --- only for connector_auth=service-account: a key the ZenML connector uses
        self.pipelines_key: pulumi.Output[str] | None = None
        if args.service_account_connector:
            sa_key = gcp.serviceaccount.Key(
                "pipelines-key",
                service_account_id=self.accounts["pipelines"].name,
                opts=self.child(),
            )
            self.pipelines_key = pulumi.Output.secret(
                sa_key.private_key.apply(lambda b64: base64.b64decode(b64).decode())
            )

        self.emails: dict[str, pulumi.Output[str]] = {
            key: sa.email for key, sa in self.accounts.items()
        }
        self.register_outputs({"service_accounts": self.emails})

    def _build_account(self, args: IdentityArgs, submitters: list[str]) -> None:
        """Builds run as the `build` account, never as the project's default build account
        (which holds Editor in many projects): it pushes to this repository, reads build
        contexts and writes logs. Submitters may create and poll builds and act as it, and
        nothing else, so submitting a build grants no more than these three rights."""
        self._repo(args, "build", "roles/artifactregistry.writer")
        gcp.storage.BucketIAMMember(
            "artifacts-build-contexts-objectViewer",
            bucket=args.artifact_bucket,
            role="roles/storage.objectViewer",
            member=self.members["build"],
            condition=gcp.storage.BucketIAMMemberConditionArgs(
                title="build-contexts-only",
                description="Read the uploaded build contexts, no other artifact",
                expression=pulumi.Output.concat(
                    'resource.name.startsWith("projects/_/buckets/',
                    args.artifact_bucket,
                    f'/objects/{args.build_context_prefix}/")',
                ),
            ),
            opts=self.child(),
        )
        # A build with its own account must log to Cloud Logging (the flavor asks for it).
        self._project_role("build", "roles/logging.logWriter")
        submitter = gcp.projects.IAMCustomRole(
            "build-submitter",
            role_id=args.build_submitter_role,
            project=args.project,
            title="ZenML Cloud Build submitter",
            description="Create and poll Cloud Builds; they run as the stack's build account",
            permissions=list(BUILD_SUBMITTER),
            stage="GA",
            opts=self.child(),
        )
        for key in submitters:
            self._project_role(key, submitter.name, None, label="build-submitter")
            gcp.serviceaccount.IAMMember(
                f"{key.replace('_', '-')}-acts-as-build",
                service_account_id=self.accounts["build"].name,
                role="roles/iam.serviceAccountUser",
                member=self.members[key],
                opts=self.child(),
            )

    def _acts_as_pipelines(self, key: str) -> None:
        gcp.serviceaccount.IAMMember(
            f"{key.replace('_', '-')}-acts-as-pipelines",
            service_account_id=self.accounts["pipelines"].name,
            role="roles/iam.serviceAccountUser",
            member=self.members[key],
            opts=self.child(),
        )

    def _bucket(self, bucket: pulumi.Input[str], label: str, key: str, role: str) -> None:
        gcp.storage.BucketIAMMember(
            f"{label}-{key.replace('_', '-')}-{role.rsplit('.', 1)[-1]}",
            bucket=bucket,
            role=role,
            member=self.members[key],
            opts=self.child(),
        )

    def _repo(self, args: IdentityArgs, key: str, role: str) -> None:
        gcp.artifactregistry.RepositoryIamMember(
            f"registry-{key.replace('_', '-')}-{role.rsplit('.', 1)[-1]}",
            project=args.project,
            location=args.repository_location,
            repository=args.repository,
            role=role,
            member=self.members[key],
            opts=self.child(),
        )

    def _project_role(
        self,
        key: str,
        role: pulumi.Input[str],
        condition: gcp.projects.IAMMemberConditionArgs | None = None,
        *,
        label: str | None = None,
    ) -> None:
        suffix = label or (role.rsplit("/", 1)[-1] if isinstance(role, str) else "role")
        gcp.projects.IAMMember(
            f"{key.replace('_', '-')}-{suffix.replace('.', '-')}",
            project=self._project,
            role=role,
            member=self.members[key],
            condition=condition,
            opts=self.child(),
        )
