"""`local backup` / `local restore`: the same cycle against the rehearsal's own databases.

Databases: ZenML's (SQLite, or MySQL/MariaDB with `local up --db`), MLflow's tracking store
and MLflow's auth store (users and permissions). SQLite files are copied with SQLite's online
backup API (consistent while the servers run); MySQL ones are dumped with `mariadb-dump`
(or `mysqldump`) in one transaction. Each backup is a folder `<dir>/backups/<UTC timestamp>/`
with the copies and a manifest written last, as on GCP.

Restore stops the ZenML and MLflow servers (the emulator stays up), puts every database back,
starts the servers again on the same ports and verifies them. If anything fails half-way, the
servers are started again and the error says what state each database is in.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import UserError, echo, echo_path
from ..local import services as sv
from ..names import LocalNames
from .backup import backup_id
from .store import MANIFEST

BACKUPS = "backups"
WRITERS = ("zenml", "mlflow")


def _layout(name: str, data_dir: Path | None) -> tuple[Any, sv.LocalState]:
    from ..local.specs import Layout, default_dir

    base = (data_dir or default_dir(name)).resolve()
    state = sv.LocalState.load(base)
    if state is None or "zenml" not in state.ports:
        raise UserError(
            f"no local rehearsal in {echo_path(base)}", "run `zenml-gcp-gitops local up` first"
        )
    return Layout(base), state


def databases(lay: Any) -> dict[str, str]:
    """Logical name -> SQLAlchemy-style URL of every database the local servers write."""
    from ..local.rehearsal import _resolve_db_url

    mdir = lay.svc("mlflow")
    auth = f"sqlite:///{mdir / 'auth.db'}"
    ini = mdir / "basic_auth.ini"
    if ini.exists():
        parser = configparser.ConfigParser()
        parser.read(ini)
        auth = parser.get("mlflow", "database_uri", fallback=auth)
    return {
        "zenml": _resolve_db_url(lay, None),
        "mlflow": f"sqlite:///{mdir / 'mlflow.db'}",
        "mlflow_auth": auth,
    }


def _sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def _bin(*names: str) -> str:
    for n in names:
        found = shutil.which(n) or next(
            (p for p in (f"/usr/bin/{n}", f"/usr/sbin/{n}") if os.access(p, os.X_OK)), None
        )
        if found:
            return found
    raise UserError(
        f"{names[0]} is not installed, so a MySQL database cannot be backed up or restored",
        "install the MariaDB (or MySQL) client tools",
    )


def _mysql_args(url: str) -> tuple[list[str], dict[str, str], str]:
    """Client flags, environment (the password rides in MYSQL_PWD, never in argv) and DB."""
    u = urllib.parse.urlsplit(url.replace("mysql+pymysql://", "mysql://"))
    db = u.path.lstrip("/").split("?")[0]
    args = [f"--host={u.hostname or '127.0.0.1'}", f"--port={u.port or 3306}"]
    if u.username:
        args.append(f"--user={urllib.parse.unquote(u.username)}")
    env = {**os.environ}
    if u.password:
        env["MYSQL_PWD"] = urllib.parse.unquote(u.password)
    return args, env, db


def _run(
    argv: list[str], env: dict[str, str], what: str, stdin: Any = None, stdout: Any = None
) -> None:
    proc = subprocess.run(
        argv, env=env, stdin=stdin, stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE,
        timeout=1800, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        err = (proc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise UserError(f"{what} failed: {err[-1] if err else f'exit {proc.returncode}'}")


def _copy_out(url: str, dest_dir: Path, name: str) -> str:
    path = _sqlite_path(url)
    if path is not None:
        if not path.exists():
            raise UserError(f"the {name} database {path} does not exist")
        out = dest_dir / f"{name}.db"
        src, dst = sqlite3.connect(path), sqlite3.connect(out)
        try:
            src.backup(dst)  # online, consistent
        finally:
            dst.close()
            src.close()
        return out.name
    args, env, db = _mysql_args(url)
    out = dest_dir / f"{name}.sql"
    with open(out, "wb") as f:
        _run(
            [_bin("mariadb-dump", "mysqldump"), *args, "--single-transaction", "--routines",
             "--no-tablespaces", db],
            env, f"dumping the {name} database", stdout=f,
        )  # fmt: skip
    return out.name


def _import_mysql(url: str, src_file: Path, name: str) -> None:
    args, env, db = _mysql_args(url)
    client = _bin("mariadb", "mysql")
    # Drop every table first: tables a later migration added must not survive the restore.
    proc = subprocess.run(
        [client, *args, "--batch", "--skip-column-names", "-e",
         "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()", db],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise UserError(f"listing the tables of {name} failed: {proc.stderr.strip()[-200:]}")
    tables = [t for t in proc.stdout.split() if t]
    if tables:
        drop = "SET FOREIGN_KEY_CHECKS=0; " + " ".join(f"DROP TABLE `{t}`;" for t in tables)
        _run([client, *args, "-e", drop, db], env, f"emptying the {name} database")
    with open(src_file, "rb") as f:
        _run([client, *args, db], env, f"importing into the {name} database", stdin=f)


class _MysqlSwap:
    """A MySQL database: dump the live one first, so a failed import can be undone."""

    def __init__(self, url: str, source: Path, db: str, rollback_dir: Path) -> None:
        self.url, self.source, self.db, self.rollback_dir = url, source, db, rollback_dir
        self.before: Path | None = None
        self.swapped = False

    def stage(self) -> None:
        pass  # the dump was checked; MySQL has nothing to stage beside the live database

    def swap(self) -> None:
        self.rollback_dir.mkdir(mode=0o700, exist_ok=True)
        self.before = self.rollback_dir / _copy_out(self.url, self.rollback_dir, self.db)
        self.swapped = True  # from here on the live database may be half-imported
        _import_mysql(self.url, self.source, self.db)

    def undo(self) -> None:
        if self.swapped and self.before is not None:
            _import_mysql(self.url, self.before, self.db)
            self.swapped = False
        self.cleanup()

    def cleanup(self) -> None:
        if self.before is not None:
            self.before.unlink(missing_ok=True)


def _bucket_generations(gcs_url: str, bucket: str) -> dict[str, int]:
    out: dict[str, int] = {}
    token = ""
    while True:
        q = {"pageToken": token} if token else {}
        url = f"{gcs_url}/storage/v1/b/{bucket}/o" + ("?" + urllib.parse.urlencode(q) if q else "")
        with urllib.request.urlopen(url, timeout=30) as r:
            data = json.loads(r.read().decode() or "{}")
        for item in data.get("items") or []:
            out[item["name"]] = int(item.get("generation") or 0)
        token = data.get("nextPageToken") or ""
        if not token:
            return out


def _servers(lay: Any, state: sv.LocalState, names: LocalNames) -> Any:
    from ..local.services import read_secret
    from ..zenml.session import Credentials
    from .verify import Servers

    zadmin = json.loads(read_secret(lay.zenml_admin) or "{}")
    madmin = json.loads(read_secret(lay.mlflow_admin) or "{}")
    return Servers(
        zenml_url=f"http://{sv.LOOPBACK}:{state.ports['zenml']}",
        zenml_credentials=Credentials(username=zadmin["username"], password=zadmin["password"]),
        stack=names.zenml_stack,
        mlflow_url=f"http://{sv.LOOPBACK}:{state.ports['mlflow']}",
        mlflow_login=(madmin["username"], madmin["password"]),
        timeout=120,
    )


def local_backup(
    name: str = "zenml", data_dir: Path | None = None, log: Callable[[str], None] = lambda s: None
) -> dict[str, Any]:
    from .verify import snapshot

    names = LocalNames(name)
    lay, state = _layout(name, data_dir)
    if not all(k in state.services and state.services[k].alive() for k in WRITERS):
        raise UserError("the local servers are not running", "run `zenml-gcp-gitops local up`")
    started = datetime.now(UTC)
    bid = backup_id(started)
    dest = lay.base / BACKUPS / bid
    dest.mkdir(parents=True, exist_ok=False, mode=0o700)
    log("reading what the servers hold")
    known = snapshot(_servers(lay, state, names))
    files: dict[str, str] = {}
    for db, url in databases(lay).items():
        log(f"copying the {db} database")
        files[db] = _copy_out(url, dest, db)
    artifacts: dict[str, Any] = {}
    gcs = state.services.get("gcs")
    if gcs is not None and gcs.alive():
        for bucket in (names.artifact_bucket, names.mlflow_bucket):
            gens = _bucket_generations(gcs.url, bucket)
            (dest / f"generations-{bucket}.json").write_text(json.dumps(gens, indent=1))
            artifacts[bucket] = {
                "objects": len(gens),
                "max_generation": max(gens.values(), default=0),
            }
    import mlflow

    manifest = {
        "manifest_version": 1,
        "id": bid,
        "kind": "local",
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "deployment": name,
        "databases": list(files),
        "files": files,
        "artifact_buckets": artifacts,
        "versions": {
            "package": __version__,
            "zenml_server": known.get("zenml_version"),
            "mlflow": known.get("mlflow_version") or mlflow.__version__,
        },
        "known": known,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return {**manifest, "dir": str(dest)}


def list_local_backups(name: str = "zenml", data_dir: Path | None = None) -> list[dict[str, Any]]:
    from ..local.specs import default_dir

    base = (data_dir or default_dir(name)).resolve() / BACKUPS
    out = []
    for m in sorted(base.glob(f"*/{MANIFEST}")) if base.is_dir() else []:
        with contextlib.suppress(ValueError, OSError, TypeError):
            if not m.is_file() or m.is_symlink() or m.stat().st_size > (1 << 20):
                continue  # a FIFO would block, a huge file fill memory: not a manifest of ours
            out.append({**json.loads(m.read_bytes()), "dir": str(m.parent)})
    return out


def local_restore(
    bid: str,
    name: str = "zenml",
    data_dir: Path | None = None,
    log: Callable[[str], None] = lambda s: None,
    verify_after: bool = True,
) -> dict[str, Any]:
    """All or nothing: every file of the backup is checked and staged before the servers
    stop; a failure during the swap puts every database back as it was."""
    from ..local.specs import gcs_spec, mlflow_spec, zenml_spec
    from . import local_checks as chk

    names = LocalNames(name)
    lay, _ = _layout(name, data_dir)
    src = chk.backup_dir(lay.base / BACKUPS, bid)
    known_ids = [m.get("id", "?") for m in list_local_backups(name, data_dir)]
    manifest = chk.read_manifest(src, bid, known_ids)
    urls = databases(lay)
    files = manifest["files"]
    for db in urls:
        if db not in files:
            raise UserError(
                f"local backup {bid} holds no {db} database (its manifest lists "
                f"{', '.join(files) or 'none'})",
                "nothing was restored; restore another backup",
            )
    for db in files:
        if db not in urls:
            raise UserError(f"this rehearsal has no database {echo(db)} to restore")
    sources = {db: chk.backup_file(src, bid, db, files[db]) for db in urls}
    for db, path in sources.items():
        log(f"checking the {db} database of the backup")
        chk.check_file(bid, db, path, sqlite=_sqlite_path(urls[db]) is not None)
    swaps: dict[str, Any] = {}
    for db, url in urls.items():  # MySQL first: its import can fail; the renames hardly can
        live = _sqlite_path(url)
        if live is None:
            swaps[db] = _MysqlSwap(url, sources[db], db, lay.base / ".restore-rollback")
    for db, url in urls.items():
        live = _sqlite_path(url)
        if live is not None:
            swaps[db] = chk.SqliteSwap(live, sources[db])
    try:
        for db, swap in swaps.items():
            log(f"staging the {db} database")
            swap.stage()
    except (OSError, sqlite3.Error) as e:
        for swap in swaps.values():
            swap.cleanup()
        raise UserError(
            f"local restore of {bid} could not stage a copy: {e}", "nothing was restored"
        ) from None

    status = {db: "unchanged" for db in urls}
    failure: str | None = None
    with sv.dir_lock(lay.base):
        state = sv.LocalState.load(lay.base)
        assert state is not None
        try:
            for key in WRITERS:
                svc = state.services.get(key)
                if svc is not None:
                    log(f"stopping the {svc.title}")
                    if not sv.stop(svc, timeout=30):
                        raise UserError(f"could not stop the {svc.title}")
                    state.services.pop(key)
            state.save(lay.base)
            for db, swap in swaps.items():
                log(f"restoring the {db} database")
                swap.swap()
                status[db] = f"restored from {bid}"
        except (UserError, OSError, sqlite3.Error, KeyboardInterrupt) as e:
            failure = (
                "interrupted by the user"
                if isinstance(e, KeyboardInterrupt)
                else (e.message if isinstance(e, UserError) else f"{type(e).__name__}: {e}")
            )
            for db, swap in reversed(list(swaps.items())):
                try:
                    swap.undo()
                    status[db] = "unchanged"
                except (UserError, OSError, sqlite3.Error) as undo_error:
                    status[db] = f"NOT put back ({undo_error})"
        else:
            for swap in swaps.values():
                swap.cleanup()
        finally:
            restarted = _restart(lay, state, names, (gcs_spec, mlflow_spec, zenml_spec), log)
    if failure is not None:
        data = "; ".join(f"{db}: {s}" for db, s in status.items())
        raise UserError(
            f"local restore of {bid} failed: {failure}. Data: {data}. "
            + (
                "The servers are running again."
                if restarted is None
                else f"The servers did NOT come back: {restarted}"
            ),
            "fix the cause and run the same restore again",
        )
    if restarted is not None:
        raise UserError(
            f"the databases were restored from {bid}, but the servers did not start: {restarted}"
        )
    result: dict[str, Any] = {"id": bid, "databases": status}
    if verify_after:
        from .verify import verify

        log("verifying the servers")
        fresh = sv.LocalState.load(lay.base)
        assert fresh is not None
        result["verified"] = verify(_servers(lay, fresh, names), manifest.get("known") or {})
    return result


def _restart(
    lay: Any,
    state: sv.LocalState,
    names: LocalNames,
    spec_makers: tuple[Any, Any, Any],
    log: Callable[[str], None],
) -> str | None:
    """Start the emulator (when it is down), MLflow and ZenML again on their ports; an
    error message, or None."""
    from ..local.specs import create_buckets

    gcs_spec, mlflow_spec, zenml_spec = spec_makers
    ports, gcs_port = state.ports, state.ports["gcs"]
    specs = {
        "mlflow": mlflow_spec(lay, ports["mlflow"], gcs_port, names),
        "zenml": zenml_spec(lay, ports["zenml"], gcs_port, _zenml_url(lay)),
    }
    gcs = state.services.get("gcs")
    if gcs is None or not gcs.alive():
        specs = {"gcs": gcs_spec(lay, gcs_port), **specs}
    pairs = []
    try:
        for key, spec in specs.items():
            log(f"starting the {spec.title}")
            svc = sv.start(spec, lay.base)
            state.services[key] = svc
            pairs.append((spec, svc))
            if key == "gcs":  # the servers read the emulator at start: it must answer first
                sv.wait_ready([(spec, svc)])
                create_buckets(svc.url, [names.artifact_bucket, names.mlflow_bucket])
        state.save(lay.base)
        sv.wait_ready([p for p in pairs if p[0].name != "gcs"])
    except UserError as e:
        state.save(lay.base)
        return e.message.splitlines()[0]
    return None


def _zenml_url(lay: Any) -> str:
    from ..local.rehearsal import _resolve_db_url

    return _resolve_db_url(lay, None)
