"""GitHub federation binds the repository's immutable IDs: looked up once, then recorded."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.gh import gh_calls, install_fake_gh
from tests.support.typed_options import typed
from zenml_gcp_gitops.config import build_config
from zenml_gcp_gitops.errors import UserError
from zenml_gcp_gitops.phases.base import PhaseContext
from zenml_gcp_gitops.phases.infra import _github_record, with_github_ids
from zenml_gcp_gitops.zenml.github import GhClient, lookup_repo_ids

BASE = {"project": "acme-ml-prod", "region": "europe-west4", "github_repo": "acme/ml"}


def test_ids_come_from_gh_once_and_then_from_the_record(tmp_path: Path) -> None:
    exe = install_fake_gh(tmp_path)
    (tmp_path / "repo-ids").write_text("4242 77")
    ctx = PhaseContext(cfg=build_config(None, BASE), **typed({"gh": GhClient(str(exe))}))
    cfg = with_github_ids(ctx)
    assert (cfg.github_repo_id, cfg.github_owner_id) == (4242, 77)
    assert ["api", "repos/acme/ml"] in [c["args"] for c in gh_calls(tmp_path)]

    # the next deploy reads what the infra phase recorded, and asks nobody
    (tmp_path / "repo-ids").unlink()
    ctx.recorded["infra"] = {"github": _github_record(cfg)}
    calls = len(gh_calls(tmp_path))
    again = with_github_ids(ctx)
    assert (again.github_repo_id, again.github_owner_id) == (4242, 77)
    assert len(gh_calls(tmp_path)) == calls


def test_ids_in_the_config_win_and_no_repo_needs_none(tmp_path: Path) -> None:
    exe = install_fake_gh(tmp_path)
    cfg = build_config(None, {**BASE, "github_repo_id": 1, "github_owner_id": 2})
    assert with_github_ids(PhaseContext(cfg=cfg, **typed({"gh": GhClient(str(exe))}))) is cfg
    plain = build_config(None, {k: v for k, v in BASE.items() if k != "github_repo"})
    assert with_github_ids(PhaseContext(cfg=plain)) is plain
    assert gh_calls(tmp_path) == []


@pytest.fixture
def github_api() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/repos/acme/ml":
                body = json.dumps({"id": 99, "owner": {"id": 5}}).encode()
                self.send_response(200)
            else:
                body = b'{"message": "Not Found"}'
                self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_without_gh_the_public_api_answers(tmp_path: Path, github_api: str) -> None:
    logged_out = GhClient(str(install_fake_gh(tmp_path, logged_in=False)))
    assert lookup_repo_ids("acme/ml", logged_out, api_url=github_api) == (99, 5)
    with pytest.raises(UserError) as e:
        lookup_repo_ids("acme/gone", logged_out, api_url=github_api)
    assert "github_repo_id" in (e.value.hint or "")
