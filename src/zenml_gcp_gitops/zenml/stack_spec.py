"""What to register on a ZenML server, as plain data, and the builder for the GCP stack.

A `StackSpec` says *what* a stack is: its name and labels, an optional service connector,
one component per type and the ZenML secrets the components reference. It holds no client
and does no I/O, so the plan can print it and tests can compare it. Secret values are
`SecretStr` and only leave the spec when the apply engine writes them to ZenML's secret store.

Builders:
    gcp_stack_spec(cfg, outputs, zenml_url=None, mlflow_username=None, mlflow_password=None)
        -> StackSpec   the production stack on GCP (issue 5)

Applying a spec (any spec, e.g. the local rehearsal's):
    zenml_gcp_gitops.zenml.apply.apply_stack_spec(store, spec, adopt=False) -> RegisterResult
    zenml_gcp_gitops.zenml.session.connect(url, credentials) -> store   (no global config touched)
    zenml_gcp_gitops.zenml.ci_account.ensure_ci_account(store, cfg, ...) -> CiResult

A component may reference a secret as `{{<secret name>.<key>}}` in its configuration;
`secret_ref()` spells it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ..config import SECRET_MARK

# Our Cloud Build image builder (`flavors/image_builder.py`): ZenML's, with builds running as
# the stack's build account. Registered on the server as a custom flavor from this source.
from ..flavors import BUILD_ACCOUNT_FLAVOR as BUILD_ACCOUNT_FLAVOR
from ..flavors import BUILD_ACCOUNT_FLAVOR_SOURCE as BUILD_ACCOUNT_FLAVOR_SOURCE

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..names import ZenmlNames
    from ..outputs import InfraOutputs


# ZenML's component types in the order a stack is printed and registered.
ComponentType = Literal[
    "artifact_store",
    "container_registry",
    "orchestrator",
    "experiment_tracker",
    "image_builder",
    "step_operator",
    "model_deployer",
    "alerter",
    "annotator",
    "data_validator",
    "feature_store",
    "model_registry",
    "deployer",
    "log_store",
]
COMPONENT_ORDER: tuple[str, ...] = (
    "artifact_store",
    "container_registry",
    "orchestrator",
    "experiment_tracker",
    "image_builder",
)

# Connector resource types (ZenML constants, spelled here so the plan needs no zenml import).
GCS_BUCKET = "gcs-bucket"
DOCKER_REGISTRY = "docker-registry"
KUBERNETES_CLUSTER = "kubernetes-cluster"
GCP_GENERIC = "gcp-generic"


def secret_ref(secret: str, key: str) -> str:
    """ZenML's reference to a key of a ZenML secret, resolved at runtime by the client."""
    return "{{" + f"{secret}.{key}" + "}}"


class SecretSpec(BaseModel):
    """A ZenML secret (name -> key/values); values never appear in any output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    values: dict[str, SecretStr]

    def public_dict(self) -> dict[str, Any]:
        return {"name": self.name, "keys": sorted(self.values)}


class ConnectorSpec(BaseModel):
    """A service connector; `secrets` are the auth fields ZenML stores in its secret store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: str
    auth_method: str
    configuration: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    resource_types: tuple[str, ...] = ()  # empty = multi-type, any resource
    verify: bool = False  # verify against the cloud when the server can reach it

    def public_dict(self) -> dict[str, Any]:
        conf: dict[str, Any] = dict(self.configuration)
        conf.update({k: SECRET_MARK for k in self.secrets})
        return {
            "name": self.name,
            "type": self.type,
            "auth_method": self.auth_method,
            "configuration": conf,
        }


class FlavorSpec(BaseModel):
    """A custom flavor the stack needs, registered from its import path before the components."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    name: str
    source: str

    def public_dict(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "source": self.source}


class ComponentSpec(BaseModel):
    """One stack component; linked to the spec's connector when `connector_resource_type` is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    name: str
    flavor: str
    configuration: dict[str, Any] = Field(default_factory=dict)
    connector_resource_type: str | None = None
    connector_resource_id: str | None = None

    def public_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "flavor": self.flavor,
            "configuration": dict(self.configuration),
        }
        if self.connector_resource_type:
            out["connector_resource"] = {
                "type": self.connector_resource_type,
                "id": self.connector_resource_id,
            }
        return out


