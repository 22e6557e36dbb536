"""Artifact Registry for pipeline images, with cleanup policies so it does not grow forever."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from ._base import Component, create_only

UNTAGGED_MAX_AGE = "604800s"  # 7 days


@dataclass(frozen=True)
class RegistryArgs:
    project: str
    region: str
    repository: str
    keep_versions: int
    labels: dict[str, str]
    kms_key: pulumi.Input[str] | None = None  # CMEK; applies when the repository is created
    kms_ready: Sequence[pulumi.Resource] = ()  # the AR agent's grant on the key


class Registry(Component):
    """A DOCKER repository: untagged images older than a week are deleted, and the
    `keep_versions` most recent versions of every image are always kept."""

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Registry", name, opts)
        self.repository = gcp.artifactregistry.Repository(
            "images",
            repository_id=args.repository,
            project=args.project,
            location=args.region,
            format="DOCKER",
            kms_key_name=args.kms_key,
            description="ZenML pipeline images",
            cleanup_policy_dry_run=False,
            cleanup_policies=[
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="keep-recent",
                    action="KEEP",
                    most_recent_versions=gcp.artifactregistry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                        keep_count=args.keep_versions
                    ),
                ),
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="delete-old-untagged",
                    action="DELETE",
                    condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                        tag_state="UNTAGGED", older_than=UNTAGGED_MAX_AGE
                    ),
                ),
            ],
            labels=args.labels,
            opts=create_only(self.child(args.kms_ready), "kmsKeyName"),
        )
        self.repository_id: pulumi.Output[str] = self.repository.repository_id
        self.uri: pulumi.Output[str] = pulumi.Output.concat(
            args.region, "-docker.pkg.dev/", args.project, "/", self.repository.repository_id
        )
        self.register_outputs({"uri": self.uri})
