"""`render --out`: write a tree of files, replacing or removing only what render wrote before.

A manifest in the output root lists every file written with its sha256. Files listed there
and unchanged since are replaced or, when no longer rendered, removed. Ownership is proven
before anything is touched:

- the manifest is a regular file of the output folder (never a link), and each entry is a
  plain relative path inside it: no `..`, no absolute path, no backslash, nothing to
  normalise; one bad entry refuses the whole command before any write;
- a path is removed only when its real path is inside the real output folder, it is a
  regular file (never a link) and its hash is the one recorded;
- the output folder is never the file system root.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import UserError, echo, echo_path
from ..files import _umask

TREE_MANIFEST = ".zenml-gcp-gitops.json"
MANIFEST_MAX = 1 << 20


@dataclass
class TreeWrite:
    """What `write_files` did: files written, stale files of ours removed, and files it left
    alone because the user changed them since it wrote them."""

    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _plain_relative(rel: str) -> bool:
    """A path that stays inside the folder it is relative to, written one way only."""
    if not rel or "\\" in rel or "\0" in rel:
        return False
    p = PurePosixPath(rel)
    return not p.is_absolute() and ".." not in p.parts and str(p) == rel and "." not in p.parts


def _read_manifest(root: Path) -> dict[str, str]:
    path = root / TREE_MANIFEST
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {}
    if stat.S_ISLNK(st.st_mode):
        raise UserError(
            f"{path} is a symlink; render never follows links out of the output folder",
            "remove the link and render again",
        )
    if not stat.S_ISREG(st.st_mode) or st.st_size > MANIFEST_MAX:
        raise UserError(
            f"{path} is not a render manifest (not a regular file of at most 1 MiB)",
            "move it aside; files it listed are then treated as yours",
        )
    try:
        data = json.loads(path.read_bytes())
        files = data["files"]
    except (ValueError, KeyError, TypeError):
        raise UserError(
            f"{path} is not a render manifest this tool can read",
            "move it aside; files it listed are then treated as yours",
        ) from None
    if not isinstance(files, dict):
        return {}
    for rel in files:
        if not isinstance(rel, str) or not _plain_relative(rel):
            raise UserError(
                f"{path} lists {echo(rel, 160)}, a path outside the output folder: render "
                "refused to write or delete anything",
                "the manifest was edited; remove that entry (or the manifest) and render again",
            )
    return {str(k): str(v) for k, v in files.items()}


def _linked_parent(root: Path, rel: str) -> Path | None:
    """The first folder between `root` and `root/rel` that is a symlink, if any."""
    cur = root
    for part in Path(rel).parts[:-1]:
        cur = cur / part
        if cur.is_symlink():
            return cur
    return None


def _inside(root_real: Path, path: Path) -> bool:
    """`path`'s folder, with every link resolved, is `root_real` or below it."""
    parent = Path(os.path.realpath(path.parent))
    return parent == root_real or root_real in parent.parents


def _problem(root: Path, rel: str, owned: dict[str, str], new: str | None) -> str | None:
    """Why `root/rel` may not be replaced or removed (None: it is ours and unchanged)."""
    path = root / rel
    if path.is_symlink():
        return "a symlink"
    if not path.exists():
        return None
    if not path.is_file():
        return "not a regular file"
    digest = _file_sha(path)
    if new is not None and digest == _sha(new.encode()):
        return None  # already what we would write
    if rel not in owned:
        return "not written by render"
    if owned[rel] != digest:
        return "changed since render wrote it"
    return None


def _write_file(path: Path, text: str) -> None:
    """Atomic replace, with the mode a plain new file gets (the tree is for a Git repo, not a
    secret); a symlink at `path` is replaced itself, never followed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None:  # a full disk fails in write(), which does not know the name
            e.filename = str(path)
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prepare_root(out_dir: Path) -> Path:
    """Create the output folder; refuse the root and anything that is not a folder."""
    try:
        if Path(os.path.realpath(out_dir)) == Path("/"):
            raise UserError(
                f"--out {echo_path(out_dir)} is the file system root",
                "pass a folder of its own, e.g. --out ./gitops",
            )
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(
            f"--out {echo_path(out_dir)} exists and is not a folder", "pass a folder"
        ) from None
    except UserError:
        raise
    except OSError as e:
        raise UserError(
            f"--out {echo_path(out_dir)} cannot be created: {e.strerror or type(e).__name__}",
            "pass a writable folder",
        ) from None
    if not out_dir.is_dir():
        raise UserError(f"--out {echo_path(out_dir)} is not a folder", "pass a folder")
    return Path(os.path.realpath(out_dir))


def write_files(files: dict[str, str], out_dir: Path, force: bool = False) -> TreeWrite:
    """Write `files` (relative path -> text) under `out_dir`, touching only what render wrote.

    A file in the way that render did not write, or that was changed since, stops the command
    (with `force` it is overwritten); a changed stale file is kept. Symlinks are never
    followed: a linked file is replaced by a plain file only with `force`, and a linked
    folder on the way always stops the command.
    """
    root_real = _prepare_root(out_dir)
    root = out_dir
    owned = _read_manifest(root)
    linked = sorted({str(p) for rel in files if (p := _linked_parent(root, rel)) is not None})
    if linked:
        raise UserError(
            f"render does not write through symlinked folders: {', '.join(linked)}",
            "replace the links with real folders, or render into another --out",
        )
    conflicts = [
        f"{rel} ({why})"
        for rel, text in files.items()
        if (why := _problem(root, rel, owned, text)) is not None
    ]
    if conflicts and not force:
        shown = ", ".join(conflicts[:5]) + (
            f" and {len(conflicts) - 5} more" if conflicts[5:] else ""
        )
        raise UserError(
            f"render would overwrite files it does not own in {out_dir}: {shown}",
            "move them aside, or pass --force to overwrite them",
        )
    result = TreeWrite()
    manifest: dict[str, str] = {}
    for rel, text in files.items():
        path = root / rel
        _write_file(path, text)
        manifest[rel] = _sha(text.encode())
        result.written.append(path)
    for rel in sorted(set(owned) - set(files)):
        path = root / rel
        if not (path.exists() or path.is_symlink()) or _linked_parent(root, rel) is not None:
            continue
        if _inside(root_real, path) and _problem(root, rel, owned, None) is None:
            path.unlink()
            result.removed.append(path)
        else:
            result.kept.append(path)
    _write_file(
        root / TREE_MANIFEST,
        json.dumps({"version": 1, "files": dict(sorted(manifest.items()))}, indent=2) + "\n",
    )
    return result
