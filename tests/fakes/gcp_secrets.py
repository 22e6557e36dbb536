"""An in-memory Secret Manager with the `SecretAccess` interface (zenml_gcp_gitops.gcp.secrets).

Keeps every version so tests can check that rotation adds one, and counts calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from zenml_gcp_gitops.gcp.key_versions import SecretVersion


@dataclass
class FakeSecretManager:
    project: str = "test-project"
    labels: dict[str, str] = field(default_factory=dict)
    # secret id -> list of (version number, value, state)
    store: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)
    # (secret id, version number) -> creation time; tests move it back to age a version
    created: dict[tuple[str, int], datetime] = field(default_factory=dict)

    def seed(self, secret_id: str, value: str) -> None:
        self.add_version(secret_id, value)

    def read(self, secret_id: str) -> str | None:
        """As `versions/latest`: the newest version created, None unless it is ENABLED."""
        self.reads.append(secret_id)
        vs = self.store.get(secret_id, [])
        return vs[-1][1] if vs and vs[-1][2] == "ENABLED" else None

    def add_version(self, secret_id: str, value: str) -> str:
        vs = self.store.setdefault(secret_id, [])
        number = len(vs) + 1
        vs.append((number, value, "ENABLED"))
        self.created[(secret_id, number)] = datetime.now(UTC)
        return f"projects/{self.project}/secrets/{secret_id}/versions/{number}"

    def destroy_versions(self, secret_id: str) -> int:
        vs = self.store.get(secret_id, [])
        count = sum(1 for v in vs if v[2] == "ENABLED")
        self.store[secret_id] = [(n, "", "DESTROYED") for n, _, _ in vs]
        return count

    def enabled_values(self, secret_id: str) -> list[str]:
        return [v for _, v, s in self.store.get(secret_id, []) if s == "ENABLED"]

    def versions(self, secret_id: str) -> list[SecretVersion]:
        return [
            SecretVersion(n, state, self.created[(secret_id, n)])
            for n, _, state in self.store.get(secret_id, [])
        ]

    def _set(self, secret_id: str, number: int, state: str) -> None:
        vs = self.store[secret_id]
        for i, (n, value, old) in enumerate(vs):
            if n == number:
                if old == "DESTROYED":
                    raise ValueError(f"version {number} of {secret_id} is destroyed")
                vs[i] = (n, "" if state == "DESTROYED" else value, state)
                return
        raise KeyError(number)

    def disable_version(self, secret_id: str, number: int) -> None:
        self._set(secret_id, number, "DISABLED")

    def destroy_version(self, secret_id: str, number: int) -> None:
        self._set(secret_id, number, "DESTROYED")

    def states(self, secret_id: str) -> list[str]:
        return [s for _, _, s in self.store.get(secret_id, [])]
