"""The fake engine: serves ResourceMonitor + Engine over gRPC and runs the inline program.

The Automation API's language host (`--client=`) runs the real program; every resource it
registers comes here. New resources get ids/outputs from `pulumi.runtime.mocks.MockMonitor`
with `GcpMocks`; resources already in the state are a no-op (`same`) when their inputs are
unchanged. Engine events go to `--event-log` (a file, or the gRPC Events service at tcp://).
"""

from __future__ import annotations

import contextvars
import json
import os
import queue
import signal
import sys
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from cli import Backend, CliError, is_secret, now_iso, one, stack_config, unwrap
from google.protobuf import empty_pb2, json_format, struct_pb2
from mocks import GcpMocks
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import settings as psettings
from pulumi.runtime.proto import (
    engine_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    language_pb2,
    language_pb2_grpc,
    resource_pb2,
    resource_pb2_grpc,
)

STACK_TYPE = "pulumi:pulumi:Stack"
VERB = {"create": "creating", "update": "updating", "delete": "deleting", "replace": "replacing"}

# The provider's replace rules: the attribute paths the Terraform google provider declares
# ForceNew (pulumi-gcp is bridged from it), read from its source into
# tests/data/terraform_force_new.json, which names the commit. A change at any other path, or
# of a type not listed, is an in-place update.
_FORCE_NEW_DATA = Path(__file__).resolve().parents[2] / "data" / "terraform_force_new.json"


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


FORCE_NEW: dict[str, tuple[tuple[str, ...], ...]] = {
    typ: tuple(tuple(_camel(part) for part in path.split(".")) for path in entry["force_new"])
    for typ, entry in json.loads(_FORCE_NEW_DATA.read_text())["types"].items()
}


def _at(value: Any, path: tuple[str, ...]) -> Any:
    """The value at `path`; a list (a repeated block) maps the rest of the path over its items."""
    if not path:
        return value
    if isinstance(value, list):
        return [_at(v, path) for v in value]
    if isinstance(value, dict):
        return _at(value.get(path[0]), path[1:])
    return None


PROTECTED = (
    'unable to {verb} resource "{urn}"\nas it is currently marked for protection. To '
    "unprotect the resource, remove the `protect` flag from the resource in your Pulumi "
    "program and run `pulumi up`"
)


