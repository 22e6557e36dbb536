"""Fakes of google-cloud-storage's client, bucket and blob, as the product uses them: GCS's
generation numbers and `if_generation_match` preconditions, noncurrent versions in a versioned
bucket (`list_blobs(versions=True)` lists them), and a bucket that cannot be deleted while it
holds any object or version."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from google.api_core import exceptions as gexc


class FakeBlob:
    """An object with GCS's generation numbers and `if_generation_match` preconditions
    (0 means "must not exist")."""

    def __init__(self, bucket: FakeBucket, name: str) -> None:
        self.bucket = bucket
        self.name = name
        self.generation: int | None = None

    @property
    def _key(self) -> tuple[str, str]:
        return (self.bucket.name, self.name)

    def _check(self) -> None:
        if self.bucket.name not in self.bucket.client.buckets:
            raise gexc.NotFound(f"bucket {self.bucket.name} not found")

    def _precondition(self, if_generation_match: int | None) -> None:
        if if_generation_match is None:
            return
        current = self.bucket.client.generations.get(self._key, 0)
        if self._key not in self.bucket.client.objects:
            current = 0
        if current != if_generation_match:
            raise gexc.PreconditionFailed(f"{self.name}: generation {current}")

    def upload_from_string(
        self,
        data: str | bytes,
        content_type: str | None = None,
        if_generation_match: int | None = None,
    ) -> None:
        self._check()
        client = self.bucket.client
        with client.lock:
            self._precondition(if_generation_match)
            client._keep_noncurrent(self._key)
            client.objects[self._key] = data if isinstance(data, str) else data.decode()
            client.counter += 1
            client.generations[self._key] = client.counter
            self.generation = client.counter

    def download_as_text(self, if_generation_match: int | None = None) -> str:
        self._check()
        with self.bucket.client.lock:
            self._precondition(if_generation_match)
            try:
                text = self.bucket.client.objects[self._key]
            except KeyError:
                raise gexc.NotFound(f"{self.name} not found") from None
            self.generation = self.bucket.client.generations.get(self._key)
            return text

    def delete(self, if_generation_match: int | None = None) -> None:
        """As `Blob.delete`: with a generation, that version is gone for good; without one,
        in a versioned bucket, the live object becomes a noncurrent version."""
        self._check()
        client = self.bucket.client
        with client.lock:
            old = client.noncurrent.get(self._key, [])
            if self.generation is not None and self.generation in old:
                old.remove(self.generation)
                return
            self._precondition(if_generation_match)
            live = client.generations.get(self._key)
            if self.generation is not None and self.generation != live:
                raise gexc.NotFound(f"{self.name}#{self.generation}")
            if self.generation is None:
                client._keep_noncurrent(self._key)
            if client.objects.pop(self._key, None) is None:
                raise gexc.NotFound(self.name)


class FakeBucket:
    def __init__(self, client: FakeStorageClient, name: str) -> None:
        self.client = client
        self.name = name
        self.versioning_enabled = False
        self.iam_configuration = SimpleNamespace(
            uniform_bucket_level_access_enabled=False, public_access_prevention="inherited"
        )
        self.labels: dict[str, str] = {}
        self.location: str | None = None

    def blob(self, name: str) -> FakeBlob:
        return FakeBlob(self, name)

    def get_blob(self, name: str) -> FakeBlob | None:
        if self.name not in self.client.buckets:
            raise gexc.NotFound(f"bucket {self.name} not found")
        if (self.name, name) not in self.client.objects:
            return None
        blob = FakeBlob(self, name)
        blob.generation = self.client.generations.get((self.name, name))
        return blob

    def delete(self) -> None:
        """GCS refuses to delete a bucket that holds any object, noncurrent versions too."""
        c = self.client
        if self.name not in c.buckets:
            raise gexc.NotFound(f"bucket {self.name} not found")
        held = [k for k in c.objects if k[0] == self.name]
        held += [k for k, gens in c.noncurrent.items() if k[0] == self.name and gens]
        if held:
            raise gexc.Conflict("The bucket you tried to delete is not empty.")
        c.buckets.pop(self.name)


class FakeStorageClient:
    def __init__(self, foreign_buckets: set[str] | None = None) -> None:
        self.buckets: dict[str, FakeBucket] = {}
        self.objects: dict[tuple[str, str], str] = {}
        self.generations: dict[tuple[str, str], int] = {}
        self.counter = 0
        self.lock = threading.Lock()
        self.foreign = set(foreign_buckets or ())  # exist, but belong to another project
        # (bucket, object) -> generations kept as noncurrent versions (versioned buckets)
        self.noncurrent: dict[tuple[str, str], list[int]] = {}

    def _keep_noncurrent(self, key: tuple[str, str]) -> None:
        b = self.buckets.get(key[0])
        if b is not None and b.versioning_enabled and key in self.objects:
            self.noncurrent.setdefault(key, []).append(self.generations[key])

    def bucket(self, name: str) -> FakeBucket:
        return self.buckets.get(name) or FakeBucket(self, name)

    def lookup_bucket(self, name: str) -> FakeBucket | None:
        if name in self.foreign:
            raise gexc.Forbidden(f"caller does not have storage.buckets.get access to {name}")
        return self.buckets.get(name)

    def get_bucket(self, name: str) -> FakeBucket:
        if name not in self.buckets:
            raise gexc.NotFound(name)
        return self.buckets[name]

    def create_bucket(self, bucket: FakeBucket, location: str | None = None) -> FakeBucket:
        if bucket.name in self.buckets or bucket.name in self.foreign:
            raise gexc.Conflict(f"bucket {bucket.name} already exists")
        bucket.location = location
        self.buckets[bucket.name] = bucket
        return bucket

    def list_blobs(self, bucket: str, prefix: str = "", versions: bool = False) -> list[FakeBlob]:
        """Live objects; with `versions`, noncurrent versions too, each with its generation."""
        b = self.bucket(bucket)
        found: list[FakeBlob] = []
        for bn, name in list(self.objects):
            if bn == bucket and name.startswith(prefix):
                blob = FakeBlob(b, name)
                blob.generation = self.generations.get((bn, name))
                found.append(blob)
        if versions:
            for (bn, name), gens in self.noncurrent.items():
                if bn == bucket and name.startswith(prefix):
                    for g in gens:
                        blob = FakeBlob(b, name)
                        blob.generation = g
                        found.append(blob)
        return found
