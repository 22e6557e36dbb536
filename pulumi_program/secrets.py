"""Generated credentials and the Secret Manager secrets that hold them.

Values are produced by `pulumi_random` (alphanumeric only, so they are safe inside URLs,
connection strings and Helm values) and are Pulumi secrets end to end. Secret IDs come
from `cfg.names.secrets` and start with the deployment name, never with `zenml-`: that
prefix belongs to ZenML's own secrets store, whose IAM grant would otherwise cover ours.

Value formats (what External Secrets reads):
  zenml_db_password, mlflow_db_password, mlflow_auth_db_password, zenml_jwt, mlflow_flask:
    the bare string
  zenml_admin, mlflow_auth: JSON {"username": ..., "password": ...}
  pipelines_sa_key: the service-account key JSON (added by the identity component)
  ci_api_key: created empty; the ci phase adds the ZenML API key as a new version
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from ._base import Component, create_only

PASSWORD_LENGTH = 32
KEY_LENGTH = 64  # JWT signing and Flask session keys: 64 alphanumerics ~ 380 bits

# logical secret key -> length of the generated value (keys without one get no version here)
GENERATED: dict[str, int] = {
    "zenml_db_password": PASSWORD_LENGTH,
    "mlflow_db_password": PASSWORD_LENGTH,
    "mlflow_auth_db_password": PASSWORD_LENGTH,
    "zenml_admin": PASSWORD_LENGTH,
    "mlflow_auth": PASSWORD_LENGTH,
    "zenml_jwt": KEY_LENGTH,
    "mlflow_flask": KEY_LENGTH,
}
JSON_USERS: dict[str, str] = {"zenml_admin": "zenml", "mlflow_auth": "mlflow"}


@dataclass(frozen=True)
class SecretsArgs:
    project: str
    region: str
    secret_ids: dict[str, str]  # logical key -> Secret Manager ID
    admin_users: dict[str, str]  # app -> admin username
    labels: dict[str, str]
    kms_key: pulumi.Input[str] | None = None  # CMEK for every replica; set at creation only
    kms_ready: Sequence[pulumi.Resource] = ()  # the Secret Manager agent's grant on the key


def _user_json(username: str, password: pulumi.Output[str]) -> pulumi.Output[str]:
    value: pulumi.Output[str] = password.apply(
        lambda pw: json.dumps({"username": username, "password": pw})
    )
    return pulumi.Output.secret(value)


class Secrets(Component):
    """One secret per credential, replicated only in the deployment's region."""

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Secrets", name, opts)
        self.passwords: dict[str, pulumi.Output[str]] = {}
        for key, length in GENERATED.items():
            pw = random.RandomPassword(
                key.replace("_", "-"),
                length=length,
                special=False,
                min_lower=2,
                min_upper=2,
                min_numeric=2,
                opts=self.child(),
            )
            self.passwords[key] = pw.result

        self.secrets: dict[str, gcp.secretmanager.Secret] = {}
        self.versions: dict[str, gcp.secretmanager.SecretVersion] = {}
        for key, secret_id in args.secret_ids.items():
            secret = gcp.secretmanager.Secret(
                key.replace("_", "-"),
                secret_id=secret_id,
                project=args.project,
                replication=gcp.secretmanager.SecretReplicationArgs(
                    user_managed=gcp.secretmanager.SecretReplicationUserManagedArgs(
                        replicas=[
                            gcp.secretmanager.SecretReplicationUserManagedReplicaArgs(
                                location=args.region,
                                customer_managed_encryption=(
                                    gcp.secretmanager.SecretReplicationUserManagedReplicaCustomerManagedEncryptionArgs(
                                        kms_key_name=args.kms_key
                                    )
                                    if args.kms_key is not None
                                    else None
                                ),
                            )
                        ]
                    )
                ),
                labels=args.labels,
                opts=create_only(self.child(args.kms_ready), "replication"),
            )
            self.secrets[key] = secret
            if key in self.passwords:
                self.add_version(key, self.value_of(key, args.admin_users))

        self.secret_ids: dict[str, pulumi.Output[str]] = {
            key: s.secret_id for key, s in self.secrets.items()
        }
        self.register_outputs({"secret_ids": self.secret_ids})

    def value_of(self, key: str, admin_users: dict[str, str]) -> pulumi.Output[str]:
        password = self.passwords[key]
        if key in JSON_USERS:
            return _user_json(admin_users[JSON_USERS[key]], password)
        return pulumi.Output.secret(password)

    def add_version(self, key: str, value: pulumi.Input[str]) -> gcp.secretmanager.SecretVersion:
        """Store `value` as the secret's current version (a Pulumi secret in state)."""
        version = gcp.secretmanager.SecretVersion(
            f"{key.replace('_', '-')}-v",
            secret=self.secrets[key].id,
            secret_data=pulumi.Output.secret(value),
            opts=self.child(),
        )
        self.versions[key] = version
        return version