def forces_replacement(typ: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    return any(_at(old, path) != _at(new, path) for path in FORCE_NEW.get(typ, ()))


class Canceled(Exception):
    pass


class EventSink:
    """Engine events as JSON: appended to a file, or streamed to the Automation API over gRPC."""

    def __init__(self, target: str | None) -> None:
        self.seq = 0
        self.file = None
        self.q: queue.Queue[Any] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        if not target:
            return
        if target.startswith("tcp://"):
            self.channel = grpc.insecure_channel(target.removeprefix("tcp://"))
            stub = events_pb2_grpc.EventsStub(self.channel)

            def gen():
                while True:
                    item = self.q.get()
                    if item is None:
                        return
                    yield events_pb2.EventRequest(event=item)

            self.thread = threading.Thread(target=lambda: stub.StreamEvents(gen()), daemon=True)
            self.thread.start()
        else:
            self.file = open(target, "a")  # noqa: SIM115 - closed in close()

    def emit(self, **event: Any) -> None:
        with self.lock:
            self.seq += 1
            event = {"sequence": self.seq, "timestamp": int(time.time()), **event}
            line = json.dumps(event)
            if self.file is not None:
                self.file.write(line + "\n")
                self.file.flush()
            elif self.thread is not None:
                self.q.put(line)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.thread is not None:
            self.q.put(None)
            self.thread.join(10)
            self.channel.close()


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _type(urn: str) -> str:
    return urn.split("::")[2].split("$")[-1]


# What GCP never deletes: a delete only drops them from the state, and a later create of the
# same name fails with 409 unless the program imports them.
UNDELETABLE = (
    "gcp:kms/keyRing:KeyRing",
    "gcp:kms/cryptoKey:CryptoKey",
    # soft-deleted for 30 days, holding the ID: the program retains them instead
    "gcp:iam/workloadIdentityPool:WorkloadIdentityPool",
    "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider",
)


class Cloud:
    """The fake project's undeletable resources, in `$FAKE_PULUMI_CLOUD` (a JSON list of
    "type::name"); off when the variable is unset."""

    def __init__(self) -> None:
        self.path = os.environ.get("FAKE_PULUMI_CLOUD")
        p = Path(self.path) if self.path else None
        self.items: set[str] = set(json.loads(p.read_text())) if p and p.exists() else set()
        self.lock = threading.Lock()

    @staticmethod
    def key(typ: str, inputs: dict[str, Any], name: str) -> str | None:
        return f"{typ}::{inputs.get('name') or name}" if typ in UNDELETABLE else None

    def add(self, key: str) -> None:
        # registrations arrive on several gRPC threads: one writer at a time, atomic replace
        with self.lock:
            self.items.add(key)
            if self.path:
                tmp = Path(f"{self.path}.{threading.get_ident()}.tmp")
                tmp.write_text(json.dumps(sorted(self.items)))
                tmp.replace(self.path)


class Deployment:
    """One preview/up/refresh/destroy: old state in, new state out, events along the way."""

    def __init__(self, op: str, dry_run: bool, old: dict[str, Any], sink: EventSink, out) -> None:
        self.op = op
        self.dry_run = dry_run
        self.old = {r["urn"]: r for r in old["resources"]}
        self.new: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.outputs: dict[str, Any] = dict(old.get("outputs", {}))
        self.sink = sink
        self.out = out
        self.changes: dict[str, int] = {}
        self.failed: list[str] = []
        self.canceled = threading.Event()
        self.monitor = pmocks.MockMonitor(GcpMocks())
        self.root_urn = ""
        self.cloud = Cloud()
        self.fail_spec = os.environ.get("FAKE_PULUMI_FAIL_RESOURCE", "")
        self.replaced: list[str] = []
        self.protect_errors: list[str] = []
        self.hang_at = os.environ.get("FAKE_PULUMI_HANG_RESOURCE", "")
        # IAM as GCP applies it: a grant made in this run is not in force yet, so a create
        # that depends on it is refused; on the next run the grant is old and holds.
        self.iam_propagation = bool(os.environ.get("FAKE_PULUMI_IAM_PROPAGATION"))
        # benchmarks: seconds a create of each type takes (a JSON file {type: seconds})
        delays = os.environ.get("FAKE_PULUMI_CREATE_SECONDS")
        self.create_seconds: dict[str, float] = (
            json.loads(Path(delays).read_text()) if delays else {}
        )
        self.fresh_grants: set[str] = set()
        self.ops: dict[str, str] = {}  # urn -> the step that registered it in this run

    def count(self, op: str) -> None:
        self.changes[op] = self.changes.get(op, 0) + 1

    def step_event(
        self, kind: str, op: str, urn: str, typ: str, inputs: Any, outputs: Any = None
    ) -> None:
        state = {"type": typ, "urn": urn, "custom": True, "inputs": unwrap(inputs or {})}
        if outputs is not None:
            state["outputs"] = unwrap(outputs)
        meta = {"op": op, "urn": urn, "type": typ, "provider": "", "new": state}
        self.sink.emit(**{kind: {"metadata": meta, "planning": self.dry_run}})

    def register(self, request: Any, ctx: contextvars.Context) -> Any:
        if self.canceled.is_set():
            raise Canceled()
        if request.type == STACK_TYPE:
            resp = ctx.copy().run(self.monitor.RegisterResource, request)
            self.root_urn = resp.urn
            self.sink.emit(
                resourcePreEvent={
                    "metadata": {"op": "same", "urn": resp.urn, "type": STACK_TYPE, "provider": ""}
                }
            )
            return resp
        urn = ctx.copy().run(self.monitor.make_urn, request.parent, request.type, request.name)
        inputs = json_format.MessageToDict(request.object)
        log = os.environ.get("FAKE_PULUMI_INPUTS_LOG")
        if log and not self.dry_run:  # what the program sent, for tests comparing runs
            with open(log, "a") as f:
                f.write(json.dumps({"urn": urn, "inputs": inputs}, sort_keys=True) + "\n")
        prev = self.old.get(urn)
        cloud_key = self.cloud.key(request.type, unwrap(inputs), request.name)
        if prev is None and cloud_key and self.cloud.path:
            exists = cloud_key in self.cloud.items
            if request.importId and not exists:
                raise self._fail(urn, request, "import", f"Error 404: {request.importId} not found")
            if not request.importId and exists:
                raise self._fail(
                    urn, request, "create", f"Error 409: {cloud_key.split('::')[1]} already exists"
                )
            if not self.dry_run:
                self.cloud.add(cloud_key)
        if prev is None and request.importId:
            op = "import"
        elif prev is None:
            op = "create"
        elif prev["inputs"] == inputs:
            op = "same"
        elif forces_replacement(request.type, prev["inputs"], inputs):
            op = "replace"
        else:
            op = "update"
        if op == "replace" and prev is not None:
            # as the engine does: protect in the state and in the program refuses a replacement
            # (a preview reports it and goes on; an update stops)
            if prev.get("protect") and request.protect:
                msg = PROTECTED.format(verb="replace", urn=urn)
                self.sink.emit(
                    diagnosticEvent={
                        "urn": urn,
                        "message": msg + "\n",
                        "color": "never",
                        "severity": "error",
                    }
                )
                self.protect_errors.append(msg)
                if not self.dry_run:
                    self.failed.append(urn)
                    raise CliError(msg)
            self.step_event("resourcePreEvent", "create-replacement", urn, request.type, inputs)
            self.replaced.append(urn)
        self.step_event("resourcePreEvent", op, urn, request.type, inputs)
        mark = {"create": "+", "update": "~", "replace": "+-"}.get(op, " ")
        self.out(f"    {mark}  {request.type} {request.name} {op}")
        if request.name == self.hang_at and not self.dry_run:
            marker = os.environ.get("FAKE_PULUMI_HANG_MARKER")
            if marker:  # whole or absent: a reader never sees it half written
                Path(f"{marker}.tmp").write_text(str(os.getpid()))
                os.replace(f"{marker}.tmp", marker)
            while not self.canceled.wait(0.05):
                pass
            raise Canceled()
        if (
            self.iam_propagation
            and op == "create"
            and request.custom  # a component makes no API call: nothing to refuse
            and "IAM" not in request.type.rsplit(":", 1)[-1]  # a grant's own create needs none
            and not self.dry_run
            and self.fresh_grants & set(request.dependencies)
        ):
            grant = sorted(self.fresh_grants & set(request.dependencies))[0]
            msg = (
                "googleapi: Error 403: Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' "
                f"denied on resource '{_name(grant)}' (or it may not exist)., forbidden"
                if "cryptoKey" in _type(grant)
                else "googleapi: Error 403: The caller does not have permission, forbidden"
            )
            raise self._fail(urn, request, "create", msg)
        gate_name, _, gate_file = os.environ.get("FAKE_PULUMI_GATE", "").partition("=")
        if request.name == gate_name and op == "create" and not self.dry_run:
            # a create that lasts until the test opens the gate (another line of work's
            # state decides), as long as a real create; refused after two minutes
            waited = 0.0
            while not Path(gate_file).exists():
                if self.canceled.wait(0.02):
                    raise Canceled()
                waited += 0.02
                if waited > 120:
                    raise self._fail(urn, request, op, "the gate of this create never opened")
        delay = self.create_seconds.get(request.type, 0.0) if op == "create" else 0.0
        if delay and not self.dry_run and self.canceled.wait(delay):
            raise Canceled()
        fail_name, _, fail_msg = self.fail_spec.partition("=")
        if fail_name and request.name == fail_name and op != "same" and not self.dry_run:
            msg = fail_msg or "googleapi: Error 403: Quota 'CPUS' exceeded. Limit: 8.0 in region."
            self.sink.emit(
                diagnosticEvent={
                    "urn": urn,
                    "prefix": "error: ",
                    "message": f"sdk-v2/provider2.go:572: sdk.helper_schema: Error {VERB[op]} {request.name}: {msg}\n",
                    "color": "never",
                    "severity": "error",
                }
            )
            self.sink.emit(
                resOpFailedEvent={
                    "metadata": {"op": op, "urn": urn, "type": request.type, "provider": ""},
                    "status": 1,
                    "steps": 1,
                }
            )
            self.failed.append(urn)
            raise CliError(f"{VERB[op]} {urn}: {msg}")
        if prev is not None and op == "same":
            rid, outputs = prev["id"], prev["outputs"]
        else:
            resp = ctx.copy().run(self.monitor.RegisterResource, request)
            rid, outputs = resp.id, json_format.MessageToDict(resp.object)
            if prev is not None:
                # an update keeps the cloud resource; a replacement is a new one
                rid = prev["id"] if op == "update" else f"{resp.id}-{len(self.replaced)}"
            elif request.importId:
                rid = request.importId
        self.new[urn] = {
            "urn": urn,
            "type": request.type,
            "id": rid,
            "custom": request.custom,
            "parent": request.parent,
            "protect": request.protect,
            "retainOnDelete": request.retainOnDelete,
            "inputs": inputs,
            "outputs": outputs,
        }
        self.order.append(urn)
        self.ops[urn] = op
        self.count(op)
        if op in ("create", "update", "replace") and "IAM" in request.type.rsplit(":", 1)[-1]:
            self.fresh_grants.add(urn)
        self.step_event("resOutputsEvent", op, urn, request.type, inputs, outputs)
        obj = struct_pb2.Struct()
        json_format.ParseDict(outputs, obj)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=rid, object=obj)

    def _fail(self, urn: str, request: Any, op: str, msg: str) -> CliError:
        self.sink.emit(
            diagnosticEvent={
                "urn": urn,
                "prefix": "error: ",
                "message": f"error {op} {request.name}: {msg}\n",
                "color": "never",
                "severity": "error",
            }
        )
        self.sink.emit(
            resOpFailedEvent={
                "metadata": {"op": op, "urn": urn, "type": request.type, "provider": ""},
                "status": 1,
                "steps": 1,
            }
        )
        self.failed.append(urn)
        return CliError(f"{op} {urn}: {msg}")

    def register_outputs(self, request: Any) -> None:
        outputs = json_format.MessageToDict(request.outputs)
        if request.urn == self.root_urn:
            self.outputs = outputs
            return
        # as the engine does: a component's registered outputs are its state's outputs, and
        # the step that registered it is reported again, now with them
        state = self.new.get(request.urn)
        if state is not None and not state["custom"]:
            state["outputs"] = outputs
            op = self.ops.get(request.urn, "same")
            self.step_event("resOutputsEvent", op, request.urn, state["type"], {}, outputs)


