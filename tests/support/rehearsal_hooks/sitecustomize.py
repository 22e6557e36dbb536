"""Loaded by every Python process whose PYTHONPATH holds this directory (the rehearsal's run
step): where the deployed stack would hand work to Google, it hands it to the rehearsal.

- The stack's image builder (ZenML's Cloud Build builder, which ours extends) builds the
  venv image from the build context ZenML made (tests/support/venv_image.py).
- The Kubernetes orchestrator's submission runs the orchestrator pod and the step pods as
  processes in that image, and the run waits for them as it waits for the real pods.

Everything before these two calls (the stack loaded from the server, its validation, the
requirements and Dockerfile, the build and snapshot records) is ZenML's own code. Set
ZGG_REHEARSAL_CONF to the rehearsal's JSON config; without it this file does nothing.
"""

from __future__ import annotations

import os
import sys

if os.environ.get("ZGG_REHEARSAL_CONF"):
    try:
        import importlib.util
        import json
        import tempfile
        from pathlib import Path
        from typing import Any

        _conf = json.loads(Path(os.environ["ZGG_REHEARSAL_CONF"]).read_text())
        _spec = importlib.util.spec_from_file_location("zgg_venv_image", _conf["venv_image"])
        assert _spec is not None and _spec.loader is not None
        _vi = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_vi)

        from zenml.integrations.gcp.image_builders.gcp_image_builder import GCPImageBuilder
        from zenml.integrations.kubernetes.orchestrators.kubernetes_orchestrator import (
            KubernetesOrchestrator,
        )
        from zenml.orchestrators.base_orchestrator import SubmissionResult

        _images: dict[str, Any] = {}

        def _build(self: Any, image_name: str, build_context: Any, *a: Any, **kw: Any) -> str:
            with tempfile.NamedTemporaryFile(suffix=".tar.gz", delete=False) as f:
                build_context.write_archive(f)
            image = _vi.build_image(Path(f.name), _conf)
            ref = f"{image_name}@{_vi.image_digest(image)}"
            _images[ref] = image
            return ref

        def _submit(
            self: Any, snapshot: Any, stack: Any, base_environment: dict[str, str],
            step_environments: dict[str, dict[str, str]], placeholder_run: Any = None,
        ) -> Any:  # fmt: skip
            assert placeholder_run is not None, "the client made no placeholder run"
            image = _images[self.get_image(snapshot=snapshot)]
            Path(_conf["dir"], "submission.json").write_text(
                json.dumps({"snapshot_id": str(snapshot.id), "run_id": str(placeholder_run.id),
                            "env_keys": sorted(base_environment)})
            )  # fmt: skip

            def wait() -> None:
                report = _vi.run_pods(
                    _conf, image, str(snapshot.id), str(placeholder_run.id), base_environment
                )
                if "error" in report:
                    raise RuntimeError(report["error"])

            return SubmissionResult(wait_for_completion=wait)

        GCPImageBuilder.build = _build  # type: ignore[method-assign]
        KubernetesOrchestrator.submit_pipeline = _submit  # type: ignore[method-assign]
    except Exception as e:  # noqa: BLE001 - Python would only print one line and go on
        print(f"rehearsal hooks failed to install: {type(e).__name__}: {e}", file=sys.stderr)
        os._exit(97)
