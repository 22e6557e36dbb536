"""What `local restore` proves before it touches live data, and how it swaps all or nothing.

backup_dir(backups, bid)     only an ID of the form `local backup` writes, under backups/
read_manifest(src, bid)      a capped read; a missing and a corrupt manifest say different things
check_file(db, path, kind)   exists, a regular file, opens, SQLite integrity check, holds
                             the tables its server needs (a MySQL dump: creates them)
SqliteSwap                   staged copy next to the live file, a hard link of the live
                             file to go back to, then one rename per database
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import stat
from pathlib import Path
from typing import Any

from ..errors import UserError, echo, echo_path

BACKUP_ID_RE = re.compile(r"^\d{8}T\d{6}Z$")
MANIFEST_MAX = 1 << 20
# Tables each server cannot start without: a file lacking them is not this database.
REQUIRED_TABLES: dict[str, tuple[str, ...]] = {
    "zenml": ("alembic_version", "stack", "stack_component", "user"),
    "mlflow": ("alembic_version", "experiments", "runs"),
    "mlflow_auth": ("users",),
}


def backup_dir(backups: Path, bid: str) -> Path:
    """The folder of backup `bid`: a timestamp ID, a real folder directly under `backups`."""
    if not BACKUP_ID_RE.match(bid):
        raise UserError(
            f"{echo(bid)} is not a local backup ID",
            "IDs are UTC timestamps like 20250101T120000Z; `local backup --list` shows them",
        )
    src = backups / bid
    if src.is_symlink():
        raise UserError(f"local backup {src} is a symlink; restore reads only real folders")
    if src.is_dir() and src.resolve().parent != backups.resolve():
        raise UserError(f"local backup {src} is not inside {backups}")
    return src


def read_manifest(src: Path, bid: str, known: list[str]) -> dict[str, Any]:
    path = src / "manifest.json"
    if not src.is_dir():
        raise UserError(
            f"no local backup {bid} in {echo_path(src.parent)}",
            f"known: {', '.join(known[-5:])}" if known else "take one with `local backup`",
        )
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):  # never a link, a FIFO or a device
            raise ValueError("it is not a regular file")
        with path.open("rb") as f:
            raw = f.read(MANIFEST_MAX + 1)
        if len(raw) > MANIFEST_MAX:
            raise ValueError(f"larger than {MANIFEST_MAX // (1 << 20)} MiB")
        data = json.loads(raw)
        files = data["files"]
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise ValueError("its `files` is not a mapping of file names")
    except FileNotFoundError:
        raise UserError(
            f"local backup {bid} has no manifest ({path} is missing): it is incomplete",
            "take a new backup with `local backup`",
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        reason = e.strerror if isinstance(e, OSError) else str(e) or type(e).__name__
        raise UserError(
            f"the manifest {echo_path(path)} of local backup {bid} is damaged: {echo(reason, 120)}",
            "nothing was restored; take a new backup with `local backup`",
        ) from None
    return dict(data)


def _bad(bid: str, db: str, path: Path, why: str) -> UserError:
    return UserError(
        f"local backup {bid} is damaged: its {db} database {echo_path(path)} {why}",
        "nothing was restored and nothing was stopped; restore another backup",
    )


def backup_file(src: Path, bid: str, db: str, name: str) -> Path:
    """The file the manifest names: a plain name inside the backup folder, never a path."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise _bad(bid, db, src / "manifest.json", f"is listed as {echo(name)}, not a file name")
    return src / name


def check_file(bid: str, db: str, path: Path, sqlite: bool) -> None:
    """Prove `path` holds database `db` before anything live is touched."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise _bad(bid, db, path, "is missing") from None
    except OSError as e:
        raise _bad(bid, db, path, f"cannot be read: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise _bad(bid, db, path, "is not a regular file")
    if st.st_size == 0:
        raise _bad(bid, db, path, "is empty")
    need = REQUIRED_TABLES.get(db, ())
    if not sqlite:
        missing = _dump_misses(path, need)
        if missing:
            raise _bad(bid, db, path, f"creates none of the tables {', '.join(missing)}")
        return
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            result = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        finally:
            con.close()
    except sqlite3.Error as e:
        raise _bad(bid, db, path, f"does not open as SQLite ({e})") from None
    if result != ["ok"]:
        raise _bad(bid, db, path, f"fails SQLite's integrity check ({echo(result[0], 120)})")
    missing = [t for t in need if t not in tables]
    if missing:
        raise _bad(bid, db, path, f"lacks the tables {', '.join(missing)}")


def _dump_misses(path: Path, tables: tuple[str, ...]) -> list[str]:
    """Tables a SQL dump never creates (read in chunks: a dump may be large)."""
    left = {t: re.compile(rf"CREATE TABLE `?{re.escape(t)}`?[ (]".encode()) for t in tables}
    tail = b""
    with path.open("rb") as f:
        while left and (chunk := f.read(1 << 20)):
            text = tail + chunk
            for t in [t for t, rx in left.items() if rx.search(text)]:
                del left[t]
            tail = text[-256:]
    return sorted(left)


def _sidecars(path: Path) -> list[Path]:
    return [Path(f"{path}{s}") for s in ("-wal", "-shm", "-journal")]


class SqliteSwap:
    """One SQLite database: stage the backup next to the live file, then swap; undo puts
    the live file (as it was when the servers stopped) back."""

    def __init__(self, live: Path, source: Path) -> None:
        self.live, self.source = live, source
        self.staged = live.with_name(live.name + ".restore")
        self.before = live.with_name(live.name + ".before-restore")
        self.had_live = False
        self.swapped = False

    def stage(self) -> None:
        self.staged.unlink(missing_ok=True)
        self.live.parent.mkdir(parents=True, exist_ok=True)
        src = sqlite3.connect(f"{self.source.resolve().as_uri()}?mode=ro", uri=True)
        dst = sqlite3.connect(self.staged)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()

    def swap(self) -> None:
        """With the servers stopped: fold the live WAL in, keep a link to go back to, rename."""
        self.before.unlink(missing_ok=True)
        self.had_live = self.live.exists()
        if self.had_live:
            con = sqlite3.connect(self.live)
            try:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                con.close()
            os.link(self.live, self.before)
        for side in _sidecars(self.live):
            side.unlink(missing_ok=True)
        os.replace(self.staged, self.live)  # atomic: old or restored, never half
        self.swapped = True

    def undo(self) -> None:
        if self.swapped:
            for side in _sidecars(self.live):
                side.unlink(missing_ok=True)
            if self.had_live:
                os.replace(self.before, self.live)
            else:
                self.live.unlink(missing_ok=True)
            self.swapped = False
        self.cleanup()

    def cleanup(self) -> None:
        for p in (self.staged, self.before):
            with contextlib.suppress(OSError):
                p.unlink(missing_ok=True)
