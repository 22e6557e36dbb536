"""Writing a file so that a reader never sees half of it, and a secret is never readable."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: str | bytes, mode: int | None = None) -> None:
    """Write to a temp file in the same folder, fsync, rename over `path`.

    With `mode` (e.g. 0o600 for a secret) the temp file has it from its creation, so the
    content is never readable by others, not even briefly.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp creates 0600; widen it to what a plain open() would give unless told
        os.fchmod(fd, mode if mode is not None else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def os_error_line(e: OSError) -> str:
    """An OS error on a path as one line: the path (cut to a fixed length) and the reason."""
    import errno
    import os

    from .errors import echo_path

    reason = e.strerror or (os.strerror(e.errno) if e.errno else type(e).__name__)
    if e.errno == errno.ENOSPC:
        reason += " (the disk is full)"
    where = echo_path(e.filename)
    if e.filename2 is not None:
        where += f" -> {echo_path(e.filename2)}"
    return f"{where}: {reason}"


def write_user_file(path: Path, text: str) -> None:
    """Write a file at a path the user gave; any OS error (a full disk, a device, a missing
    folder, a name too long) becomes one `UserError` line naming the path and the reason."""
    from .errors import UserError

    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        if e.filename is None:  # raised by write/close, which do not know the name
            e.filename = str(path)
        raise UserError(os_error_line(e), "pass a writable file path") from None


def read_input(path: Path, limit: int) -> bytes:
    """Up to `limit` bytes of a file, a pipe (`<(...)`), a FIFO, a device or `-` (stdin).

    A pipe that has not written yet is waited on with `select`, never in a blocking
    open() or read(): a Ctrl-C that lands just before such a call would otherwise be seen
    only once the writer writes, which may be never.
    """
    import io
    import select
    import stat
    import sys

    stdin = str(path) == "-"
    if stdin:
        try:
            mode = os.fstat(sys.stdin.fileno()).st_mode
        except (io.UnsupportedOperation, AttributeError):  # replaced in-process (CliRunner)
            return sys.stdin.buffer.read(limit)
    else:
        mode = os.stat(path).st_mode
    if stat.S_ISREG(mode):
        if stdin:
            return sys.stdin.buffer.read(limit)
        with open(path, "rb") as f:
            return f.read(limit)
    # O_NONBLOCK: a FIFO opens at once, writer or not (stdin is shared: never change its flags)
    fd = sys.stdin.fileno() if stdin else os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    chunks: list[bytes] = []
    size = 0
    try:
        while size < limit:
            # a short wait, so a pending Ctrl-C is answered between two waits at the latest
            if not select.select([fd], [], [], 0.2)[0]:
                continue
            try:
                chunk = os.read(fd, min(1 << 16, limit - size))
            except BlockingIOError:
                continue
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        if not stdin:
            os.close(fd)
    return b"".join(chunks)
