"""Day-2 operations: backup, restore and safe upgrades of a deployed stack.

sqladmin.py   the Cloud SQL Admin API calls behind a small interface (REST)
store.py      the backup bucket: exports, manifests, artifact-bucket generations
writers.py    stop and restart the ZenML and MLflow servers through Argo CD
verify.py     the servers answer and hold what the backup said
backup.py     `backup`, `backup list`
restore.py    `restore`
upgrade.py    version changes, downgrade guard, backup before an upgrade, migration watch
local.py      `local backup` / `local restore` against the rehearsal's databases
"""
