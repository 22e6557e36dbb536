"""The Pulumi stack's backend settings: the secrets provider and its passphrase."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from ..config import DeploymentConfig


def secrets_provider(cfg: DeploymentConfig) -> str:
    """`passphrase`, or the Cloud KMS key preflight made for the state's secrets."""
    if cfg.secrets_provider == "passphrase":
        return "passphrase"
    n = cfg.names
    return (
        f"gcpkms://projects/{cfg.project}/locations/{cfg.region}/keyRings/"
        f"{n.state_kms_keyring}/cryptoKeys/{n.state_kms_key}"
    )


def require_passphrase(cfg: DeploymentConfig, env: dict[str, str] | None = None) -> None:
    env = env if env is not None else dict(os.environ)
    if cfg.secrets_provider == "passphrase" and not (
        env.get("PULUMI_CONFIG_PASSPHRASE") is not None or env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    ):
        raise UserError(
            "--secrets-provider passphrase needs PULUMI_CONFIG_PASSPHRASE (or "
            "PULUMI_CONFIG_PASSPHRASE_FILE) in the environment",
            "export PULUMI_CONFIG_PASSPHRASE=... and keep it safe: the state's secrets are "
            "encrypted with it and cannot be read without it",
        )
