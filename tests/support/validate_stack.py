"""Load registered stacks the way a ZenML client does before a run, and report what fails.

    python tests/support/validate_stack.py STACK [STACK ...]   (client env points at the server)

Prints one JSON line {stack: [problem, ...]}; an empty list means the stack loads and
validates. Per component: the flavor is loaded from the server's flavor model, every written
configuration key must be a field of the flavor's config class (ZenML ignores unknown keys,
so a misspelt one would silently fall back to a default), the config class accepts the
values, and a linked connector offers the resource type the flavor asks for. The connector
must load into its auth method's config. Then `Stack.from_model(...).validate(
fail_if_secrets_missing=True)`, as ZenML runs it before submitting a pipeline.

A file, not `python -c`: ZenML resolves flavor sources against the main module's path.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def component_problems(client: Any, comp: Any) -> list[str]:
    from zenml.stack.flavor import Flavor

    where = f"{comp.type.value} '{comp.name}' ({comp.flavor_name})"
    try:
        flavor_model = client.get_flavor_by_name_and_type(comp.flavor_name, comp.type)
        flavor = Flavor.from_model(flavor_model)
        config_class = flavor.config_class
    except Exception as e:  # noqa: BLE001 - reported, the test shows it
        return [f"{where}: flavor does not load: {e}"]
    conf = dict(comp.configuration)
    problems = [
        f"{where}: '{key}' is not a setting of {config_class.__name__}"
        for key in sorted(set(conf) - set(config_class.model_fields))
    ]
    try:
        config_class(**conf)
    except Exception as e:  # noqa: BLE001
        problems.append(f"{where}: {config_class.__name__} rejects the configuration: {e}")
    reqs = flavor.service_connector_requirements
    if comp.connector is not None:
        connector = client.get_service_connector(comp.connector.id)
        if reqs is None:
            problems.append(f"{where}: linked to a connector, but the flavor takes none")
        elif reqs.resource_type not in (connector.resource_types or []):
            problems.append(
                f"{where}: the flavor needs a {reqs.resource_type} resource; connector "
                f"'{connector.name}' offers {connector.resource_types}"
            )
        elif reqs.resource_id_attr and conf.get(reqs.resource_id_attr) != (
            comp.connector_resource_id
        ):
            problems.append(
                f"{where}: connector resource {comp.connector_resource_id!r} is not its "
                f"{reqs.resource_id_attr} {conf.get(reqs.resource_id_attr)!r}"
            )
    return problems


def stack_problems(client: Any, name: str) -> list[str]:
    from zenml.service_connectors.service_connector_registry import (
        service_connector_registry,
    )
    from zenml.stack import Stack

    model = client.get_stack(name)
    problems: list[str] = []
    connectors = set()
    for comps in model.components.values():
        for comp in comps:
            full = client.get_stack_component(comp.type, comp.id)
            problems += component_problems(client, full)
            if full.connector is not None:
                connectors.add(full.connector.id)
    for cid in sorted(connectors, key=str):
        conn = client.get_service_connector(cid, expand_secrets=True)
        try:
            service_connector_registry.instantiate_connector(model=conn)
        except Exception as e:  # noqa: BLE001
            problems.append(f"connector '{conn.name}' does not load: {e}")
    try:
        Stack.from_model(model).validate(fail_if_secrets_missing=True)
    except Exception as e:  # noqa: BLE001
        problems.append(f"stack '{name}': {type(e).__name__}: {e}")
    return problems


def main(names: list[str]) -> None:
    from zenml.client import Client

    client = Client()
    print(json.dumps({name: stack_problems(client, name) for name in names}))


if __name__ == "__main__":
    main(sys.argv[1:])
