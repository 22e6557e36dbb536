"""Customer-managed encryption: one key ring and one rotating key for every store that takes it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from ._base import Component

ROTATION_PERIOD = "7776000s"  # 90 days
ENCRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"

# Services whose Google-managed agent encrypts with the stack's key (the GCS agent is
# looked up by the Storage component instead: it exists in every project).
CMEK_SERVICES: tuple[str, ...] = (
    "artifactregistry.googleapis.com",
    "secretmanager.googleapis.com",
    "sqladmin.googleapis.com",
)


@dataclass(frozen=True)
class KmsArgs:
    project: str
    location: str  # must equal the stores' location for CMEK
    key_ring: str
    key: str
    labels: dict[str, str]
    protect: bool = True
    # Adopt a key ring / key that GCP kept from an earlier deployment (IDs found by preflight).
    import_key_ring: str | None = None
    import_key: str | None = None
    services: tuple[str, ...] = field(default=CMEK_SERVICES)


class Kms(Component):
    """Key ring + symmetric key with automatic rotation, and the service agents that use it.

    GCP never deletes key rings or keys, so both are retained on delete: `destroy` only
    forgets them, and a later deploy with the same name adopts them (`import`) instead of
    failing on "already exists". The key is also `protect`ed, so only `destroy --force`
    lets Pulumi forget it. The key's versions are never destroyed by this program: data
    encrypted with it elsewhere (backups, exports) stays readable.
    """

    def __init__(self, name: str, args: KmsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Kms", name, opts)
        ring_opts = self.child()
        ring_opts.retain_on_delete = True
        ring_opts.import_ = args.import_key_ring
        self.key_ring = gcp.kms.KeyRing(
            "keyring",
            name=args.key_ring,
            location=args.location,
            project=args.project,
            opts=ring_opts,
        )
        key_opts = self.child(protect=args.protect)
        key_opts.retain_on_delete = True
        key_opts.import_ = args.import_key
        self.key = gcp.kms.CryptoKey(
            "key",
            name=args.key,
            key_ring=self.key_ring.id,
            purpose="ENCRYPT_DECRYPT",
            rotation_period=ROTATION_PERIOD,
            destroy_scheduled_duration="2592000s",  # 30 days to notice a mistaken destroy
            labels=args.labels,
            opts=key_opts,
        )
        self.key_id: pulumi.Output[str] = self.key.id
        # Each service's agent exists only once something asks for it: create it, then let it
        # use the key, before any repository, secret or instance refers to the key.
        self.grants: dict[str, gcp.kms.CryptoKeyIAMMember] = {}
        for service in args.services:
            short = service.split(".")[0]
            agent = gcp.projects.ServiceIdentity(
                f"agent-{short}", project=args.project, service=service, opts=self.child()
            )
            self.grants[service] = gcp.kms.CryptoKeyIAMMember(
                f"{short}-agent-kms",
                crypto_key_id=self.key.id,
                role=ENCRYPTER,
                member=agent.email.apply(lambda email: f"serviceAccount:{email}"),
                opts=self.child(),
            )
        self.register_outputs({"key_id": self.key_id})

    def grant(self, service: str) -> list[pulumi.Resource]:
        """What a store encrypted by `service` must wait for."""
        return [self.grants[service]] if service in self.grants else []