class Monitor(resource_pb2_grpc.ResourceMonitorServicer):
    """gRPC face of the deployment; every handler runs in a copy of the settings context."""

    def __init__(self, dep: Deployment, ctx: contextvars.Context) -> None:
        self.dep = dep
        self.ctx = ctx

    def _run(self, fn, *args):
        return self.ctx.copy().run(fn, *args)

    def SupportsFeature(self, request, context):
        r = self._run(self.dep.monitor.SupportsFeature, request)
        return resource_pb2.SupportsFeatureResponse(hasSupport=r.hasSupport)

    def GetDeploymentInfo(self, request, context):
        return self._run(self.dep.monitor.GetDeploymentInfo, request)

    def Invoke(self, request, context):
        return self._run(self.dep.monitor.Invoke, request)

    def ReadResource(self, request, context):
        return self._run(self.dep.monitor.ReadResource, request)

    def RegisterResource(self, request, context):
        try:
            return self.dep.register(request, self.ctx)
        except Canceled:
            context.abort(grpc.StatusCode.CANCELLED, "update canceled")
        except CliError as e:
            context.abort(grpc.StatusCode.UNKNOWN, str(e))

    def RegisterResourceOutputs(self, request, context):
        self.dep.register_outputs(request)
        return empty_pb2.Empty()

    def RegisterStackTransform(self, request, context):
        return empty_pb2.Empty()

    def RegisterStackInvokeTransform(self, request, context):
        return empty_pb2.Empty()

    def RegisterResourceHook(self, request, context):
        return empty_pb2.Empty()

    def RegisterErrorHook(self, request, context):
        return empty_pb2.Empty()

    def RegisterPackage(self, request, context):
        return resource_pb2.RegisterPackageResponse(ref="fake-package")

    def SignalAndWaitForShutdown(self, request, context):
        return empty_pb2.Empty()


