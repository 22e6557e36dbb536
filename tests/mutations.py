"""Does the suite fail when the product is wrong? Apply product-breaking changes one at a time
to a copy of the repository and run the tests that should catch each; report CAUGHT/MISSED.

    python tests/mutations.py              # all of them (several minutes)
    python tests/mutations.py 3 7          # only those numbers
    python tests/mutations.py --list

A tool, not part of the CI run. The copy lives in a temporary directory (the checkout is never
modified); each mutation must match its source text exactly once, so a refactoring that moves
the code makes the tool say so instead of silently testing nothing. A baseline run first
checks that the selected tests pass on the unchanged copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = "src/zenml_gcp_gitops"


@dataclass(frozen=True)
class Mutation:
    what: str
    path: str
    old: str  # several edits: old and new hold them split by EDIT
    new: str
    tests: tuple[str, ...]

    def edits(self) -> list[tuple[str, str]]:
        return list(zip(self.old.split(EDIT), self.new.split(EDIT), strict=True))


EDIT = "\n<<edit>>\n"


MUTATIONS = [
    Mutation(
        "purge: skip the object loop before deleting the state bucket",
        f"{SRC}/gcp/api.py",
        "        for blob in self.storage().list_blobs(name, versions=True):\n            blob.delete()\n",
        "",
        ("tests/unit/test_preflight.py::test_purge_deletes_our_bucket_and_destroys_key_versions",),
    ),
    Mutation(
        "purge: list live objects only (noncurrent versions stay)",
        f"{SRC}/gcp/api.py",
        "list_blobs(name, versions=True)",
        "list_blobs(name)",
        ("tests/unit/test_preflight.py::test_purge_deletes_our_bucket_and_destroys_key_versions",),
    ),
    Mutation(
        "secrets: read the newest enabled version instead of versions/latest",
        f"{SRC}/gcp/secrets.py",
        'name=self._name(secret_id) + "/versions/latest"',
        'name=next(iter(self._c().list_secret_versions(request={"parent": self._name(secret_id),'
        ' "filter": "state:ENABLED"}))).name',
        (
            "tests/unit/test_google_rest_clients.py::test_a_disabled_newest_version_is_not_read_as_the_older_one",
        ),
    ),
    Mutation(
        "secrets: catch AlreadyExists only (HTTP 409 over REST is Conflict)",
        f"{SRC}/gcp/secrets.py",
        "except gexc.Conflict:",
        "except gexc.AlreadyExists:",
        ("tests/unit/test_google_rest_clients.py::test_secrets_are_created_once_and_read_back",),
    ),
    Mutation(
        "secrets: pass filter as a keyword the client does not have",
        f"{SRC}/gcp/secrets.py",
        'request={"parent": self._name(secret_id), "filter": "state:ENABLED"}',
        'parent=self._name(secret_id), filter="state:ENABLED"',
        ("tests/unit/test_google_rest_clients.py::test_destroy_versions_reads_every_page",),
    ),
    Mutation(
        "Cloud SQL: read only the first page of backup runs",
        f"{SRC}/ops/sqladmin.py",
        '            token = data.get("nextPageToken") or ""\n',
        '            token = ""\n',
        ("tests/unit/test_google_rest_clients.py::test_backup_runs_are_read_past_the_first_page",),
    ),
    Mutation(
        "Cloud SQL: a misspelt field in the export body",
        f"{SRC}/ops/sqladmin.py",
        '{"fileType": "SQL", "uri": uri, "databases": [database]}',
        '{"filetype": "SQL", "uri": uri, "databases": [database]}',
        ("tests/unit/test_ops_backup.py",),
    ),
    Mutation(
        "restore: import without re-creating the dropped database",
        f"{SRC}/ops/restore.py",
        'deps.sql, deps.sql.create_database(inst, db), f"creating {db}",',
        'deps.sql, {"status": "DONE"}, f"creating {db}",',
        (
            "tests/integration/test_ops_restore_kmock.py::test_a_failed_import_brings_the_servers_back_and_says_what_state_the_data_is_in",
        ),
    ),
    Mutation(
        "restore: scale the servers down before suspending Argo CD's auto-sync (swap the writes)",
        f"{SRC}/ops/writers.py",
        "    for app in _app_names(cfg):"
        + EDIT
        + '            kube.merge_patch(*APP, app, {"spec": {"syncPolicy": {"automated": None}}}, ns)\n'
        + EDIT
        + "    waits.until(\n        lambda: [p for dep in deployments",
        "    suspend: list[str] = []\n    for app in _app_names(cfg):"
        + EDIT
        + "            suspend.append(app)\n"
        + EDIT
        + "    for app in suspend:\n"
        '        kube.merge_patch(*APP, app, {"spec": {"syncPolicy": {"automated": None}}}, ns)\n'
        "    waits.until(\n        lambda: [p for dep in deployments",
        (
            "tests/integration/test_ops_restore_kmock.py::test_restore_stops_writers_through_argocd_then_imports_then_brings_them_back",
        ),
    ),
    Mutation(
        "backup: leave MLflow's auth database out",
        f"{SRC}/ops/backup.py",
        "    return list(dict.fromkeys(cfg.names.databases.values()))",
        '    return [d for d in dict.fromkeys(cfg.names.databases.values()) if d != "mlflow_auth"]',
        ("tests/unit/test_ops_backup.py::test_mlflow_auth_database_is_exported_with_its_users",),
    ),
    Mutation(
        "KMS: a key another run created meanwhile is an error",
        f"{SRC}/gcp/api.py",
        '                        "crypto_key": {\n                            "purpose": "ENCRYPT_DECRYPT",\n                            "labels": self.cfg.names.labels,\n                        },\n                    }\n                )\n                created = True\n            except gexc.AlreadyExists:\n                pass\n',
        '                        "crypto_key": {\n                            "purpose": "ENCRYPT_DECRYPT",\n                            "labels": self.cfg.names.labels,\n                        },\n                    }\n                )\n                created = True\n            except KeyError:\n                pass\n',
        ("tests/unit/test_gcp_api.py::test_a_key_another_run_created_meanwhile_is_adopted",),
    ),
    Mutation(
        "Workload Identity: undelete the pool whatever its state",
        f"{SRC}/gcp/api.py",
        '        if found_pool.get("state") == "DELETED":',
        "        if True:",
        ("tests/unit/test_gcp_api.py::test_retained_wif_pool_states",),
    ),
    Mutation(
        "replace guard: a replacement of a stateful resource is not reported",
        f"{SRC}/state/replace_guard.py",
        '    if op in REPLACE_OPS:\n        action = "replace"\n    elif',
        '    if False:\n        action = "replace"\n    elif',
        ("tests/unit/test_replace_guard.py",),
    ),
    Mutation(
        "infra: skip the refresh before up",
        f"{SRC}/phases/infra.py",
        'lambda: handle.stack.refresh(on_event=tracker, color="never")',
        "lambda: None",
        (
            "tests/integration/test_infra_fake_pulumi.py::test_a_resource_deleted_behind_the_state_s_back_is_recreated",
        ),
    ),
    Mutation(
        "kube: apply sends back the resourceVersion of an earlier read",
        f"{SRC}/gitops/kube.py",
        '        for volatile in ("resourceVersion", "managedFields"):',
        '        for volatile in ("managedFields",):',
        (
            "tests/integration/test_kube_strict_kmock.py::test_a_stale_resource_version_is_refused_and_apply_sends_none",
        ),
    ),
    Mutation(
        "secrets: a disabled latest version is an error (FAILED_PRECONDITION over REST is HTTP 400)",
        f"{SRC}/gcp/secrets.py",
        "            if _precondition_failed(e):  # `latest`, the newest version, is not ENABLED\n"
        "                return None\n",
        "",
        (
            "tests/unit/test_google_rest_clients.py::test_a_disabled_newest_version_is_not_read_as_the_older_one",
        ),
    ),
    Mutation(
        "kube: wait_for_kind gives up at the first poll",
        f"{SRC}/gitops/kube.py",
        "                self.dyn.resources.invalidate_cache()\n                return None\n",
        "                raise\n",
        (
            "tests/integration/test_kube_strict_kmock.py::test_wait_for_kind_returns_once_the_crd_is_installed",
        ),
    ),
]


def _copy() -> Path:
    dest = Path(tempfile.mkdtemp(prefix="zgg-mutations-"))
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for f in files:
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    return dest


def _pytest(root: Path, tests: tuple[str, ...]) -> tuple[int, float]:
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}:{root}", "CI": "true"}
    start = time.monotonic()
    rc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-n", "0", "-p", "no:cacheprovider", *tests],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    ).returncode  # fmt: skip
    return rc, time.monotonic() - start


def main(argv: list[str]) -> int:
    if "--list" in argv:
        for i, m in enumerate(MUTATIONS, 1):
            print(f"{i:2}  {m.what}")
        return 0
    picked = [int(a) for a in argv if a.isdigit()] or list(range(1, len(MUTATIONS) + 1))
    root = _copy()
    try:
        wanted = tuple(dict.fromkeys(t for i in picked for t in MUTATIONS[i - 1].tests))
        rc, took = _pytest(root, wanted)
        print(f"baseline: {'passes' if rc == 0 else f'FAILS (exit {rc})'} in {took:.0f}s")
        if rc != 0:
            return 2
        missed = 0
        for i in picked:
            m = MUTATIONS[i - 1]
            target = root / m.path
            text = mutated = target.read_text()
            counts = [text.count(old) for old, _ in m.edits()]
            if counts != [1] * len(counts):
                print(f"{i:2}  STALE   {m.what} (source text found {counts} times)")
                missed += 1
                continue
            for old, new in m.edits():
                mutated = mutated.replace(old, new)
            target.write_text(mutated)
            try:
                rc, took = _pytest(root, m.tests)
            finally:
                target.write_text(text)
            verdict = "CAUGHT" if rc == 1 else ("MISSED" if rc == 0 else f"ERROR{rc}")
            missed += verdict != "CAUGHT"
            print(f"{i:2}  {verdict:<7} {m.what}  ({took:.0f}s)", flush=True)
        return 1 if missed else 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