class StackSpec(BaseModel):
    """Everything to upsert for one stack."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    labels: dict[str, str]
    connector: ConnectorSpec | None = None
    components: dict[str, ComponentSpec]
    secrets: tuple[SecretSpec, ...] = ()
    flavors: tuple[FlavorSpec, ...] = ()

    def ordered_components(self) -> list[ComponentSpec]:
        known = [self.components[t] for t in COMPONENT_ORDER if t in self.components]
        rest = [c for t, c in self.components.items() if t not in COMPONENT_ORDER]
        return known + rest

    def public_dict(self) -> dict[str, Any]:
        """Plain data for plans and records: secrets masked, secret values never included."""
        return {
            "name": self.name,
            "labels": dict(self.labels),
            "connector": self.connector.public_dict() if self.connector else None,
            "components": {c.type: c.public_dict() for c in self.ordered_components()},
            "secrets": [s.public_dict() for s in self.secrets],
            "flavors": [f.public_dict() for f in self.flavors],
        }


def build_account_flavor() -> FlavorSpec:
    return FlavorSpec(
        type="image_builder", name=BUILD_ACCOUNT_FLAVOR, source=BUILD_ACCOUNT_FLAVOR_SOURCE
    )


def gcs_artifact_store(names: ZenmlNames, bucket: str, connected: bool) -> ComponentSpec:
    """The GCS artifact store; `connected` links it to the stack's connector (on GCP; the
    local emulator is reached anonymously)."""
    return ComponentSpec(
        type="artifact_store",
        name=names.zenml_components["artifact_store"],
        flavor="gcp",
        configuration={"path": f"gs://{bucket}"},
        connector_resource_type=GCS_BUCKET if connected else None,
        connector_resource_id=f"gs://{bucket}" if connected else None,
    )


def mlflow_tracker(
    names: ZenmlNames, tracking_uri: str, username: str | None, password: str | None
) -> tuple[ComponentSpec, SecretSpec]:
    """The MLflow tracker and the ZenML secret its credentials are referenced from.

    Unknown credentials (the offline plan) give placeholder values that are never sent.
    """
    secret = SecretSpec(
        name=names.zenml_mlflow_secret,
        values={"username": SecretStr(username or ""), "password": SecretStr(password or "")},
    )
    tracker = ComponentSpec(
        type="experiment_tracker",
        name=names.zenml_components["experiment_tracker"],
        flavor="mlflow",
        configuration={
            "tracking_uri": tracking_uri,
            "tracking_username": secret_ref(secret.name, "username"),
            "tracking_password": secret_ref(secret.name, "password"),
        },
    )
    return tracker, secret


def local_image_builder(names: ZenmlNames) -> ComponentSpec:
    return ComponentSpec(
        type="image_builder", name=names.zenml_components["image_builder"], flavor="local"
    )


def gcp_stack_spec(
    cfg: DeploymentConfig,
    outputs: InfraOutputs,
    zenml_url: str | None = None,
    mlflow_username: str | None = None,
    mlflow_password: str | None = None,
) -> StackSpec:
    """The production stack: GCS artifacts, Artifact Registry, GKE or Vertex, MLflow, Cloud Build.

    MLflow credentials go into a ZenML secret the tracker references; when they are unknown
    (the offline plan) the secret is described with placeholder values that are never sent.
    `zenml_url` is accepted for symmetry with the local builder; the stack itself doesn't need it.
    """
    del zenml_url  # the components reach ZenML through the client's own store config
    n = cfg.names
    comps = n.zenml_components
    connector_name = n.zenml_connector

    connector_secrets: dict[str, SecretStr] = {}
    if cfg.connector_auth == "service-account":
        key = outputs.pipelines_sa_key.get_secret_value() if outputs.pipelines_sa_key else ""
        connector_secrets["service_account_json"] = SecretStr(key)
    connector = ConnectorSpec(
        name=connector_name,
        type="gcp",
        auth_method=cfg.connector_auth,
        configuration={"project_id": outputs.project},
        secrets=connector_secrets,
    )

    tracker, mlflow_secret = mlflow_tracker(n, outputs.mlflow_url, mlflow_username, mlflow_password)
    components: dict[str, ComponentSpec] = {
        "artifact_store": gcs_artifact_store(n, outputs.artifact_bucket, connected=True),
        "container_registry": ComponentSpec(
            type="container_registry",
            name=comps["container_registry"],
            flavor="gcp",
            configuration={"uri": outputs.registry_uri},
            connector_resource_type=DOCKER_REGISTRY,
            connector_resource_id=outputs.registry_uri,
        ),
    }
    if cfg.orchestrator == "kubernetes":
        ksa = n.ksas["pipelines"]
        components["orchestrator"] = ComponentSpec(
            type="orchestrator",
            name=comps["orchestrator"],
            flavor="kubernetes",
            configuration={
                "kubernetes_namespace": n.namespaces["pipelines"],
                # Both the orchestrator pod and the step pods run as the KSA that Workload
                # Identity binds to the pipelines GSA; without it ZenML would create one.
                "service_account_name": ksa,
                "step_pod_service_account_name": ksa,
            },
            connector_resource_type=KUBERNETES_CLUSTER,
            connector_resource_id=outputs.cluster_name,
        )
    else:
        components["orchestrator"] = ComponentSpec(
            type="orchestrator",
            name=comps["orchestrator"],
            flavor="vertex",
            configuration={
                "location": outputs.region,
                "workload_service_account": outputs.service_accounts["pipelines"],
            },
            connector_resource_type=GCP_GENERIC,
            connector_resource_id=outputs.project,
        )

    components["experiment_tracker"] = tracker
    flavors: tuple[FlavorSpec, ...] = ()
    if cfg.image_builder == "gcp":
        flavors = (build_account_flavor(),)
        components["image_builder"] = ComponentSpec(
            type="image_builder",
            name=comps["image_builder"],
            flavor=BUILD_ACCOUNT_FLAVOR,
            configuration={
                "location": outputs.region,
                # outputs recorded before the build account existed: its name is derived
                "service_account": outputs.service_accounts.get("build") or n.sa_email("build"),
            },
            connector_resource_type=GCP_GENERIC,
            connector_resource_id=outputs.project,
        )
    else:
        components["image_builder"] = local_image_builder(n)

    return StackSpec(
        name=n.zenml_stack,
        labels=dict(n.zenml_labels),
        connector=connector,
        components=components,
        secrets=(mlflow_secret,),
        flavors=flavors,
    )
