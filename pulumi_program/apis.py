"""The Google APIs the stack needs. Every other component depends on this one."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from ._base import Component

BASE_SERVICES: tuple[str, ...] = (
    # Project IAM members, audit configs and the project lookup. Preflight enables it (and
    # serviceusage) first: the lookup runs before any `Service` here is on.
    "cloudresourcemanager.googleapis.com",
    "serviceusage.googleapis.com",  # the `Service` and agent (`ServiceIdentity`) resources
    "storage.googleapis.com",  # buckets and the GCS agent lookup
    "compute.googleapis.com",
    "container.googleapis.com",
    "sqladmin.googleapis.com",
    "servicenetworking.googleapis.com",
    "secretmanager.googleapis.com",
    "cloudkms.googleapis.com",
    "artifactregistry.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "cloudbuild.googleapis.com",
    # STS exchanges GitHub OIDC tokens (WIF) and GKE workload identity tokens.
    "sts.googleapis.com",
)
VERTEX_SERVICES: tuple[str, ...] = ("aiplatform.googleapis.com",)


BINAUTHZ_SERVICES: tuple[str, ...] = ("binaryauthorization.googleapis.com",)


def services_for(orchestrator: str, binary_authorization: bool = False) -> tuple[str, ...]:
    return (
        BASE_SERVICES
        + (VERTEX_SERVICES if orchestrator == "vertex" else ())
        + (BINAUTHZ_SERVICES if binary_authorization else ())
    )


@dataclass(frozen=True)
class ApisArgs:
    project: str
    services: tuple[str, ...]


class Apis(Component):
    """Enables the APIs. They stay enabled on destroy: other workloads may share the project."""

    def __init__(self, name: str, args: ApisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Apis", name, opts)
        self.services: dict[str, gcp.projects.Service] = {
            svc: gcp.projects.Service(
                svc.split(".")[0],
                project=args.project,
                service=svc,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=self.child(),
            )
            for svc in args.services
        }
        self.register_outputs({"services": list(args.services)})
