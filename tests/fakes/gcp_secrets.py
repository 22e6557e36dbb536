"""An in-memory Secret Manager with the `SecretAccess` interface (zenml_gcp_gitops.gcp_secrets).

Keeps every version so tests can check that rotation adds one, and counts calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeSecretManager:
    project: str = "test-project"
    labels: dict[str, str] = field(default_factory=dict)
    # secret id -> list of (version number, value, state)
    versions: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)

    def seed(self, secret_id: str, value: str) -> None:
        self.add_version(secret_id, value)

    def read(self, secret_id: str) -> str | None:
        self.reads.append(secret_id)
        enabled = [v for v in self.versions.get(secret_id, []) if v[2] == "ENABLED"]
        return enabled[-1][1] if enabled else None

    def add_version(self, secret_id: str, value: str) -> str:
        vs = self.versions.setdefault(secret_id, [])
        number = len(vs) + 1
        vs.append((number, value, "ENABLED"))
        return f"projects/{self.project}/secrets/{secret_id}/versions/{number}"

    def destroy_versions(self, secret_id: str) -> int:
        vs = self.versions.get(secret_id, [])
        count = sum(1 for v in vs if v[2] == "ENABLED")
        self.versions[secret_id] = [(n, "", "DESTROYED") for n, _, _ in vs]
        return count

    def enabled_values(self, secret_id: str) -> list[str]:
        return [v for _, v, s in self.versions.get(secret_id, []) if s == "ENABLED"]
