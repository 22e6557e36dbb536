"""`pause --local` / `resume --local`: stop and start the rehearsal's servers, data kept.

The ZenML and MLflow servers and the storage emulator stop (their whole process groups);
their databases and files stay in the data dir. A marker file says paused, with when and
by whom; `resume --local` starts them again on the same ports and waits until they answer.
Both are idempotent: pausing a paused rehearsal or resuming a running one changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import atomic_write
from ..local import services as sv
from ..names import LocalNames
from .local import _layout, _restart

MARKER = "paused.json"
ORDER = ("zenml", "mlflow", "gcs")  # the writers first, the emulator they read last


def local_pause(
    name: str, data_dir: Path | None, by: str, log: Callable[[str], None] = lambda s: None
) -> dict[str, Any]:
    lay, _ = _layout(name, data_dir)
    marker = lay.base / MARKER
    with sv.dir_lock(lay.base):
        state = sv.LocalState.load(lay.base)
        assert state is not None
        entry = json.loads(marker.read_text()) if marker.exists() else None
        if entry is None:
            entry = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "by": by}
            atomic_write(marker, json.dumps(entry))  # before stopping: a kill re-runs
        for key in ORDER:
            svc = state.services.get(key)
            if svc is None:
                continue
            log(f"stopping the {svc.title}")
            if not sv.stop(svc, timeout=30):
                raise UserError(f"could not stop the {svc.title}", "run `pause --local` again")
            state.services.pop(key)
            state.save(lay.base)
    return {"paused": entry}


def local_resume(
    name: str, data_dir: Path | None, log: Callable[[str], None] = lambda s: None
) -> dict[str, Any]:
    from ..local.specs import gcs_spec, mlflow_spec, zenml_spec

    lay, _ = _layout(name, data_dir)
    marker = lay.base / MARKER
    with sv.dir_lock(lay.base):
        state = sv.LocalState.load(lay.base)
        assert state is not None
        entry = json.loads(marker.read_text()) if marker.exists() else None
        if all(state.services.get(k) is not None and state.services[k].alive() for k in ORDER):
            marker.unlink(missing_ok=True)
            return {"resumed": False, "paused_since": None}
        for key in ("zenml", "mlflow"):  # a half-done pause may have left one running
            svc = state.services.pop(key, None)
            if svc is not None and svc.alive() and not sv.stop(svc, timeout=30):
                raise UserError(f"could not restart the {svc.title}", "run it again")
        error = _restart(lay, state, LocalNames(name), (gcs_spec, mlflow_spec, zenml_spec), log)
        if error is not None:
            raise UserError(f"the rehearsal's servers did not start: {error}", "run it again")
        marker.unlink(missing_ok=True)
    urls = {k: state.services[k].url for k in ("zenml", "mlflow") if k in state.services}
    return {"resumed": True, "paused_since": (entry or {}).get("at"), "urls": urls}
