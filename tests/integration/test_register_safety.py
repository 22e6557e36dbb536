"""What `register` and its teardown promise when the server is not theirs alone, dies or
hangs; against real ZenML servers (uvicorn + SQLite)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support.register_fixtures import (
    admin_store,
    make_cfg,
    make_outputs,
    shared_server,
    write_outputs,
)
from tests.support.zenml_server import ZenServer, start_zenml_server
from zenml_gcp_gitops.errors import PhaseError
from zenml_gcp_gitops.zenml.apply import ForeignObjectError, apply_stack_spec
from zenml_gcp_gitops.zenml.deregister import delete_stack_spec
from zenml_gcp_gitops.zenml.stack_spec import gcp_stack_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> ZenServer:
    return shared_server(request)


@pytest.fixture(scope="module")
def store(server: ZenServer) -> Any:
    return admin_store(server)


def _spec(name: str) -> Any:
    cfg = make_cfg(name)
    return gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="ml", mlflow_password="ml-Pw")


def _values(store: Any, name: str) -> dict[str, str]:
    from zenml_gcp_gitops.zenml.secrets import find_secret

    full = store.get_secret(find_secret(store, name).id)
    return {k: v.get_secret_value() for k, v in full.values.items()}


def test_a_foreign_secret_is_refused_and_left_by_the_teardown(store: Any) -> None:
    from zenml.models import SecretRequest

    spec = _spec("sec-foreign")
    name = spec.secrets[0].name
    theirs = {"username": "someone", "password": "their-Pw"}
    store.create_secret(SecretRequest(name=name, private=False, values=theirs))

    with pytest.raises(ForeignObjectError) as e:
        apply_stack_spec(store, spec)
    assert f"secret '{name}'" in e.value.message and "--adopt" in str(e.value)
    assert _values(store, name) == theirs  # not overwritten

    kept: list[str] = []
    assert delete_stack_spec(store, spec, kept=kept) == []
    assert _values(store, name) == theirs  # not deleted
    # the flavor stays too while other tests' stacks on this server use it
    secrets_kept = [k for k in kept if not k.startswith("kept flavor ")]
    assert len(secrets_kept) == 1 and name in secrets_kept[0] and "--adopt" in secrets_kept[0]

    from zenml_gcp_gitops.zenml.secrets import OWNER_KEY, find_secret

    apply_stack_spec(store, spec, adopt=True)  # taken over: ours from now on
    assert OWNER_KEY in _values(store, name)
    assert f"secret:{name}" in delete_stack_spec(store, spec)
    assert find_secret(store, name) is None


def test_destroy_with_adopt_deletes_a_foreign_secret(store: Any) -> None:
    from zenml.models import SecretRequest

    from zenml_gcp_gitops.zenml.secrets import find_secret

    spec = _spec("sec-destroy")
    name = spec.secrets[0].name
    store.create_secret(SecretRequest(name=name, private=False, values={"a": "b"}))
    assert delete_stack_spec(store, spec, adopt=True) == [f"secret:{name}"]
    assert find_secret(store, name) is None


def test_an_unmarked_secret_our_components_use_is_ours_and_another_deployments_is_not(
    store: Any,
) -> None:
    from zenml.models import SecretUpdate

    from zenml_gcp_gitops.zenml.secrets import OWNER_KEY, find_secret, owner_mark

    spec = _spec("sec-legacy")
    name = spec.secrets[0].name
    apply_stack_spec(store, spec)
    sid = find_secret(store, name).id
    # as registered before the owner key existed: our labelled tracker references it
    store.update_secret(sid, SecretUpdate(values={OWNER_KEY: None}))
    assert OWNER_KEY not in _values(store, name)
    result = apply_stack_spec(store, spec)
    assert f"secret:{name}" in result.updated
    assert _values(store, name)[OWNER_KEY] == owner_mark(spec)

    other = _spec("sec-other")  # another deployment's marker on a secret of our name
    store.update_secret(sid, SecretUpdate(values={OWNER_KEY: owner_mark(other)}))
    with pytest.raises(ForeignObjectError, match=f"secret '{name}'"):
        apply_stack_spec(store, spec)
    kept: list[str] = []
    removed = delete_stack_spec(store, spec, kept=kept)
    assert f"secret:{name}" not in removed and kept
    assert find_secret(store, name) is not None


def test_a_server_dying_mid_write_is_reported_with_what_it_left(tmp_path: Path) -> None:
    """The server commits a component and dies before answering: the error names the
    component (and the objects it could not undo), never "nothing was left behind"; a
    restarted server shows they are there, and a re-run takes them over."""
    from zenml_gcp_gitops.zenml.apply import count_objects

    wd = tmp_path / "dying"
    dying = start_zenml_server(
        workdir=wd,
        app="tests.support.zenml_dying_app:app",
        extra_env={"ZGG_DIE_ON": "POST /components"},
    )
    try:
        spec = _spec("sec-dying")
        store = admin_store(dying)
        with pytest.raises(PhaseError) as e:
            apply_stack_spec(store, spec)  # its time: `bench_register.py --faults` (benchmarks/)
        msg = e.value.message
        first = spec.ordered_components()[0]
        for left in (f"{first.type}:{first.name}", spec.secrets[0].name, spec.connector.name):
            assert left in msg
        assert "nothing was left behind" not in msg
        assert "the connection to the ZenML server was lost" in msg
        assert "could not be checked" in msg
    finally:
        dying.process.wait(timeout=30)
    back = start_zenml_server(workdir=wd, password=dying.password)
    try:
        store = admin_store(back)
        counts = count_objects(store)
        assert counts["secrets"] >= 1 and counts["connectors"] == 1 and counts["components"] >= 1
        result = apply_stack_spec(store, spec)
        assert f"{first.type}:{first.name}" in result.unchanged
    finally:
        back.stop()


def test_a_secret_record_without_values_does_not_stop_reruns(tmp_path: Path) -> None:
    """The server dies between ZenML's two commits of a new secret (its record, then its
    values): ZenML keeps a record it can neither read, update nor delete (KeyError). The
    interrupted run says so and what the re-run does; the re-run registers the secret under
    `<name>-v2`, a second re-run changes nothing, and the teardown leaves the record alone."""
    from zenml_gcp_gitops.zenml.secrets import find_secret

    wd = tmp_path / "dying"
    dying = start_zenml_server(
        workdir=wd,
        app="tests.support.zenml_dying_app:app",
        extra_env={"ZGG_DIE_IN_SECRET_VALUES": "1"},
    )
    spec = _spec("sec-novalues")
    name = spec.secrets[0].name
    try:
        with pytest.raises(PhaseError) as e:
            apply_stack_spec(admin_store(dying), spec)
        first_run = e.value.message  # checked last: the re-runs are the point
    finally:
        dying.process.wait(timeout=30)
    back = start_zenml_server(workdir=wd, password=dying.password)
    try:
        store = admin_store(back)
        broken = find_secret(store, name)
        assert broken is not None
        with pytest.raises(KeyError, match="have not been stored"):
            store.get_secret(broken.id)  # the state ZenML left: not readable
        result = apply_stack_spec(store, spec)
        assert f"secret:{name}-v2" in result.created
        assert any(f"'{name}'" in line and "without its values" in line for line in result.log)
        tracker = store.get_stack_component(result.components["experiment_tracker"].id)
        assert "{{" + name + "-v2." in str(tracker.configuration)
        again = apply_stack_spec(store, spec)
        assert again.created == [] and again.updated == []
        assert f"secret:{name}-v2" in again.unchanged
        removed = delete_stack_spec(store, spec)
        assert f"secret:{name}-v2" in removed
        assert find_secret(store, name) is not None  # not provably ours (and not deletable)
    finally:
        back.stop()
    assert f"secret:{name} (may have been created)" in first_run
    assert f"'{name}-v2'" in first_run  # what the re-run will do


def test_ctrl_c_during_register_undoes_its_writes_and_says_what_is_left(tmp_path: Path) -> None:
    """Ctrl-C in a real `register` while the server holds the answer to a component it has
    committed: the run undoes its writes and that component too, names them, exits 130, and
    the server holds what it held before."""
    import subprocess
    import sys

    from tests.support import signals
    from zenml_gcp_gitops.zenml.apply import count_objects

    marker = tmp_path / "hanging"
    srv = start_zenml_server(
        app="tests.support.zenml_dying_app:app",
        extra_env={"ZGG_HANG_ON": "POST /components", "ZGG_HANG_MARKER": str(marker)},
    )
    try:
        store = admin_store(srv)
        before = count_objects(store)
        outputs = write_outputs(tmp_path / "outputs.json", make_cfg("sec-ctrlc"))
        env = srv.client_env(
            ZENML_STORE_USERNAME=srv.username, ZENML_STORE_PASSWORD=srv.password,
            MLFLOW_TRACKING_USERNAME="ml", MLFLOW_TRACKING_PASSWORD="ml-Pw",
            ZENML_GCP_GITOPS_HOME=str(tmp_path / "home"),
        )  # fmt: skip
        cli = [sys.executable, "-c", "from zenml_gcp_gitops.cli import main; main()"]
        proc = signals.start(
            [*cli, "register", "--outputs", str(outputs), "--zenml-url", srv.url],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            signals.wait_for(marker.exists, proc, "the server holds a component's answer")
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=120)
        finally:
            signals.stop(proc)
        assert proc.returncode == 130, err
        line = " ".join(err[err.index("Error:") :].split())
        assert "interrupted while registering stack sec-ctrlc: undid its writes (" in line, line
        first = _spec("sec-ctrlc").ordered_components()[0]
        assert f"{first.type}:{first.name}" in line  # the one whose answer never came
        assert "left on the server: nothing" in line, line
        assert count_objects(store) == before
    finally:
        srv.stop()


def test_a_lost_answer_is_checked_and_undone_once_the_server_answers() -> None:
    """The server commits a component but its answer breaks off; the server still answers:
    the run finds the component, deletes it with the rest, and says it checked."""
    from zenml_gcp_gitops.zenml.apply import count_objects

    srv = start_zenml_server(
        app="tests.support.zenml_dying_app:app",
        extra_env={"ZGG_DROP_ON": "POST /components"},
    )
    try:
        spec = _spec("sec-drop")
        store = admin_store(srv)
        before = count_objects(store)
        with pytest.raises(PhaseError) as e:
            apply_stack_spec(store, spec)
        msg = e.value.message
        assert "the connection to the ZenML server was lost" in msg
        assert "checked once the server answered again: nothing was left behind" in msg
        after = count_objects(store)
        assert {k: after[k] for k in ("components", "connectors", "stacks")} == {
            k: before[k] for k in ("components", "connectors", "stacks")
        }
        assert after["secrets"] == before["secrets"]
        result = apply_stack_spec(store, spec)  # the server is fine: a re-run converges
        assert result.stack.name == "sec-drop"
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def own_server() -> Iterator[ZenServer]:
    """A server of this module's own: the timeout test stops its process."""
    s = start_zenml_server()
    try:
        yield s
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(s.process.pid, signal.SIGCONT)
        s.stop()


