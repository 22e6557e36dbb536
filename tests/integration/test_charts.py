"""The stack against the real upstream charts: what Argo CD would render and apply.

For every Application of four config variants, `helm template` runs on the pinned chart (from
../shared/charts) with exactly the values the Application carries, as Argo CD does. The
output must pass strict schema validation, use every value we pass, find every Secret and
ConfigMap it mounts or reads, and render identically twice apart from what the
Application's ignoreDifferences covers.

The zenml chart there is assembled from upstream files (../shared/charts/SOURCES.md); the
tests that read its output name the detail they depend on.
"""

from __future__ import annotations

import configparser
import copy
import json
import posixpath
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support import charts as C
from tests.support.argo_diff import drift, without_ignored

pytestmark = [pytest.mark.usefixtures("helm_charts"), pytest.mark.timeout(900)]

VARIANTS = sorted(C.VARIANTS)


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest, helm_charts: None) -> str:
    return str(request.param)


def _renders(variant: str) -> list[C.ChartRender]:
    return C.render_variant(variant)


def _by_key(variant: str) -> dict[str, C.ChartRender]:
    return {cr.app_key: cr for cr in _renders(variant)}


def _pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(owner object, pod spec) for everything that runs pods."""
    for obj in objects:
        kind = obj.get("kind")
        if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
            yield obj, obj["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield obj, obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif kind == "Pod":
            yield obj, obj["spec"]


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


# ---------------------------------------------------------------- every app renders


def test_every_helm_application_renders_with_the_real_chart(variant: str) -> None:
    cfg, r = C.variant(variant)
    keys = {cr.app_key: cr for cr in _renders(variant)}
    helm_apps = {a.key for a in r.apps if "chart" in a.manifest["spec"]["source"]}
    # no GitOps repo: the plain objects and the root app ride in the raw chart too
    assert set(keys) == helm_apps | {"root"}
    assert ("ingress_nginx" in keys) == (cfg.ingress == "nginx")
    for cr in keys.values():
        assert cr.objects, f"{cr.app_name}: the chart rendered nothing"
    # the raw chart puts out exactly the objects we pass, with its labels added
    for key in ("platform", "workloads", "root"):
        cr = keys[key]
        ident = lambda o: (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))  # noqa: E731
        given = {ident(o): o for o in cr.values["resources"]}
        out = {ident(o): o for o in cr.objects}
        assert sorted(out) == sorted(given)
        for k, want in given.items():
            got = out[k]
            assert {k: v for k, v in got.items() if k != "metadata"} == {
                k: v for k, v in want.items() if k != "metadata"
            }
            assert want["metadata"]["labels"].items() <= got["metadata"]["labels"].items()


# ---------------------------------------------------------------- strict validation


def test_every_rendered_object_passes_strict_validation(variant: str) -> None:
    errors = []
    kinds = set()
    for cr in _renders(variant):
        for obj in cr.objects:
            kinds.add(obj["kind"])
            try:
                C.validate(obj)
            except Exception as e:  # noqa: BLE001 - every schema error is collected and shown
                errors.append(f"{cr.app_name}: {obj['kind']}/{obj['metadata']['name']}: {e}")
    assert not errors, "\n".join(errors[:20])
    # core kinds, CRDs and custom resources were all really checked
    assert {"Deployment", "CustomResourceDefinition", "ExternalSecret", "Application"} <= kinds


def test_strict_validation_rejects_an_unknown_field() -> None:
    cr = _by_key("default")["mlflow"]
    dep = copy.deepcopy(next(o for o in cr.objects if o["kind"] == "Deployment"))
    dep["spec"]["template"]["spec"]["containers"][0]["envFromm"] = []
    with pytest.raises(Exception, match="envFromm"):
        C.validate(dep)
    es = copy.deepcopy(next(o for o in _by_key("default")["workloads"].objects
                            if o["kind"] == "ExternalSecret"))  # fmt: skip
    es["spec"]["target"]["creationPolicyy"] = "Owner"
    with pytest.raises(Exception, match="creationPolicyy"):
        C.validate(es)


# ---------------------------------------------------------------- stable render


def _rules(cr: C.ChartRender) -> list[dict[str, Any]]:
    return list(cr.application["spec"].get("ignoreDifferences", []))


def test_a_second_render_is_identical_apart_from_ignored_paths(variant: str) -> None:
    """Argo CD re-renders on cache expiry, hard refresh or any values change: anything that
    differs then is OutOfSync, auto-synced and rolled out again."""
    drifting = {}
    for cr in _renders(variant):
        changed = drift(cr.objects, cr.template(), _rules(cr), cr.namespace)
        if changed:
            drifting[cr.app_name] = changed
    assert not drifting


def test_zenml_chart_drifts_without_its_ignore_differences() -> None:
    """The chart's non-hook Secret gets a new random JWT key per render (no `lookup` under
    Argo CD) and the Deployment's checksum/secret follows it (assembled chart: server-secret
    and server-deployment templates)."""
    cr = _by_key("default")["zenml_server"]
    second = cr.template()
    generic = [r for r in _rules(cr) if r["kind"] not in {"Secret", "Deployment"}]
    assert sorted(drift(cr.objects, second, generic, cr.namespace)) == [
        "Deployment/zenml-server",
        "Secret/zenml-server",
    ]
    assert drift(cr.objects, second, _rules(cr), cr.namespace) == []
    # and nothing else is hidden: the ignored paths are exactly the random key and its checksum
    dep = next(o for o in cr.objects if o["kind"] == "Deployment")
    kept = without_ignored(dep, _rules(cr))
    assert "checksum/secret" not in kept["spec"]["template"]["metadata"].get("annotations", {})
    assert kept["spec"]["template"]["spec"] == dep["spec"]["template"]["spec"]
    # the server never uses the chart's key: ours (from Secret Manager) takes precedence
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    jwt = env["ZENML_SERVER_JWT_SECRET_KEY"]["valueFrom"]["secretKeyRef"]
    assert jwt["name"] == C.variant("default")[0].names.k8s_secrets["zenml_jwt"]


# ---------------------------------------------------------------- MLflow auth


def _mounted_file(spec: dict[str, Any], container: dict[str, Any], path: str) -> dict[str, Any]:
    """The volume a file path in the container comes from."""
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    for m in container.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            return {"volume": vols[m["name"]], "mount": m, "key": m.get("subPath") or
                    posixpath.relpath(path, mp)}  # fmt: skip
    raise AssertionError(f"{path} is not on a mounted volume")


def _external_secret_keys(variant: str, namespace: str, name: str) -> dict[str, str]:
    """The keys (and template text) of the Secret an ExternalSecret of the stack writes."""
    for cr in _renders(variant):
        for o in cr.objects:
            if o["kind"] == "ExternalSecret" and o["metadata"].get("namespace") == namespace:
                target = o["spec"]["target"]
                if target.get("name", o["metadata"]["name"]) == name:
                    return _es_keys(o)
    raise AssertionError(f"no ExternalSecret writes {namespace}/{name}")


def _es_keys(es: dict[str, Any]) -> dict[str, str]:
    spec = es["spec"]
    fetched = {d["secretKey"]: "" for d in spec.get("data", [])}
    template = spec["target"].get("template") or {}
    rendered = dict(template.get("data") or {})
    if not rendered:
        return fetched
    # a template replaces the fetched keys unless it merges into them
    return {**fetched, **rendered} if template.get("mergePolicy") == "Merge" else rendered


def test_mlflow_keeps_users_in_mysql_over_tls_and_writes_nothing_under_root(
    variant: str, tmp_path: Path
) -> None:
    from sqlalchemy.engine import make_url

    cfg, _ = C.variant(variant)
    cr = _by_key(variant)["mlflow"]
    text = json.dumps([o for o in cr.objects if not C.is_hook(o)])
    assert "sqlite" not in text  # no user database in a file inside the pod
    dep = next(o for o in cr.objects if o["kind"] == "Deployment")
    spec = dep["spec"]["template"]["spec"]
    server = next(c for c in spec["containers"] if c["name"] == "mlflow")
    assert "--app-name=basic-auth" in server["args"]
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e.get("value") for e in server["env"]}
    ini_path = env["MLFLOW_AUTH_CONFIG_PATH"]
    src = _mounted_file(spec, server, ini_path)
    assert src["mount"].get("readOnly") is True
    secret = src["volume"]["secret"]["secretName"]
    files = _external_secret_keys(variant, cr.namespace, secret)
    ini = files[src["key"]]

    # MLflow's own reader, on the file as ESO renders it (template fields filled in)
    filled = ini
    for field, value in (("db_password", "DbPw0123"), ("admin_username", "admin"),
                         ("admin_password", "AdminPw0123")):  # fmt: skip
        filled = filled.replace("{{ ." + field + " }}", value)
    assert "{{" not in filled
    (tmp_path / "basic_auth.ini").write_text(filled)
    parser = configparser.ConfigParser()
    parser.read(tmp_path / "basic_auth.ini")
    conf = parser["mlflow"]
    assert conf["admin_username"] == "admin" and conf["admin_password"] == "AdminPw0123"
    url = make_url(conf["database_uri"])
    assert url.drivername == "mysql+pymysql"
    assert (url.username, url.password) == ("mlflow_auth", "DbPw0123")
    assert url.database == cfg.names.databases["mlflow_auth"] != cfg.names.databases["mlflow"]
    # the same Cloud SQL instance as the tracking store
    tracking = next(a for a in server["args"] if a.startswith("--backend-store-uri="))
    assert "@$(MYSQL_HOST):" in tracking
    env_cm = next(o for o in cr.objects if o["kind"] == "ConfigMap"
                  and o["metadata"]["name"].endswith("-env-configmap"))  # fmt: skip
    assert url.host == env_cm["data"]["MYSQL_HOST"]
    # TLS, verified against the Cloud SQL CA that is mounted from the stack's ConfigMap
    ca = _mounted_file(spec, server, url.query["ssl_ca"])
    cm_name = ca["volume"]["configMap"]["name"]
    # the CA is MLflow's own (workloads syncs before the database exists)
    cms = [o for o in cr.objects if o["kind"] == "ConfigMap"
           and o["metadata"]["name"] == cm_name and o["metadata"]["namespace"] == cr.namespace]  # fmt: skip
    assert cms and ca["key"] in cms[0]["data"]
    assert not [o for o in _by_key(variant)["workloads"].objects
                if o["metadata"]["name"] in (cm_name, secret)]  # fmt: skip
    assert url.query["ssl_check_hostname"] == "false"
    # before the servers, once per sync: the migration Job (tests/integration/
    # test_mlflow_auth_mysql.py runs this very script against the Cloud SQL-like MariaDB)
    from zenml_gcp_gitops import mlflow_auth

    assert not spec.get("initContainers")  # no pod migrates: two replicas never race
    (job,) = [o for o in cr.objects if o["kind"] == "Job"]
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "Sync"
    # Argo CD applies a sync's waves in order, each healthy before the next: the CA and the
    # auth ini (their own objects, not hooks), then the Job that mounts both, then the rest
    (auth_es,) = [o for o in cr.objects if o["kind"] == "ExternalSecret"
                  and o["spec"]["target"]["name"] == secret]  # fmt: skip
    wave = lambda o: int((o["metadata"].get("annotations") or {}).get(  # noqa: E731
        "argocd.argoproj.io/sync-wave", 0))  # fmt: skip
    assert not C.is_hook(cms[0]) and not C.is_hook(auth_es)
    assert max(wave(cms[0]), wave(auth_es)) < wave(job)
    assert wave(job) < min(wave(o) for o in cr.objects if o is not job
                           and o is not cms[0] and o is not auth_es)  # fmt: skip
    jspec = job["spec"]["template"]["spec"]
    (mig,) = jspec["containers"]
    assert mig["command"] == ["python", "-c", mlflow_auth.MIGRATE]
    assert mig["image"] == server["image"]
    jenv = {e["name"]: e for e in mig["env"]}
    assert jenv["MLFLOW_AUTH_CONFIG_PATH"]["value"] == ini_path
    store = make_url(jenv["MLFLOW_BACKEND_STORE_URI"]["value"])
    assert (store.host, store.port) == (env_cm["data"]["MYSQL_HOST"], 3306)
    assert store.database == env_cm["data"]["MYSQL_DATABASE"].split("?")[0]
    assert store.query == {"ssl_ca": url.query["ssl_ca"], "ssl_check_hostname": "false"}
    sref = {k: jenv[k]["valueFrom"]["secretKeyRef"] for k in ("MYSQL_USERNAME", "MYSQL_PWD")}
    assert {r["name"] for r in sref.values()} == {cfg.names.k8s_secrets["mlflow_db_password"]}
    assert _mounted_file(jspec, mig, ini_path)["volume"] == src["volume"]
    assert _mounted_file(jspec, mig, url.query["ssl_ca"])["volume"] == ca["volume"]
    assert mig["securityContext"]["readOnlyRootFilesystem"] is True
    # its pods are not the servers': no Service routes to them
    svc = next(o for o in cr.objects if o["kind"] == "Service")
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert not svc["spec"]["selector"].items() <= labels.items()


# ---------------------------------------------------------------- no ignored values

# Values the chart does not read (a change alters nothing), each with why we still pass it.
# Keys: (Application key, dotted path of the leaf; list items by index).
IGNORED_ALLOWED: dict[tuple[str, str], str] = {}

# The raw chart puts out its `resources` verbatim (checked above), so every value is used.
_VERBATIM = {"platform", "workloads", "root"}


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list) and node:
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    else:
        yield path, node


def _replaced(values: dict[str, Any], path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    out = copy.deepcopy(values)
    cur: Any = out
    for part in path[:-1]:
        cur = cur[part]
    if new is _DELETE:
        del cur[path[-1]]
    else:
        cur[path[-1]] = new
    return out


_DELETE = object()


def _changes(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return [not value, _DELETE]
    if isinstance(value, int | float):
        return [value + 1, _DELETE]
    if isinstance(value, str):
        return [value + "x" if value else "x", _DELETE]
    return ["x", _DELETE]  # empty dict/list, None


def _flat(objects: list[dict[str, Any]]) -> dict[tuple[Any, ...], Any]:
    flat = {}
    for obj in objects:
        meta = obj.get("metadata", {})
        ident = (obj.get("kind"), meta.get("name"), meta.get("namespace"))
        for path, leaf in _leaves(obj):
            flat[(*ident, *path)] = leaf
    return flat


def _differs(
    a: dict[tuple[Any, ...], Any], b: dict[tuple[Any, ...], Any], noise: set[tuple[Any, ...]]
) -> bool:
    keys = (set(a) | set(b)) - noise
    return any(a.get(k, _DELETE) != b.get(k, _DELETE) for k in keys)


def _ignored_leaves(cr: C.ChartRender, paths: list[tuple[Any, ...]]) -> list[str]:
    """Those of `paths` whose change and removal both leave the render as it was (random
    output excluded). A render that fails counts as a reaction: the chart checks the value."""
    base = _flat(cr.objects)
    again = _flat(cr.template())
    noise = {k for k in set(base) | set(again) if base.get(k, _DELETE) != again.get(k, _DELETE)}
    values = dict(_leaves(cr.values))

    def read(path: tuple[Any, ...]) -> bool:
        for new in _changes(values[path]):
            try:
                out = cr.template(_replaced(cr.values, path, new))
            except C.HelmError:
                return True
            if _differs(base, _flat(out), noise):
                return True
        return False

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(read, paths))
    return [".".join(map(str, p)) for p, ok in zip(paths, results, strict=True) if not ok]


def test_every_value_we_pass_is_read_by_the_chart() -> None:
    """Change or delete each leaf value, one at a time, and render again. Each (app, leaf)
    is checked in the first variant that passes it: the variants differ in names and
    addresses, and in blocks (ingress) that only they pass."""
    checked: dict[str, set[tuple[Any, ...]]] = {}
    ignored: dict[str, list[str]] = {}
    for name in VARIANTS:
        for cr in _renders(name):
            if cr.app_key in _VERBATIM:
                continue
            done = checked.setdefault(cr.app_key, set())
            todo = [p for p, _ in _leaves(cr.values) if p not in done]
            done.update(todo)
            if not todo:
                continue
            bad = [p for p in _ignored_leaves(cr, todo) if (cr.app_key, p) not in IGNORED_ALLOWED]
            if bad:
                ignored[f"{name}/{cr.app_key}"] = bad
    # external-secrets, cert-manager, ingress-nginx, zenml, mlflow
    assert len(checked) == 5 and all(checked.values())
    assert not ignored, f"values the charts never read: {ignored}"


# ---------------------------------------------------------------- secrets line up

# Secrets a pod mounts that no rendered object creates, and who creates them at run time.
CREATED_AT_RUNTIME: dict[tuple[str, str], str] = {
    ("ingress-nginx", "ingress-nginx-admission"): (
        "the chart's admission-create hook Job (kube-webhook-certgen) generates the webhook "
        "certificate into it before the controller starts"
    ),
}


def _provided(variant: str) -> dict[tuple[str, str, str], set[str] | None]:
    """(kind, namespace, name) -> keys, for every Secret and ConfigMap the stack makes: the
    charts' own, the ExternalSecrets' targets, our ConfigMaps. None: keys unknown (any)."""
    found: dict[tuple[str, str, str], set[str] | None] = {}
    for obj, ns in C.variant_objects(variant):
        kind = obj["kind"]
        if kind in {"Secret", "ConfigMap"}:
            keys = {*(obj.get("data") or {}), *(obj.get("stringData") or {}),
                    *(obj.get("binaryData") or {})}  # fmt: skip
            found[(kind, str(ns), obj["metadata"]["name"])] = keys
        elif kind == "ExternalSecret":
            target = obj["spec"]["target"].get("name") or obj["metadata"]["name"]
            found[("Secret", str(ns), target)] = set(_es_keys(obj))
    return found


def _references(spec: dict[str, Any]) -> Iterator[tuple[str, str, str | None, bool]]:
    """(kind, name, key or None, optional) for every Secret/ConfigMap a pod spec uses."""
    for c in _containers(spec):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {})
            for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                if field in ref:
                    r = ref[field]
                    yield kind, r["name"], r["key"], bool(r.get("optional"))
        for src in c.get("envFrom", []):
            for field, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                if field in src:
                    yield kind, src[field]["name"], None, bool(src[field].get("optional"))
    for v in spec.get("volumes", []):
        sources = [v]
        if "projected" in v:
            sources = v["projected"].get("sources", [])
        for s in sources:
            if "secret" in s:
                sec = s["secret"]
                name = sec.get("secretName") or sec.get("name")
                keys = [i["key"] for i in sec.get("items", [])] or [None]
                for k in keys:
                    yield "Secret", name, k, bool(sec.get("optional"))
            if "configMap" in s:
                cm = s["configMap"]
                keys = [i["key"] for i in cm.get("items", [])] or [None]
                for k in keys:
                    yield "ConfigMap", cm["name"], k, bool(cm.get("optional"))


def _hook_job_writes(objects: list[dict[str, Any]], secret: str) -> bool:
    """A hook Job of the same render names the Secret it creates in its arguments."""
    return any(
        f"--secret-name={secret}" in c.get("args", [])
        for o in objects
        if o["kind"] == "Job" and C.is_hook(o)
        for c in _containers(o["spec"]["template"]["spec"])
    )


def test_every_secret_and_config_map_a_pod_uses_exists_with_its_key(variant: str) -> None:
    provided = _provided(variant)
    dangling, used = [], 0
    for cr in _renders(variant):
        for owner, spec in _pod_specs(cr.objects):
            ns = C.namespace_of(owner, cr.namespace)
            for kind, name, key, optional in _references(spec):
                used += 1
                where = f"{cr.app_name}: {owner['kind']}/{owner['metadata']['name']}"
                if (ns, name) in CREATED_AT_RUNTIME:
                    assert _hook_job_writes(cr.objects, name), CREATED_AT_RUNTIME[(ns, name)]
                    continue
                keys = provided.get((kind, str(ns), name), "missing")
                if keys == "missing":
                    if not optional:
                        dangling.append(f"{where} uses {kind} {ns}/{name}, which nothing creates")
                elif key is not None and keys is not None and key not in keys and not optional:
                    dangling.append(f"{where} reads key {key!r} of {kind} {ns}/{name}: not there")
    assert used >= 10
    assert not dangling, "\n".join(dangling)


def test_a_dangling_reference_is_caught() -> None:
    cr = _by_key("default")["mlflow"]
    dep = next(o for o in cr.objects if o["kind"] == "Deployment")
    spec = copy.deepcopy(dep["spec"]["template"]["spec"])
    spec["containers"][0]["env"].append(
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "mlflow-db", "key": "nokey"}}}
    )
    refs = [r for r in _references(spec) if r[0] == "Secret" and r[1] == "mlflow-db"]
    provided = _provided("default")[("Secret", cr.namespace, "mlflow-db")]
    assert provided is not None and {"username", "password"} <= provided
    assert any(k not in provided for _, _, k, _ in refs if k)


# ---------------------------------------------------------------- pods: size and API token


def test_every_chart_container_has_cpu_and_memory_requests_and_limits(variant: str) -> None:
    """Autopilot bills requests, and a container without them gets its default size."""
    from zenml_gcp_gitops.gitops.render import POD_RESOURCES

    sizes = [{"requests": v, "limits": v} for v in POD_RESOURCES.values()]
    unsized, seen = [], 0
    for cr in _renders(variant):
        for owner, spec in _pod_specs(cr.objects):
            for c in _containers(spec):
                seen += 1
                res = c.get("resources") or {}
                if res not in sizes:
                    unsized.append(f"{cr.app_name}: {owner['metadata']['name']}/{c['name']}: {res}")
    assert seen >= 10
    assert not unsized, "\n".join(unsized)


def test_the_servers_mount_no_service_account_token(variant: str) -> None:
    """ZenML and MLflow never call the Kubernetes API: their ServiceAccount (ours) mounts no
    token, and no pod spec of theirs turns it back on. Pipeline pods keep theirs."""
    _, rendered = C.variant(variant)
    accounts = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o
        for o in rendered.objects
        if o["kind"] == "ServiceAccount"
    }
    checked = 0
    for key in ("zenml_server", "mlflow"):
        cr = _by_key(variant)[key]
        for _owner, spec in _pod_specs(cr.objects):
            sa = accounts[(cr.namespace, spec["serviceAccountName"])]
            assert sa["automountServiceAccountToken"] is False
            assert spec.get("automountServiceAccountToken") in (None, False)
            checked += 1
    assert checked >= 3  # ZenML's server and migration Job, MLflow's server
    pipelines = [a for (ns, _), a in accounts.items() if ns.endswith("pipelines")]
    assert pipelines and all("automountServiceAccountToken" not in a for a in pipelines)


def test_zenml_runs_hardened_and_writes_only_to_its_volume(variant: str) -> None:
    """ZenML's server and migration Job run like every other chart container: a UID outside
    the host's range, no escalation or capabilities, a read-only root. What ZenML writes (its
    config path, $HOME, Python's temp dir) lies on a writable volume its group may write."""
    from zenml_gcp_gitops.gitops.apps.zenml_server import ZENML_CONFIG_DIR
    from zenml_gcp_gitops.gitops.render import HIGH_UID

    cr = _by_key(variant)["zenml_server"]
    checked = 0
    for owner, spec in _pod_specs(cr.objects):
        pod = spec.get("securityContext") or {}
        assert pod.get("fsGroup") == HIGH_UID, owner["metadata"]["name"]
        for c in _containers(spec):
            sc = c.get("securityContext") or {}
            assert sc.get("runAsUser") == HIGH_UID and sc.get("runAsNonRoot") is True
            assert sc.get("runAsGroup") == HIGH_UID
            assert sc.get("allowPrivilegeEscalation") is False
            assert sc.get("readOnlyRootFilesystem") is True
            assert sc.get("capabilities", {}).get("drop") == ["ALL"]
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for path in (ZENML_CONFIG_DIR, env.get("HOME"), env.get("TMPDIR")):
                assert path, f"{c['name']}: HOME and TMPDIR must be set"
                mounts = [
                    m
                    for m in c.get("volumeMounts", [])
                    if posixpath.commonpath([m["mountPath"], path]) == m["mountPath"]
                ]
                assert mounts, f"{c['name']}: {path} is on the read-only root"
                m = max(mounts, key=lambda m: len(m["mountPath"]))
                assert not m.get("readOnly") and "emptyDir" in volumes[m["name"]], m
            checked += 1
    assert checked >= 2  # the server and the migration Job
