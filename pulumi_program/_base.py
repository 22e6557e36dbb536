"""Small helpers shared by the components: a base class, type tokens, output plumbing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import pulumi

from zenml_gcp_gitops.state.replace_guard import protect_resource

# Component type tokens read `zenml-gcp-gitops:infra:<Concern>` in URNs and in the plan.
TYPE_PREFIX = "zenml-gcp-gitops:infra"

T = TypeVar("T")


def component_type(concern: str) -> str:
    return f"{TYPE_PREFIX}:{concern}"


class Component(pulumi.ComponentResource):
    """A component whose children inherit its `depends_on`.

    Pulumi does not pass a component's dependencies on to the resources created inside it,
    so `depends_on=[apis]` on the component alone would let a cluster start before the
    container API is on. `self.child()` gives every child the component's dependencies.
    """

    def __init__(self, concern: str, name: str, opts: pulumi.ResourceOptions | None) -> None:
        # children inherit the transformation, so every stateful resource is protected by type
        protect = pulumi.ResourceOptions(transformations=[protect_stateful])
        super().__init__(
            component_type(concern), name, None, pulumi.ResourceOptions.merge(opts, protect)
        )
        deps: Any = opts.depends_on if opts is not None else None
        if deps is None:
            self._deps: list[pulumi.Resource] = []
        elif isinstance(deps, pulumi.Resource):
            self._deps = [deps]
        else:
            self._deps = [d for d in deps if isinstance(d, pulumi.Resource)]

    def child(
        self, depends_on: Sequence[pulumi.Resource] = (), *, protect: bool | None = None
    ) -> pulumi.ResourceOptions:
        """Options for a resource owned by this component (URNs and previews nest under it)."""
        deps = [*self._deps, *depends_on]
        return pulumi.ResourceOptions(parent=self, depends_on=deps or None, protect=protect)


def protect_stateful(
    args: pulumi.ResourceTransformationArgs,
) -> pulumi.ResourceTransformationResult | None:
    """`protect` on the stateful types (`replace_guard.STATEFUL_TYPES`): Pulumi then refuses to
    delete or replace them, unless --allow-replace names them or `destroy --force` runs."""
    protect = protect_resource(args.type_, args.name)
    if protect is None:
        return None
    opts = pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(protect=protect))
    return pulumi.ResourceTransformationResult(args.props, opts)


def required(value: T | None, what: str) -> T:
    """Unwrap a provider output the API always sets once the resource exists."""
    if value is None:
        raise ValueError(f"{what} is not set by the provider")
    return value


def create_only(opts: pulumi.ResourceOptions, *properties: str) -> pulumi.ResourceOptions:
    """Set `properties` only when the resource is created.

    For settings GCP accepts only at creation (a repository's or an instance's key, a
    secret's replication): changing them would replace the resource and lose its data, so
    an existing deployment keeps what it has and never sees a diff on them.
    """
    opts.ignore_changes = [*(opts.ignore_changes or []), *properties]
    return opts