def test_timeout_bounds_the_whole_register_against_a_hung_server(
    own_server: ZenServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stops answering (SIGSTOP) right after the login: `register --timeout 8`
    ends with a timeout error while the server is still stopped, not after minutes of retries.

    The bound is the contract, so it is asserted, but as an order of events, not a duration:
    the server is woken after 90 s, and the run must have ended before that. An unbounded run
    ends only after the wake; a bounded one ends at about 8 s, leaving 80 s for a loaded
    2-core machine (the whole test then still takes under two minutes if it fails)."""
    import zenml_gcp_gitops.zenml.session as session
    from zenml_gcp_gitops.cli import cli

    monkeypatch.delenv("ZENML_STORE_API_KEY", raising=False)
    monkeypatch.setenv("ZENML_STORE_USERNAME", own_server.username)
    monkeypatch.setenv("ZENML_STORE_PASSWORD", own_server.password)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ml")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "ml-Pw")
    real_connect = session.connect
    pgid = own_server.process.pid

    def connect_then_hang(*args: Any, **kwargs: Any) -> Any:
        store = real_connect(*args, **kwargs)
        os.killpg(pgid, signal.SIGSTOP)
        return store

    monkeypatch.setattr(session, "connect", connect_then_hang)
    woken = threading.Event()

    def wake_up() -> None:
        woken.set()
        os.killpg(pgid, signal.SIGCONT)

    # whatever happens, the server runs again in 90 s (an unbounded run then finishes)
    wake = threading.Timer(90, wake_up)
    wake.start()
    outputs = write_outputs(tmp_path / "outputs.json", make_cfg("sec-hung"))
    t0 = time.monotonic()
    try:
        res = CliRunner().invoke(
            cli,
            ["register", "--outputs", str(outputs), "--zenml-url", own_server.url,
             "--timeout", "8"],
        )  # fmt: skip
    finally:
        took = time.monotonic() - t0
        wake.cancel()
        os.killpg(pgid, signal.SIGCONT)
    assert res.exit_code != 0, res.output
    assert "did not answer within --timeout 8s" in res.output, res.output
    assert not woken.is_set(), f"the run ended only after the server was woken ({took:.0f} s)"
    assert "Traceback" not in res.output


def test_connect_uses_no_private_zenml_initialisation(
    server: ZenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml.zen_stores.rest_zen_store import RestZenStore

    from zenml_gcp_gitops.zenml.session import Credentials, connect

    def private(self: Any) -> None:
        raise AssertionError("RestZenStore._initialize is ZenML-private")

    monkeypatch.setattr(RestZenStore, "_initialize", private)
    store = connect(server.url, Credentials(username=server.username, password=server.password))
    assert store.get_store_info().version
