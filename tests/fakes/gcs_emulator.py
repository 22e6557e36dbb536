"""fake-gcs-server (from PyPI) on a free loopback port, with a google-cloud-storage client.

The real storage client talks to a real GCS API implementation: object generations, listing,
404s and uploads behave as the product's code meets them on GCP.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zenml_gcp_gitops.local import services as sv
from zenml_gcp_gitops.local.rehearsal import Layout, gcs_spec


@contextmanager
def gcs_emulator(base: Path, buckets: list[str]) -> Iterator[Any]:
    """Yield a storage.Client bound to a fresh emulator holding `buckets`."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

    spec = gcs_spec(Layout(base), sv.free_port())
    svc = sv.start(spec, base)
    try:
        sv.wait_ready([(spec, svc)])
        for b in buckets:
            req = urllib.request.Request(
                f"{svc.url}/storage/v1/b?project=test",
                data=json.dumps({"name": b}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            urllib.request.urlopen(req, timeout=10).close()
        yield storage.Client(
            project="test",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": svc.url},
        )
    finally:
        sv.stop(svc, timeout=10)
