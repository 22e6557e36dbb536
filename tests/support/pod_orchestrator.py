"""The Kubernetes orchestrator pod, less the Kubernetes API: run in the image with the
environment the client gave the orchestrator pod.

    python pod_orchestrator.py SNAPSHOT_ID RUN_ID   -> one JSON line: every step pod to start

It does what ZenML's `kubernetes_orchestrator_entrypoint.main` does before it creates the
step pods: loads the snapshot and the active stack (every flavor, as the pod must), claims
the placeholder run with its orchestrator run id, and computes each step pod's command,
arguments and environment with the same ZenML calls. Steps are listed upstream first.
"""

from __future__ import annotations

import json
import socket
import sys


def main(snapshot_id: str, run_id: str) -> None:
    from zenml.client import Client
    from zenml.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
    from zenml.integrations.kubernetes.orchestrators.kubernetes_orchestrator import (
        ENV_ZENML_KUBERNETES_RUN_ID,
        KubernetesOrchestrator,
    )
    from zenml.models import PipelineRunUpdate
    from zenml.orchestrators.utils import get_config_environment_vars
    from zenml.utils import env_utils

    client = Client()
    snapshot = client.get_snapshot(snapshot_id)
    stack = client.active_stack
    orchestrator = stack.orchestrator
    assert isinstance(orchestrator, KubernetesOrchestrator), type(orchestrator)
    settings = orchestrator.get_settings(snapshot)
    orchestrator_run_id = socket.gethostname() + "-rehearsal"
    client.zen_store.update_run(
        run_id=run_id, run_update=PipelineRunUpdate(orchestrator_run_id=orchestrator_run_id)
    )
    command = StepEntrypointConfiguration.get_entrypoint_command()
    shared_env, secrets = get_config_environment_vars()
    shared_env[ENV_ZENML_KUBERNETES_RUN_ID] = orchestrator_run_id

    order: list[str] = []
    pending = dict(snapshot.step_configurations)
    while pending:
        ready = [n for n, s in pending.items() if set(s.spec.upstream_steps) <= set(order)]
        if not ready:
            raise RuntimeError(f"no step is ready among {sorted(pending)}")
        for name in ready:
            order.append(name)
            del pending[name]

    steps = []
    for name in order:
        step = snapshot.step_configurations[name]
        env = dict(shared_env)
        env.update(env_utils.get_runtime_environment(config=step.config, stack=stack))
        env.update(secrets)
        steps.append(
            {
                "name": name,
                "image": KubernetesOrchestrator.get_image(snapshot=snapshot, step_name=name),
                "command": command,
                "args": StepEntrypointConfiguration.get_entrypoint_arguments(
                    step_name=name, snapshot_id=snapshot.id
                ),
                "env": env,
                "service_account": settings.step_pod_service_account_name
                or settings.service_account_name,
            }
        )
    print(
        json.dumps(
            {
                "stack": stack.name,
                "flavors": {str(c.type.value): c.flavor for c in stack.components.values()},
                "orchestrator_run_id": orchestrator_run_id,
                "steps": steps,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
