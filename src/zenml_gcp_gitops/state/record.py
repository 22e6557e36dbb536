"""The deployment record: one JSON document per deployment, next to the Pulumi state.

It sits in the state bucket (`gs://<state bucket>/zenml-gcp-gitops/<name>/record.json`) or,
for a `file://` backend, under `user_data_dir()/deployments/<name>/record.json`. It holds each
phase's status, timestamps, a one-line error and the plain outputs later phases consume --
never a secret value: Pulumi secret outputs stay in the (encrypted) stack.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field, SecretStr

from ..config import SECRET_MARK, user_data_dir
from ..errors import UserError
from ..files import atomic_write

if TYPE_CHECKING:
    from ..config import DeploymentConfig


RECORD_VERSION = 1


RECORD_PREFIX = "zenml-gcp-gitops"  # object prefix inside the state bucket


PhaseStatus = Literal["pending", "started", "succeeded", "failed", "interrupted", "skipped"]


# Keys whose values must never reach the record even if a phase returns them by mistake.
_SECRET_KEY_RE = re.compile(r"(password|passphrase|private_key|secret_value|token|api_key)$", re.I)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class PhaseRecord(BaseModel):
    status: PhaseStatus = "pending"
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    error: str | None = None
    hint: str | None = None
    log_file: str | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)


class DeploymentRecord(BaseModel):
    version: int = RECORD_VERSION
    name: str
    project: str
    region: str
    state_url: str
    config_hash: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    phases: dict[str, PhaseRecord] = Field(default_factory=dict)
    destroy: dict[str, PhaseRecord] = Field(default_factory=dict)
    # day-2 operations: package_version, the last upgrade (its backup ID), servers stopped by
    # an unfinished restore
    operations: dict[str, Any] = Field(default_factory=dict)
    updated_at: str | None = None

    @classmethod
    def new(cls, cfg: DeploymentConfig) -> DeploymentRecord:
        return cls(
            name=cfg.name,
            project=cfg.project,
            region=cfg.region,
            state_url=cfg.state_url,
            config_hash=config_hash(cfg),
            config=cfg.redacted(),
        )

    def recorded_outputs(self) -> dict[str, dict[str, Any]]:
        return {name: rec.outputs for name, rec in self.phases.items() if rec.outputs}


def config_hash(cfg: DeploymentConfig) -> str:
    """Changes when the user changes anything that shapes the deployment."""
    data = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def scrub(value: Any) -> Any:
    """Plain JSON data with secret-looking values dropped (defence in depth for the record)."""
    if isinstance(value, SecretStr):
        return SECRET_MARK
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="python")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and _SECRET_KEY_RE.search(k) and v not in (None, "", SECRET_MARK):
                out[k] = SECRET_MARK
            else:
                out[k] = scrub(v)
        return out
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


# --------------------------------------------------------------------------- record stores


class RecordStore(Protocol):
    location: str

    def load(self) -> DeploymentRecord | None: ...
    def save(self, record: DeploymentRecord) -> None: ...
    def delete(self) -> None: ...


class RecordConflict(UserError):
    """The record changed since this run read it: another writer would be overwritten."""


def _conflict(location: str) -> RecordConflict:
    return RecordConflict(
        f"the deployment record {location} was changed by another run since this one read it",
        "nothing was overwritten; check `zenml-gcp-gitops status`, then re-run",
    )


def _parse_record(text: str, where: str) -> DeploymentRecord:
    try:
        return DeploymentRecord.model_validate_json(text)
    except ValueError as e:
        raise UserError(
            f"the deployment record at {where} is unreadable ({e.__class__.__name__})",
            "move it aside; `deploy` then re-runs every phase (all of them are idempotent)",
        ) from None


def _digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


class FileRecordStore:
    """A JSON file, replaced atomically (write to a temp file, fsync, rename).

    Saves are a compare-and-swap: under an `fcntl` lock, the file must still be what this
    store last read or wrote, so a concurrent writer's update is never lost silently."""

    def __init__(self, path: Path, cas: bool = True) -> None:
        self.path = path
        self.location = str(path)
        self.cas = cas  # off for the local mirror of a gs:// record (the bucket decides)
        self._seen: str | None = None  # digest of what we last read or wrote
        self._known = False  # False until the first load/save: no precondition yet

    def _read(self) -> str | None:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return None

    def load(self) -> DeploymentRecord | None:
        text = self._read()
        self._seen, self._known = _digest(text), True
        return None if text is None else _parse_record(text, self.location)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def save(self, record: DeploymentRecord) -> None:
        record.updated_at = _now()
        text = record.model_dump_json(indent=2)
        with self._locked():
            if self.cas and self._known and _digest(self._read()) != self._seen:
                raise _conflict(self.location)
            atomic_write(self.path, text)
        self._seen, self._known = _digest(text), True

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
        self._seen, self._known = None, True


