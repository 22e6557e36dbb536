"""The backup bucket and the artifact buckets, through google-cloud-storage.

Layout of the backup bucket:

    backups/<UTC timestamp>/zenml.sql.gz           one SQL export per database
    backups/<UTC timestamp>/mlflow.sql.gz
    backups/<UTC timestamp>/mlflow_auth.sql.gz
    backups/<UTC timestamp>/generations/<bucket>.json   object -> generation at backup time
    backups/<UTC timestamp>/manifest.json          written last: a backup without one is partial
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import UserError

PREFIX = "backups/"
MANIFEST = "manifest.json"


class BackupStore:
    """Reads and writes one bucket; `client` is a google.cloud.storage.Client (or the emulator's)."""

    def __init__(self, bucket: str, client: Any) -> None:
        self.bucket = bucket
        self.client = client

    def uri(self, name: str) -> str:
        return f"gs://{self.bucket}/{name}"

    def _forbidden(self, what: str) -> UserError:
        return UserError(
            f"you may not {what} gs://{self.bucket}",
            "you need roles/storage.objectAdmin on the backup bucket",
        )

    def put_json(self, name: str, data: Any) -> None:
        from google.api_core import exceptions as gexc

        blob = self.client.bucket(self.bucket).blob(name)
        try:
            blob.upload_from_string(
                json.dumps(data, indent=2, sort_keys=True), content_type="application/json"
            )
        except gexc.NotFound:
            raise UserError(
                f"the backup bucket gs://{self.bucket} does not exist",
                "run `zenml-gcp-gitops deploy` first: the infra phase creates it",
            ) from None
        except gexc.Forbidden:
            raise self._forbidden("write to") from None

    def get_json(self, name: str) -> Any:
        from google.api_core import exceptions as gexc

        try:
            text = self.client.bucket(self.bucket).blob(name).download_as_text()
        except gexc.NotFound:
            return None
        except gexc.Forbidden:
            raise self._forbidden("read") from None
        return json.loads(text)

    def exists(self, name: str) -> bool:
        return bool(self.client.bucket(self.bucket).blob(name).exists())

    def names(self, prefix: str) -> list[str]:
        from google.api_core import exceptions as gexc

        try:
            return [b.name for b in self.client.list_blobs(self.bucket, prefix=prefix)]
        except gexc.NotFound:
            return []
        except gexc.Forbidden:
            raise self._forbidden("list") from None

    def backup_ids(self) -> list[str]:
        """IDs (timestamps) of the backups whose manifest exists, oldest first."""
        ids = set()
        for name in self.names(PREFIX):
            rest = name[len(PREFIX) :]
            backup_id, _, leaf = rest.partition("/")
            if leaf == MANIFEST:
                ids.add(backup_id)
        return sorted(ids)


def generations(client: Any, bucket: str) -> dict[str, int]:
    """Live object name -> generation: what the artifact bucket held at this moment.

    The buckets are versioned and no rule deletes a live object, so these generations stay
    readable after a restore even if an object was overwritten or deleted later."""
    return {
        b.name: int(b.generation)
        for b in client.list_blobs(bucket)
        if getattr(b, "generation", None) is not None
    }
