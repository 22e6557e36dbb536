"""Customer-managed encryption: one key ring and one rotating key for the stack's buckets."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from ._base import Component

ROTATION_PERIOD = "7776000s"  # 90 days


@dataclass(frozen=True)
class KmsArgs:
    project: str
    location: str  # must equal the buckets' location for CMEK
    key_ring: str
    key: str
    labels: dict[str, str]


class Kms(Component):
    """Key ring + symmetric key with automatic rotation.

    GCP never deletes key rings; `pulumi destroy` only forgets them, and the key's versions
    are scheduled for destruction (30 days), so objects stay readable during that window.
    """

    def __init__(self, name: str, args: KmsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Kms", name, opts)
        self.key_ring = gcp.kms.KeyRing(
            "keyring",
            name=args.key_ring,
            location=args.location,
            project=args.project,
            opts=self.child(),
        )
        self.key = gcp.kms.CryptoKey(
            "key",
            name=args.key,
            key_ring=self.key_ring.id,
            purpose="ENCRYPT_DECRYPT",
            rotation_period=ROTATION_PERIOD,
            destroy_scheduled_duration="2592000s",  # 30 days to notice a mistaken destroy
            labels=args.labels,
            opts=self.child(),
        )
        self.key_id: pulumi.Output[str] = self.key.id
        self.register_outputs({"key_id": self.key_id})
