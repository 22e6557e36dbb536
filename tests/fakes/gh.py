"""A fake `gh` executable for tests: put `install_fake_gh(dir)` first on PATH.

It records each invocation (argv and stdin) as one JSON line in `<dir>/gh-calls.jsonl`.
`auth status` succeeds unless `<dir>/logged-out` exists; `api repos/O/R` answers with the
IDs in `<dir>/repo-ids`. Secret values arrive on stdin, so
tests can check that the key never appears in argv.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

_SCRIPT = """#!{python}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
stdin = "" if sys.stdin.isatty() else sys.stdin.read()
with open(os.path.join(here, "gh-calls.jsonl"), "a") as f:
    f.write(json.dumps({{"args": args, "stdin": stdin}}) + "\\n")
if args[:2] == ["auth", "status"]:
    sys.exit(1 if os.path.exists(os.path.join(here, "logged-out")) else 0)
if args[:2] == ["secret", "set"]:
    sys.exit(0)
if args[:1] == ["api"] and args[1].startswith("repos/"):
    # `api repos/OWNER/REPO`: the two IDs that `<dir>/repo-ids` holds ("ID OWNER_ID")
    ids = os.path.join(here, "repo-ids")
    if not os.path.exists(ids):
        sys.exit(1)
    rid, oid = open(ids).read().split()
    print(json.dumps({{"id": int(rid), "full_name": args[1][6:], "owner": {{"id": int(oid)}}}}))
    sys.exit(0)
sys.exit(2)
"""


def install_fake_gh(bin_dir: Path, logged_in: bool = True) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "gh"
    exe.write_text(_SCRIPT.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    marker = bin_dir / "logged-out"
    if logged_in:
        marker.unlink(missing_ok=True)
    else:
        marker.touch()
    return exe


def gh_calls(bin_dir: Path) -> list[dict[str, object]]:
    log = bin_dir / "gh-calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
