"""`zenml-gcp-gitops local up` in a real process, with stand-in services and registration.

    python -m tests.support.local_up_driver MARKER_DIR -- local up --name N --dir D ...

The three services are tiny HTTP servers in their own process groups, as the real ones are;
ZenML and the GCS emulator answer at once, MLflow never does (so `up` is still waiting for it).
Registration writes MARKER_DIR/registering and then blocks forever, like a registration
against a server that stopped answering. A test (or benchmark) waits for that file and sends
SIGINT: `up` must stop at once, stop what it started and exit 130.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any


def main() -> None:
    marker_dir = Path(sys.argv[1])
    argv = sys.argv[sys.argv.index("--") + 1 :]

    from zenml_gcp_gitops.local import rehearsal
    from zenml_gcp_gitops.local import services as sv

    def spec(name: str, ready: bool) -> Any:
        def build(lay: Any, port: int, *a: Any) -> sv.ServiceSpec:
            serve = (
                "import http.server; http.server.ThreadingHTTPServer(('127.0.0.1', "
                f"{port}), http.server.SimpleHTTPRequestHandler).serve_forever()"
                if ready
                else "import threading; threading.Event().wait()"
            )
            return sv.ServiceSpec(
                name=name, title=f"{name} server", argv=[sys.executable, "-c", serve],
                port=port, health_path="/", ready_timeout=3600,
            )  # fmt: skip

        return build

    def register(lay: Any, names: Any, state: Any) -> dict[str, Any]:
        (marker_dir / "registering").write_text("")
        threading.Event().wait()  # never answers
        raise AssertionError("unreachable")

    rehearsal.gcs_spec = spec("gcs", True)  # type: ignore[assignment]
    rehearsal.mlflow_spec = spec("mlflow", False)  # type: ignore[assignment]
    rehearsal.zenml_spec = spec("zenml", True)  # type: ignore[assignment]
    rehearsal.create_buckets = lambda url, buckets: None  # type: ignore[assignment]
    rehearsal._require_modules = lambda: None  # type: ignore[assignment]
    rehearsal._import_zenml_client = lambda: None  # type: ignore[assignment]
    rehearsal._register = register  # type: ignore[assignment]

    from zenml_gcp_gitops.cli import main as cli_main

    sys.argv = ["zenml-gcp-gitops", *argv]
    cli_main()


if __name__ == "__main__":
    main()
