"""Small helpers shared by the components: type tokens, child options, output plumbing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import pulumi

# Component type tokens read `zenml-gcp-gitops:infra:<Concern>` in URNs and in the plan.
TYPE_PREFIX = "zenml-gcp-gitops:infra"

T = TypeVar("T")


def component_type(concern: str) -> str:
    return f"{TYPE_PREFIX}:{concern}"


def child(
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] | None = None,
    *,
    protect: bool | None = None,
) -> pulumi.ResourceOptions:
    """Options for a resource owned by a component (so URNs and previews nest under it)."""
    return pulumi.ResourceOptions(
        parent=parent, depends_on=list(depends_on) if depends_on else None, protect=protect
    )


def required(value: T | None, what: str) -> T:
    """Unwrap a provider output the API always sets once the resource exists."""
    if value is None:
        raise ValueError(f"{what} is not set by the provider")
    return value