class GcsRecordStore:
    """An object in the state bucket (GCS uploads are atomic), mirrored locally.

    Before preflight has created the bucket, saves land only in the local mirror; the first
    save after the bucket exists uploads the whole record.
    """

    def __init__(self, bucket: str, blob: str, client: Any, mirror: FileRecordStore) -> None:
        self.bucket_name = bucket
        self.blob_name = blob
        self.client = client
        self.mirror = mirror
        self.location = f"gs://{bucket}/{blob}"
        self.generation: int | None = None  # of the object we last read/wrote; 0: none

    def _blob(self, name: str | None = None) -> Any:
        return self.client.bucket(self.bucket_name).blob(name or self.blob_name)

    def load(self) -> DeploymentRecord | None:
        from google.api_core import exceptions as gexc

        try:
            blob = self.client.bucket(self.bucket_name).get_blob(self.blob_name)
            if blob is None:
                self.generation = 0
                return self.mirror.load()
            text = blob.download_as_text(if_generation_match=blob.generation)
            self.generation = int(blob.generation)
        except gexc.NotFound:
            self.generation = 0
            return self.mirror.load()
        except gexc.PreconditionFailed:
            return self.load()  # replaced between the metadata read and the download
        except gexc.Forbidden:
            raise self._forbidden() from None
        return _parse_record(text, self.location)

    def _forbidden(self) -> UserError:
        return UserError(
            f"you may not read or write the deployment record {self.location}",
            f"you need storage.objects.* on gs://{self.bucket_name} (roles/storage.objectAdmin); "
            "if the bucket is not yours, choose another --name or --state",
        )

    def save(self, record: DeploymentRecord) -> None:
        from google.api_core import exceptions as gexc

        self.mirror.save(record)
        blob = self._blob()
        try:
            # compare-and-swap: only over the generation this run read or wrote last
            blob.upload_from_string(
                record.model_dump_json(indent=2),
                content_type="application/json",
                if_generation_match=self.generation,
            )
            self.generation = int(blob.generation) if blob.generation is not None else None
        except gexc.NotFound:
            pass  # no bucket yet: preflight creates it
        except gexc.PreconditionFailed:
            raise _conflict(self.location) from None
        except gexc.Forbidden:
            raise self._forbidden() from None

    def delete(self) -> None:
        from google.api_core import exceptions as gexc

        self.mirror.delete()
        with contextlib.suppress(gexc.NotFound):
            self._blob().delete()


def make_lease(cfg: DeploymentConfig, store: RecordStore, command: str | None = None) -> Any:
    """The deploy lease for this deployment: a local lock, plus the bucket side for gs://."""
    from .lease import DeployLease, GcsLease

    remote = None
    if isinstance(store, GcsRecordStore):
        blob = store.blob_name.rsplit("/", 1)[0] + "/lease.json"
        remote = GcsLease(store.client, store.bucket_name, blob)
    return DeployLease(cfg.name, local_record_path(cfg).parent, remote, command)


def local_record_path(cfg: DeploymentConfig) -> Path:
    return user_data_dir() / "deployments" / cfg.name / "record.json"


def record_store(cfg: DeploymentConfig, storage_client: Any = None) -> RecordStore:
    """The record next to the state: in the state bucket for gs://, else under the data dir."""
    if cfg.is_local_backend:
        return FileRecordStore(local_record_path(cfg))
    mirror = FileRecordStore(local_record_path(cfg), cas=False)
    bucket, _, prefix = cfg.state_url.removeprefix("gs://").partition("/")
    blob = "/".join(p for p in (prefix.strip("/"), RECORD_PREFIX, cfg.name, "record.json") if p)
    if storage_client is None:
        import google.cloud.storage as storage

        from ..gcp.api import GcpApi

        # the credential check comes first: without ADC this is the one-line fix, not the
        # traceback storage.Client would raise
        credentials = GcpApi(cfg).credentials()
        storage_client = storage.Client(project=cfg.project, credentials=credentials)
    return GcsRecordStore(bucket, blob, storage_client, mirror)
