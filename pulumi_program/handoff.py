"""The outputs the cluster side of a deploy needs, published as soon as that side exists.

Cloud SQL is the longest create of a first deploy, and only the servers need it. This
component waits for every resource of the components it is given (Pulumi expands a
component in `depends_on` to its children) and then registers the stack outputs that do not
come from the database. The engine's event stream carries them, so Argo CD and the apps
that need no database can start while the instance is still being created.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi

from zenml_gcp_gitops.outputs import HANDOFF_TYPE, handoff_fields


class Handoff(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        values: dict[str, pulumi.Output[Any]],
        after: Sequence[pulumi.Resource],
    ) -> None:
        super().__init__(HANDOFF_TYPE, name, None, pulumi.ResourceOptions(depends_on=list(after)))
        wanted = set(handoff_fields())
        # none of these is a secret (a CA certificate is public), but a provider may mark a
        # whole object secret for one nested field: events would then show "[secret]"
        self.register_outputs(
            {k: pulumi.Output.unsecret(v) for k, v in values.items() if k in wanted}
        )