class Engine(engine_pb2_grpc.EngineServicer):
    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.root = ""

    def Log(self, request, context):
        sev = {0: "debug", 1: "info", 2: "warning", 3: "error"}.get(request.severity, "info")
        if sev != "debug":
            self.dep.sink.emit(
                diagnosticEvent={
                    "urn": request.urn,
                    "message": request.message + "\n",
                    "color": "never",
                    "severity": sev,
                }
            )
            self.dep.out(f"    {sev}: {request.message}")
        return empty_pb2.Empty()

    def GetRootResource(self, request, context):
        from pulumi.runtime.proto import engine_pb2

        return engine_pb2.GetRootResourceResponse(urn=self.root)

    def SetRootResource(self, request, context):
        from pulumi.runtime.proto import engine_pb2

        self.root = request.urn
        return engine_pb2.SetRootResourceResponse()


def _run_program(dep: Deployment, client: str, project: str, stack: str, cwd: Path) -> str:
    """Serve the monitor and engine, ask the language host to run the program; '' or error."""
    ctx = contextvars.copy_context()

    def configure() -> None:
        psettings.configure(
            psettings.Settings(project=project, stack=stack, organization="organization")
        )

    ctx.run(configure)
    # independent registrations run side by side, as the real engine's steps do
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=128))
    resource_pb2_grpc.add_ResourceMonitorServicer_to_server(Monitor(dep, ctx), server)
    engine_pb2_grpc.add_EngineServicer_to_server(Engine(dep), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        cfg = stack_config(cwd, stack)
        with grpc.insecure_channel(client) as ch:
            stub = language_pb2_grpc.LanguageRuntimeStub(ch)
            req = language_pb2.RunRequest(
                project=project,
                stack=stack,
                pwd=str(cwd),
                program=".",
                args=[f"127.0.0.1:{port}"],
                config={k: str(v["value"]) for k, v in cfg.items()},
                configSecretKeys=[k for k, v in cfg.items() if v.get("secret")],
                dryRun=dep.dry_run,
                parallel=8,
                monitor_address=f"127.0.0.1:{port}",
                organization="organization",
            )
            fut = stub.Run.future(req)
            while not fut.done():
                time.sleep(0.02)
            try:
                resp = fut.result()
            except grpc.RpcError as e:
                return f"language host: {e.details()}"
            return resp.error
    finally:
        server.stop(0)


def run_operation(
    cmd: str, pos: list[str], flags: dict[str, list[str]], be: Backend, cwd: Path
) -> int:
    stack = one(flags, "--stack")
    if not stack:
        sys.stderr.write("error: no stack selected\n")
        return 255
    try:
        data = be.load(stack)
    except CliError as e:
        sys.stderr.write(str(e) + "\n")
        return 255
    dry_run = cmd == "preview" or "--preview-only" in flags
    lock = None
    if not dry_run:
        try:
            lock = be.lock(stack)
        except CliError as e:
            sys.stderr.write(str(e) + "\n")
            return 255
    sink = EventSink(one(flags, "--event-log"))
    lines: list[str] = []

    def out(line: str) -> None:
        lines.append(line)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    dep = Deployment(cmd, dry_run, data, sink, out)

    def on_sigint(*_: Any) -> None:
        signal_log = os.environ.get("FAKE_PULUMI_SIGNAL_LOG")
        if signal_log:  # lets tests count how many interrupts reached the engine
            with open(signal_log, "a") as f:
                f.write("SIGINT\n")
        dep.canceled.set()
        out("^C received; cancelling the current operation")

    signal.signal(signal.SIGINT, on_sigint)
    start = now_iso()
    t0 = time.time()
    verb = {
        "up": "Updating",
        "preview": "Previewing update",
        "refresh": "Refreshing",
        "destroy": "Destroying",
    }[cmd]
    out(f"{verb} ({stack})")
    sink.emit(preludeEvent={"config": {}})
    error = ""
    try:
        if cmd in ("up", "preview"):
            client = one(flags, "--client")
            if not client:
                error = "the fake pulumi runs inline programs only (--client is missing)"
            else:
                error = _run_program(dep, client, be.project, stack, cwd)
                if not error and not dep.failed and not dep.canceled.is_set():
                    for urn in dep.replaced:
                        r = dep.old[urn]
                        dep.step_event(
                            "resourcePreEvent", "delete-replaced", urn, r["type"], r["inputs"]
                        )
                        dep.step_event(
                            "resOutputsEvent", "delete-replaced", urn, r["type"], r["inputs"]
                        )
                    for urn in reversed([u for u in dep.old if u not in dep.new]):
                        r = dep.old[urn]
                        if r.get("protect"):
                            msg = PROTECTED.format(verb="delete", urn=urn)
                            sink.emit(
                                diagnosticEvent={
                                    "urn": urn,
                                    "message": msg + "\n",
                                    "color": "never",
                                    "severity": "error",
                                }
                            )
                            dep.protect_errors.append(msg)
                            dep.new[urn] = r
                            dep.order.append(urn)
                            continue
                        dep.step_event("resourcePreEvent", "delete", urn, r["type"], r["inputs"])
                        dep.count("delete")
                        dep.step_event("resOutputsEvent", "delete", urn, r["type"], r["inputs"])
                if dep.protect_errors and not error:
                    error = dep.protect_errors[0]
        elif cmd == "refresh":
            # what changed in the cloud behind the state's back: $FAKE_PULUMI_DRIFT, a JSON
            # {"deleted": [names], "outputs": {name: {output: value}}}, read once (the state
            # then matches the cloud again)
            drift_path = Path(os.environ.get("FAKE_PULUMI_DRIFT") or "/nonexistent")
            drift = json.loads(drift_path.read_text()) if drift_path.is_file() else {}
            gone, changed = set(drift.get("deleted", ())), drift.get("outputs", {})
            for urn, r in dep.old.items():
                name = urn.rsplit("::", 1)[-1]
                dep.step_event("resourcePreEvent", "refresh", urn, r["type"], r["inputs"])
                if name in gone:  # deleted out of band: dropped from the state
                    dep.count("delete")
                    continue
                if name in changed:
                    r = {**r, "outputs": {**unwrap(r["outputs"]), **changed[name]}}
                    dep.count("update")
                else:
                    dep.count("same")
                dep.step_event(
                    "resOutputsEvent", "refresh", urn, r["type"], r["inputs"], r["outputs"]
                )
                dep.new[urn] = r
                dep.order.append(urn)
            if drift and not dep.dry_run:
                drift_path.unlink()
        elif cmd == "destroy":
            protected = [
                urn
                for urn, r in dep.old.items()
                if unwrap(r["inputs"]).get("deletionProtection") is True
            ]
            locked = [urn for urn, r in dep.old.items() if r.get("protect")]
            if locked:
                # As Pulumi does: a protected resource fails the whole destroy up front.
                error = (
                    f"error: resource {locked[0]} cannot be deleted because it is protected. "
                    "To unprotect the resource, remove the `protect` flag from the resource in "
                    "your Pulumi program and run `pulumi up`"
                )
                sink.emit(
                    diagnosticEvent={"message": error + "\n", "severity": "error", "color": "never"}
                )
            for urn in [] if locked else reversed(list(dep.old)):
                r = dep.old[urn]
                if urn in protected or r.get("protect"):
                    msg = (
                        f"error: deleting urn:{_name(urn)}: Cannot destroy {_type(urn)} "
                        f"{_name(urn)} because deletion_protection is set to true. "
                        "Set it to false to proceed with deletion."
                    )
                    if r.get("protect"):
                        msg = PROTECTED.format(verb="delete", urn=urn)
                    sink.emit(
                        diagnosticEvent={
                            "urn": urn,
                            "message": msg + "\n",
                            "severity": "error",
                            "color": "never",
                        }
                    )
                    sink.emit(
                        resOpFailedEvent={
                            "metadata": {
                                "op": "delete",
                                "urn": urn,
                                "type": r["type"],
                                "provider": "",
                            },
                            "status": 1,
                            "steps": 1,
                        }
                    )
                    error = msg
                    dep.new[urn] = r
                    continue
                dep.step_event("resourcePreEvent", "delete", urn, r["type"], r["inputs"])
                dep.count("delete")
                dep.step_event("resOutputsEvent", "delete", urn, r["type"], r["inputs"])
            if locked:
                dep.new = dict(dep.old)
            dep.order = [u for u in dep.old if u in dep.new]
            if not dep.new:
                dep.outputs = {}
    finally:
        canceled = dep.canceled.is_set()
        ok = not error and not dep.failed and not canceled
        result = "succeeded" if ok else "failed"
        if not dry_run:
            if cmd in ("up",):
                if ok:
                    data["resources"] = [dep.new[u] for u in dep.order]
                    data["outputs"] = dep.outputs
                else:
                    # keep what was done: previous resources plus the ones created so far
                    merged = dict(dep.old)
                    merged.update(dep.new)
                    data["resources"] = list(merged.values())
            elif cmd in ("refresh", "destroy"):
                data["resources"] = [dep.new[u] for u in dep.order]
                if cmd == "destroy" and not data["resources"]:
                    data["outputs"] = {}
            data["history"].append(
                {
                    "version": len(data["history"]) + 1,
                    "kind": "update" if cmd == "up" else cmd,
                    "startTime": start,
                    "endTime": now_iso(),
                    "message": "",
                    "environment": {},
                    "config": {},
                    "result": result,
                    "resourceChanges": dep.changes,
                }
            )
            be.save(stack, data)
        sink.emit(
            summaryEvent={
                "maybeCorrupt": False,
                "durationSeconds": int(time.time() - t0),
                "resourceChanges": dep.changes,
                "PolicyPacks": {},
            }
        )
        if canceled:
            sink.emit(cancelEvent={})
        sink.close()
        if lock is not None and not os.environ.get("FAKE_PULUMI_STALE_LOCK"):
            lock.unlink(missing_ok=True)
    out("Resources:")
    for k, v in sorted(dep.changes.items()):
        out(f"    {v} {k}")
    out(f"Duration: {time.time() - t0:.0f}s")
    if canceled:
        sys.stderr.write("error: update canceled\n")
        return 255
    if error or dep.failed:
        if error and "inline source runtime error" not in error:
            sys.stderr.write(error.rstrip() + "\n")
        sys.stderr.write(f"error: {cmd} failed\n")
        return 255
    _ = is_secret
    return 0
