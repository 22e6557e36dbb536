"""The stack as `zenml ...` command lines and as a YAML document (`register --print-commands`
and `--export`): the same spec `register` applies, with secret values as references."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..zenml.stack_spec import StackSpec


def _flag(key: str, value: Any) -> str:
    return shlex.quote(f"--{key}={value}")


def zenml_commands(spec: StackSpec) -> list[str]:
    """`zenml ...` command lines that recreate `spec` by hand; secret values are env refs."""
    q = shlex.quote
    lines: list[str] = []
    labels = " ".join(f"--label {q(f'{k}={v}')}" for k, v in spec.labels.items())
    for f in spec.flavors:  # needs zenml-gcp-gitops installed where it runs
        lines.append(f"zenml {f.type.replace('_', '-')} flavor register {q(f.source)}")
    for s in spec.secrets:
        values = " ".join(
            f'--{k}="${_env_name(s.name, k)}"' for k in sorted(s.values)
        )  # shell expands the user's env
        lines.append(f"zenml secret create {q(s.name)} {values}")
    if spec.connector is not None:
        c = spec.connector
        conf = " ".join(_flag(k, v) for k, v in c.configuration.items())
        secrets = " ".join(
            q(f"--{k}=@{_env_name(c.name, k).lower()}.json") for k in sorted(c.secrets)
        )
        parts = [
            f"zenml service-connector register {q(c.name)} --type {q(c.type)}",
            f"--auth-method {q(c.auth_method)}",
            conf,
            secrets,
            labels,
            "--no-verify",
        ]
        lines.append(" ".join(p for p in parts if p))
    for comp in spec.ordered_components():
        conf = " ".join(_flag(k, v) for k, v in comp.configuration.items())
        parts = [
            f"zenml {comp.type.replace('_', '-')} register {q(comp.name)} --flavor {q(comp.flavor)}",
            conf,
            labels,
        ]
        if spec.connector is not None and comp.connector_resource_type:
            parts.append(f"--connector {q(spec.connector.name)}")
            if comp.connector_resource_id:
                parts.append(f"--resource-id {q(comp.connector_resource_id)}")
        lines.append(" ".join(p for p in parts if p))
    flags = {
        "artifact_store": "-a",
        "container_registry": "-c",
        "orchestrator": "-o",
        "experiment_tracker": "-e",
        "image_builder": "-i",
        "step_operator": "-s",
        "model_deployer": "-d",
        "model_registry": "-r",
        "feature_store": "-f",
    }
    stack = " ".join(
        f"{flags.get(c.type, '--' + c.type)} {q(c.name)}" for c in spec.ordered_components()
    )
    lines.append(f"zenml stack register {q(spec.name)} {stack}")
    return lines


def _env_name(secret: str, key: str) -> str:
    return f"{secret}_{key}".upper().replace("-", "_").replace(":", "_")


def export_yaml(spec: StackSpec) -> dict[str, Any]:
    """The `zenml stack export` layout, so `zenml stack import` reads it."""
    from ..config import installed_zenml_version

    return {
        "stack_name": spec.name,
        "components": {
            c.type: {
                "name": c.name,
                "type": c.type,
                "flavor": c.flavor,
                "configuration": dict(c.configuration),
            }
            for c in spec.ordered_components()
        },
        "zenml_version": installed_zenml_version(),
    }


# ------------------------------------------------------------------------- register
