"""A GCE metadata server on loopback: what Workload Identity answers inside a GKE pod.

google-auth finds it through GCE_METADATA_HOST / GCE_METADATA_IP (see `env()`), detects
"running on GCP" from its `Metadata-Flavor: Google` reply, and takes the project, the
service account and short-lived access tokens from it. Every token it issues is recorded,
so a test can tell which process really asked for Google credentials.

    with gce_metadata(project, email) as md:
        subprocess.run(..., env={**os.environ, **md.env()})
        md.tokens_issued   # how many token requests it answered
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class MetadataServer:
    project: str
    email: str
    host: str = ""
    tokens: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    @property
    def tokens_issued(self) -> int:
        return len(self.tokens)

    def env(self) -> dict[str, str]:
        """The variables that point google-auth at this server (and away from any ADC file)."""
        return {
            "GCE_METADATA_HOST": self.host,
            "GCE_METADATA_IP": self.host,
            "NO_GCE_CHECK": "false",
            "GOOGLE_CLOUD_PROJECT": self.project,
        }

    def answer(self, path: str) -> tuple[int, str, str]:
        """(status, content type, body) for a GET of `path`."""
        sa = "/computeMetadata/v1/instance/service-accounts/"
        if path in ("", "/"):
            return 200, "text/plain", ""
        if path == "/computeMetadata/v1/project/project-id":
            return 200, "text/plain", self.project
        if path == "/computeMetadata/v1/universe/universe-domain":
            return 200, "text/plain", "googleapis.com"
        if path.startswith(sa) and path.endswith("/token"):
            token = "ya29.rehearsal-" + secrets.token_urlsafe(16)
            self.tokens.append(token)
            body = {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
            return 200, "application/json", json.dumps(body)
        if path.startswith(sa) and path.rstrip("/").endswith(("default", self.email)):
            info = {
                "email": self.email,
                "aliases": ["default"],
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            }
            return 200, "application/json", json.dumps(info)
        if path == sa.rstrip("/") or path == sa:
            return 200, "text/plain", f"default/\n{self.email}/\n"
        return 404, "text/plain", "not found"


@contextmanager
def gce_metadata(project: str, email: str) -> Iterator[MetadataServer]:
    server = MetadataServer(project=project, email=email)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            server.paths.append(path)
            if self.headers.get("Metadata-Flavor") != "Google":
                status, ctype, body = 403, "text/plain", "Metadata-Flavor header missing"
            else:
                status, ctype, body = server.answer(path)
            data = body.encode()
            self.send_response(status)
            self.send_header("Metadata-Flavor", "Google")
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.host = f"127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
