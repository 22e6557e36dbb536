"""Which folders are a rehearsal of ours: only those may be written by `up` or removed by
`down --purge`.

`local up` leaves a marker file naming the rehearsal in its data dir. A folder without it
(or naming another rehearsal) is never deleted, and `up` never moves into a folder that
holds anything else. Folders that hold more than one rehearsal (the data home, `local/`,
the home folder, `/`) are refused even with a marker.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

from ..config import user_data_dir
from ..errors import UserError, echo_path
from ..files import atomic_write

MARKER = ".zenml-gcp-gitops-rehearsal"
_KIND = "zenml-gcp-gitops local rehearsal"
_MARKER_MAX = 4096
# Written by services.dir_lock / LocalState.save: a folder holding only these is one we made.
_OURS_ONLY = {".lock", "state.json"}


def marker_name(base: Path) -> str | None:
    """The rehearsal name in `base`'s marker; None when there is no valid marker of ours."""
    path = base / MARKER
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MARKER_MAX:
            return None
        data = json.loads(path.read_bytes()[:_MARKER_MAX])
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") != _KIND:
        return None
    name = data.get("name")
    return name if isinstance(name, str) else None


def _shared_places() -> list[Path]:
    """Folders that are never one rehearsal's own, resolved."""
    places = [Path("/"), user_data_dir(), user_data_dir() / "local"]
    with contextlib.suppress(RuntimeError):  # no HOME and no passwd entry: nothing to add
        places.append(Path.home())
    return [p.resolve() for p in places]


def refuse_shared(base: Path, what: str) -> None:
    """`base` (resolved) is a folder a rehearsal may never own: the data home, an ancestor..."""
    for place in _shared_places():
        if base == place or base in place.parents:
            raise UserError(
                f"{what} refused: {echo_path(base)} holds more than one rehearsal's data "
                f"(it contains or is {echo_path(place)})",
                "pass the rehearsal's own folder with --dir, or use --name",
            )


def claim(base: Path, name: str) -> None:
    """Before `up` writes into `base`: make sure it is ours (or new), then mark it."""
    refuse_shared(base, "local up")
    found = marker_name(base)
    if found is None:
        try:
            entries = {p.name for p in base.iterdir()}
        except FileNotFoundError:
            entries = set()
        legacy = (base / "state.json").is_file() and not (base / "state.json").is_symlink()
        if entries - _OURS_ONLY and not legacy:
            raise UserError(
                f"{echo_path(base)} is not empty and holds no rehearsal of ours",
                "pass an empty or new folder with --dir",
            )
    elif found != name:
        raise UserError(
            f"{echo_path(base)} holds the rehearsal '{found}', not '{name}'",
            f"use --name {found}, or another --dir",
        )
    if found is None:
        base.mkdir(parents=True, mode=0o700, exist_ok=True)
        atomic_write(base / MARKER, json.dumps({"kind": _KIND, "name": name}) + "\n")


def check_purgeable(base: Path, name: str) -> None:
    """Raise unless `base` is the rehearsal `name`'s own folder, marked by `up`."""
    refuse_shared(base, "local down --purge")
    if base.is_symlink() or not base.is_dir():
        raise UserError(f"local down --purge refused: {echo_path(base)} is not a folder")
    found = marker_name(base)
    if found is None:
        legacy = (base / "state.json").is_file()
        raise UserError(
            f"local down --purge refused: {echo_path(base)} has no {MARKER} file, so it is "
            "not a rehearsal made by `local up`",
            "nothing was deleted; "
            + (
                "it looks like a rehearsal from an older version: `local up` once marks it"
                if legacy
                else "remove the folder by hand if it is yours"
            ),
        )
    if found != name:
        raise UserError(
            f"local down --purge refused: {echo_path(base)} holds the rehearsal '{found}', "
            f"not '{name}'",
            f"use --name {found}",
        )
