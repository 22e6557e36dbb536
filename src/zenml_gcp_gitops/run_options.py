"""What one command asks for, typed: the user's flags (`RunOptions`) and, apart from them, the
clients a test injects instead of the real ones (`Services`).

The CLI parses flags into a `RunOptions` and hands it to the engine, which hands it to every
phase in its `PhaseContext`. It is frozen: a phase reads it and returns its results; it never
writes into it. `Services` fields left at None mean "build the real client"; production code
never sets them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import DeploymentConfig
    from .gcp.secrets import SecretAccess


@dataclass(frozen=True)
class RunOptions:
    """The user's flags. Every field has the CLI's default."""

    yes: bool = False  # answer yes to prompts (install Pulumi, destroy)
    force: bool = False  # destroy: lift deletion protection first
    # deploy: stateful resources it may replace or delete (`state.replace_guard.parse_allow`)
    allow_replace: frozenset[str] = frozenset()
    purge_state: bool = False  # destroy: also the state bucket, key and record
    verbose: bool = False
    write_kubeconfig: bool = False  # gitops: keep a kubeconfig for kubectl
    adopt: bool = False  # register/destroy: take over same-named objects that are not ours
    credentials_from_env: bool = False  # register/ci: MLflow/ZenML logins from the environment
    verify_connector: bool = True  # register: ask the server to verify the connector
    rotate: bool = False  # ci: a new API key even if one exists
    retain_minutes: int = 60  # ci: how long a rotated-away key keeps working
    github_repo: str | None = None  # ci: set the repository's Actions secrets
    zenml_url: str | None = None  # register/ci: the server, when not the recorded one
    timeout: float = 300.0  # register/ci: seconds the whole run may take against the server
    pulumi_root: str | None = None  # the Pulumi CLI's install root (else env, data dir, PATH)
    pulumi_home: str | None = None  # PULUMI_HOME for plugins
    work_dir: str | None = None  # the Pulumi workspace (else the data dir)
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment for Pulumi
    argocd_cache_dir: str | None = None  # where the Argo CD install manifest is cached
    skip_dns_wait: bool = False  # gitops: do not wait for public DNS to resolve the hosts
    # deploy: Argo CD and the apps that need no database start while infra creates Cloud SQL
    overlap: bool = True
    dns_wait_timeout: float = 900.0  # NS changes at a registrar can take a while to be seen
    dns_wait_interval: float = 10.0
    command: str | None = None  # the command line, recorded in the deploy lease
    skip_backup: bool = False  # deploy: upgrade ZenML/MLflow without the backup first
    allow_downgrade: bool = False  # deploy: an older ZenML server than the deployed one
    no_servers: bool = False  # backup/restore: do not log in to the live servers
    sql_poll: float = 5.0  # seconds between checks of a Cloud SQL export or import
    # gitops waits (seconds); None keeps the defaults of `gitops.health.WaitOptions`
    wave_timeout: float | None = None
    poll: float | None = None
    degraded_grace: float | None = None
    teardown_timeout: float | None = None


@dataclass
class Services:
    """Clients injected instead of the real ones; None builds the real one when needed."""

    program: Callable[[DeploymentConfig], Any] | None = None  # the Pulumi program
    pulumi_installer: Callable[..., Any] | None = None  # PulumiCommand.install
    gcp_api: Any = None  # preflight's GcpApi (`gcp_api.GcpApi`)
    storage_client: Any = None  # google-cloud-storage, for the record and the locks
    kube_api_client: Any = None  # kubernetes ApiClient of the cluster
    secret_manager: SecretAccess | None = None  # Secret Manager (or the local files)
    secret_outputs_reader: Callable[[DeploymentConfig, list[str]], dict[str, Any]] | None = None
    argocd_install_source: tuple[str, str] | None = None  # (url, sha256) of the manifest
    dns_api: Any = None  # preflight's Cloud DNS checks
    dns_resolver: Any = None  # public DNS lookups (DoH)
    lease_factory: Callable[[DeploymentConfig, Any], Any] | None = None  # the deploy lease
    sql_admin: Any = None  # Cloud SQL Admin (backup, restore)
    backup_runner: Callable[..., Any] | None = None  # the backup `deploy` takes before upgrades
    record_storage_client: Any = None  # storage for the record, for the ops commands
    gh: Any = None  # the GitHub client (repository IDs, Actions secrets)
    monitoring_session: Any = None  # an AuthorizedSession for Cloud Monitoring (status)
    sleep: Callable[[float], object] | None = None  # waits between retries (time.sleep)
    pause_waits: Any = None  # pause/resume: `ops.writers.Waits` (timeout, poll, sleep, clock)
