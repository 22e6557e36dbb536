"""A fake `pulumi` CLI for tests: the real Automation API drives it and the real program runs.

`make_fake_pulumi(dir)` writes `<dir>/bin/pulumi`, a shim that runs `cli.py` with this venv's
python; hand `dir` to `pulumi.automation.PulumiCommand(root=dir, skip_version_check=True)`.

For `preview`/`up`/`refresh`/`destroy` the fake serves a gRPC ResourceMonitor and Engine
(delegating to `pulumi.runtime.mocks.MockMonitor`), calls the Automation API's language host at
`--client=` so the inline program runs, streams engine events to `--event-log`, and keeps state
under the `file://` backend so a second `up` sees existing resources.

Faults, set in the environment of the process that runs the Automation API:
  FAKE_PULUMI_FAIL_RESOURCE=name[=message]   the create/update of resource `name` fails
  FAKE_PULUMI_IAM_PROPAGATION=1              a create that depends on an IAM grant made in the
                                             same run is refused with 403 (grants take time)
  FAKE_PULUMI_HANG_RESOURCE=name             hang at resource `name` (holding the lock) until SIGINT
  FAKE_PULUMI_HANG_MARKER=path               file written once the hang starts
  FAKE_PULUMI_SIGNAL_LOG=path               one line per SIGINT the engine receives
  FAKE_PULUMI_STALE_LOCK=1                   leave the lock file behind (a crashed deploy)
  FAKE_PULUMI_FAIL_PLUGIN_INSTALL=1          `plugin install` fails
  FAKE_PULUMI_VERSION=3.225.0                what `pulumi version` prints
  FAKE_PULUMI_CALLS=path                     append every argv (JSON, one a line) to `path`
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI = HERE / "cli.py"


def make_fake_pulumi(root: Path) -> Path:
    """Create `<root>/bin/pulumi`; return `root` (what PulumiCommand(root=...) takes)."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "pulumi"
    # -X frozen_modules=off is not needed; -s keeps the user's site dir out of the picture.
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -s "{CLI}" "$@"\n')
    shim.chmod(0o755)
    return root


def lock_dir(backend_dir: Path, project: str, stack: str) -> Path:
    """Where the diy backend keeps a stack's locks (as the real CLI lays them out)."""
    return backend_dir / ".pulumi" / "locks" / "organization" / project / stack


def stack_file(backend_dir: Path, project: str, stack: str) -> Path:
    return backend_dir / ".pulumi" / "stacks" / project / f"{stack}.json"


def hold_lock(backend_dir: Path, project: str, stack: str, pid: int = 4242) -> Path:
    """Write a lock file as another `pulumi up` would; return its path."""
    d = lock_dir(backend_dir, project, stack)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"other-{pid}.json"
    path.write_text(
        json.dumps(
            {
                "pid": pid,
                "username": "someone",
                "hostname": socket.gethostname(),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
    )
    return path


def read_state(backend_dir: Path, project: str, stack: str) -> dict:
    return json.loads(stack_file(backend_dir, project, stack).read_text())


def read_calls(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["hold_lock", "lock_dir", "make_fake_pulumi", "read_calls", "read_state", "stack_file"]
