"""GitHub Actions secrets through the `gh` CLI, or the exact commands when it can't be used.

The API key goes to `gh` on stdin, never on a command line (other users can read argv).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess


class GhClient:
    """Runs the `gh` found on PATH (tests put a fake one first on PATH)."""

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable or shutil.which("gh")

    def usable(self) -> bool:
        if not self.executable:
            return False
        try:
            r = subprocess.run(
                [self.executable, "auth", "status"], capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return r.returncode == 0

    def set_secret(self, repo: str, name: str, value: str) -> None:
        assert self.executable
        r = subprocess.run(
            [self.executable, "secret", "set", name, "--repo", repo],
            input=value.encode(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        if r.returncode != 0:
            from ..errors import UserError

            err = r.stderr.decode(errors="replace").strip().splitlines()
            raise UserError(
                f"`gh secret set {name} --repo {repo}` failed: {err[-1] if err else r.returncode}",
                "check `gh auth status` and that you may administer the repository",
            )


def manual_commands(
    repo: str, zenml_url: str, secret_id: str, project: str, stack_id: str | None = None
) -> list[str]:
    """What to run by hand: the key comes from Secret Manager, piped, never typed."""
    q = shlex.quote
    stack = (
        [f"gh secret set ZENML_ACTIVE_STACK_ID --repo {q(repo)} --body {q(stack_id)}"]
        if stack_id
        else []
    )
    return [
        f"gh secret set ZENML_STORE_URL --repo {q(repo)} --body {q(zenml_url)}",
        *stack,
        f"gcloud secrets versions access latest --secret={q(secret_id)} --project={q(project)}"
        f" | gh secret set ZENML_STORE_API_KEY --repo {q(repo)}",
    ]


def set_repo_secrets(
    repo: str,
    zenml_url: str,
    api_key: str | None,
    *,
    secret_id: str,
    project: str,
    gh: GhClient | None = None,
    log: list[str],
    stack_id: str | None = None,
) -> str:
    """Set ZENML_STORE_URL/ZENML_STORE_API_KEY (and ZENML_ACTIVE_STACK_ID, so CI starts on
    the deployed stack) on `repo`; returns "set" or "manual"."""
    gh = gh or GhClient()
    if api_key and gh.usable():
        gh.set_secret(repo, "ZENML_STORE_URL", zenml_url)
        gh.set_secret(repo, "ZENML_STORE_API_KEY", api_key)
        names = "ZENML_STORE_URL and ZENML_STORE_API_KEY"
        if stack_id:
            gh.set_secret(repo, "ZENML_ACTIVE_STACK_ID", stack_id)
            names = "ZENML_STORE_URL, ZENML_STORE_API_KEY and ZENML_ACTIVE_STACK_ID"
        log.append(f"set {names} on {repo} with gh")
        return "set"
    reason = "gh is not installed or not logged in" if api_key else "the key is not at hand"
    log.append(f"GitHub secrets not set ({reason}); run:")
    log.extend("  " + c for c in manual_commands(repo, zenml_url, secret_id, project, stack_id))
    return "manual"


def lookup_repo_ids(
    repo: str, gh: GhClient | None = None, api_url: str = "https://api.github.com"
) -> tuple[int, int]:
    """(repository ID, owner ID) of `repo`: through `gh` where it is logged in (private
    repositories too), else the public GitHub API. Raises UserError with the manual fix."""
    import json

    from ..errors import UserError

    gh = gh or GhClient()
    data: dict[str, object] | None = None
    if gh.usable():
        assert gh.executable
        r = subprocess.run(
            [gh.executable, "api", f"repos/{repo}"], capture_output=True, timeout=60, check=False
        )
        if r.returncode == 0:
            data = json.loads(r.stdout)
    if data is None:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(
            f"{api_url}/repos/{repo}", headers={"Accept": "application/vnd.github+json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                data = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise UserError(
                f"cannot look up the IDs of GitHub repository {repo}: {e}",
                "set github_repo_id and github_owner_id in the config (`gh api repos/"
                f"{repo} --jq '.id, .owner.id'` prints them), or log in with `gh auth login`",
            ) from None
    owner = data.get("owner") if isinstance(data, dict) else None
    rid = data.get("id") if isinstance(data, dict) else None
    oid = owner.get("id") if isinstance(owner, dict) else None
    if not isinstance(rid, int) or not isinstance(oid, int):
        raise UserError(
            f"GitHub answered without the IDs of {repo}",
            "set github_repo_id and github_owner_id in the config",
        )
    return rid, oid
