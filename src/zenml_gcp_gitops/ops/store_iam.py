"""A bucket IAM binding the operations add for a while and take back (google-cloud-storage).

Used when a point-in-time clone exports as a service account of its own: it gets the role the
program grants the instance's account on the backup bucket, only until the export is done.
Only a member this module added is removed.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError

EXPORT_ROLE = "roles/storage.objectAdmin"  # what the program grants the instance's account


def _policy(storage: Any, bucket: str) -> tuple[Any, Any]:
    b = storage.bucket(bucket)
    return b, b.get_iam_policy(requested_policy_version=3)


def grant(storage: Any, bucket: str, member: str, role: str = EXPORT_ROLE) -> bool:
    """Add `member` to `role` on the bucket; False when it was there already (not ours)."""
    from google.api_core import exceptions as gexc

    try:
        b, policy = _policy(storage, bucket)
        for binding in policy.bindings:
            if (
                binding["role"] == role
                and member in binding["members"]
                and not binding.get("condition")
            ):
                return False
        policy.bindings.append({"role": role, "members": {member}})
        b.set_iam_policy(policy)
    except gexc.Forbidden as e:
        raise UserError(
            f"could not grant {member} {role} on gs://{bucket} for the export: {e.message}",
            "you need roles/storage.admin on the backup bucket, or grant that role yourself",
        ) from None
    return True


def revoke(storage: Any, bucket: str, member: str, role: str = EXPORT_ROLE) -> None:
    """Remove the member `grant` added; raises with the command to do it by hand."""
    from google.api_core import exceptions as gexc

    try:
        b, policy = _policy(storage, bucket)
        for binding in policy.bindings:
            if binding["role"] == role and not binding.get("condition"):
                binding["members"].discard(member)
        policy.bindings[:] = [x for x in policy.bindings if x["members"]]
        b.set_iam_policy(policy)
    except gexc.GoogleAPICallError as e:
        raise UserError(
            f"could not remove {member} from {role} on gs://{bucket}: {e.message}",
            f"remove it: gcloud storage buckets remove-iam-policy-binding gs://{bucket} "
            f"--member={member} --role={role}",
        ) from None
