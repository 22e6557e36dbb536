"""The infra outputs: the one typed object that flows from the Pulumi program to later phases.

The program exports exactly these keys (`pulumi_program/program.py` builds them), the plan
contract shows them under `outputs`, and `zenml-gcp-gitops outputs --output json` prints them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from .config import SECRET_MARK
from .errors import ConfigError

# The outputs that exist only once the Cloud SQL instance does, and those no Argo CD app
# reads (monitoring; a key register alone uses). The rest is the handoff (`handoff_fields`).
DATABASE_FIELDS = ("sql_instance", "sql_connection_name", "sql_private_ip", "sql_server_ca_cert")
_NOT_FOR_GITOPS = ("pipelines_sa_key", "uptime_checks", "dashboard_url", "alerts_notify")
# The program's component that registers the handoff outputs (`pulumi_program/handoff.py`)
HANDOFF_TYPE = "zenml-gcp-gitops:infra:Handoff"


class InfraOutputs(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    project: str
    region: str
    name: str
    # GKE
    cluster_name: str
    cluster_location: str
    cluster_endpoint: str  # DNS-based control-plane endpoint (IAM-authorised)
    cluster_ca_certificate: str  # base64 PEM
    network: str
    subnet: str
    # Cloud SQL (private IP only)
    sql_instance: str
    sql_connection_name: str
    sql_private_ip: str
    sql_server_ca_cert: str  # PEM of the instance's server CA
    # the private services access range the instance's IP comes from ("address/prefix"),
    # known before the instance exists (older stacks: none, derived from sql_private_ip)
    sql_range: str | None = None
    # storage and images
    artifact_bucket: str
    mlflow_bucket: str
    backup_bucket: str | None = None  # SQL exports and manifests (older stacks: none)
    registry_uri: str
    kms_key: str
    # identity: workload key (zenml_server, mlflow, pipelines, external_secrets[, ci]) -> email
    service_accounts: dict[str, str]
    workload_identity_provider: str | None = None
    # ingress
    ingress_ip: str
    zenml_host: str
    mlflow_host: str
    # Secret Manager: logical key -> secret ID (never values)
    secret_ids: dict[str, str]
    # only with connector_auth=service-account; a Pulumi secret, never written in plain text
    pipelines_sa_key: SecretStr | None = None
    # Cloud DNS (with dns_zone / create_dns_zone): the zone, and the name servers of a zone
    # the stack created (to set at the registrar)
    dns_zone: str | None = None
    dns_name_servers: list[str] | None = None
    # Cloud Monitoring (older stacks, or `monitoring: false`: none)
    uptime_checks: dict[str, str] | None = None  # zenml / mlflow -> uptime check ID
    dashboard_url: str | None = None
    alerts_notify: str | None = None  # the email the alert policies notify; None: nobody

    @field_validator("sql_range")
    @classmethod
    def _cidr(cls, v: str | None) -> str | None:
        import ipaddress

        if v is not None:
            ipaddress.ip_network(v, strict=False)  # "address/prefix", or a ValueError
        return v

    @property
    def zenml_url(self) -> str:
        return f"https://{self.zenml_host}"

    @property
    def mlflow_url(self) -> str:
        return f"https://{self.mlflow_host}"

    def public_dict(self) -> dict[str, Any]:
        """Plain data with secrets masked as `[secret]`."""
        data = self.model_dump(mode="python")
        if data.get("pipelines_sa_key") is not None:
            data["pipelines_sa_key"] = SECRET_MARK
        return data

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "outputs") -> InfraOutputs:
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            missing = [
                ".".join(map(str, err["loc"])) for err in e.errors() if err["type"] == "missing"
            ]
            if missing:
                raise ConfigError(
                    f"{source} is missing {', '.join(missing)}",
                    "pass the JSON printed by `zenml-gcp-gitops outputs --output json`",
                ) from None
            err = e.errors()[0]
            raise ConfigError(f"{source}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None

    @classmethod
    def from_file(cls, path: Path) -> InfraOutputs:
        """Read `outputs --output json`, or a whole `plan --output json` (its `outputs` part)."""
        from .config_file import MAX_CONFIG_BYTES
        from .errors import echo_path

        where = f"outputs file {echo_path(path)}"
        try:
            if path.is_dir():
                raise ConfigError(f"{where} is a directory", "pass a JSON file to --outputs")
            with path.open("rb") as f:  # capped: a device or a huge file must not fill memory
                raw = f.read(MAX_CONFIG_BYTES + 1)
            if len(raw) > MAX_CONFIG_BYTES:
                raise ConfigError(
                    f"{where} is larger than {MAX_CONFIG_BYTES >> 20} MiB",
                    "outputs are a few kilobytes of JSON; check the --outputs path",
                )
            data = json.loads(raw.decode("utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{where} does not exist") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where} is not JSON (line {e.lineno})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{where} is not UTF-8 text") from None
        except OSError as e:
            raise ConfigError(
                f"{where} cannot be read: {e.strerror or e.__class__.__name__}"
            ) from None
        if isinstance(data, dict) and isinstance(data.get("outputs"), dict) and "version" in data:
            data = data["outputs"]
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must hold a JSON object")
        return cls.from_mapping(data, source=where)


def handoff_fields() -> list[str]:
    """The outputs the cluster side publishes before the database exists."""
    skip = {*DATABASE_FIELDS, *_NOT_FOR_GITOPS}
    return [k for k in InfraOutputs.model_fields if k not in skip]
