"""The rendered GitOps tree: schema-valid, waves that gate in the right order, no secrets."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import charts
from zenml_gcp_gitops.config import DeploymentConfig, build_config
from zenml_gcp_gitops.errors import ConfigError, UserError
from zenml_gcp_gitops.gitops import render as R
from zenml_gcp_gitops.gitops import tree as T
from zenml_gcp_gitops.gitops.apps import ha, platform
from zenml_gcp_gitops.gitops.template import substitute
from zenml_gcp_gitops.gitops.tree_files import TREE_MANIFEST
from zenml_gcp_gitops.outputs import InfraOutputs

EXAMPLE = Path(__file__).resolve().parents[2] / "argocd" / "example"

VARIANTS = {
    "gateway": {},
    "nginx": {"ingress": "nginx"},
    "gitops-repo": {
        "gitops_repo": "https://github.com/acme/ml-gitops.git",
        "gitops_path": "clusters/prod",
    },
    "nginx-repo-domain": {
        "ingress": "nginx",
        "domain": "ml.example.com",
        "gitops_repo": "git@github.com:acme/ml-gitops.git",
        "analytics": True,
    },
    "ha": {"ha": True},
}


def example_outputs(**changes: Any) -> InfraOutputs:
    data = json.loads((EXAMPLE / "outputs.json").read_text())
    data.update(changes)
    return InfraOutputs.model_validate(data)


def make_cfg(**overrides: Any) -> DeploymentConfig:
    return build_config(EXAMPLE / "config.yaml", overrides)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def rendered(request: pytest.FixtureRequest) -> tuple[DeploymentConfig, R.Rendered]:
    cfg = make_cfg(**VARIANTS[request.param])
    return cfg, R.render(cfg, example_outputs())


# ---------------------------------------------------------------- schema validation

_CRD_SCHEMAS = charts.CRD_SCHEMAS


def _check_healthcheck_policy(obj: dict[str, Any]) -> None:
    # no schema for GKE's HealthCheckPolicy among ../shared/schemas: check its shape by hand
    spec = obj["spec"]
    assert spec["targetRef"]["kind"] == "Service" and spec["targetRef"]["group"] == ""
    assert spec["default"]["config"]["type"] == "HTTP"
    assert spec["default"]["config"]["httpHealthCheck"]["requestPath"].startswith("/")
    assert set(obj["metadata"]) == {"name", "namespace", "labels"}


_NO_SCHEMA = {("networking.gke.io", "HealthCheckPolicy"): _check_healthcheck_policy}

_CORE_GROUPS = {"", "rbac.authorization.k8s.io", "networking.k8s.io", "apps", "policy"}


def _validate_crd(obj: dict[str, Any], schemas: Path) -> None:
    import jsonschema

    group = obj["apiVersion"].split("/")[0]
    rel = _CRD_SCHEMAS[(group, obj["kind"])]
    schema = json.loads((schemas / "crds" / rel).read_text())
    jsonschema.Draft7Validator(schema).validate(obj)


def _validate_core(obj: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(obj, "1.33.0", strict=True)


def test_every_object_is_schema_valid(
    rendered: tuple[DeploymentConfig, R.Rendered], shared_schemas: Path
) -> None:
    _, r = rendered
    seen_kinds = set()
    for obj in r.all_manifests():
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        seen_kinds.add(obj["kind"])
        if (group, obj["kind"]) in _CRD_SCHEMAS:
            _validate_crd(obj, shared_schemas)
        elif (group, obj["kind"]) in _NO_SCHEMA:
            _NO_SCHEMA[(group, obj["kind"])](obj)
        else:
            assert group in _CORE_GROUPS, f"{obj['kind']} has no schema to validate against"
            _validate_core(obj)
    # the schemas were really exercised
    assert {
        "Application",
        "AppProject",
        "ExternalSecret",
        "ClusterSecretStore",
        "ClusterIssuer",
    } <= seen_kinds


def test_crd_validation_catches_a_broken_object(shared_schemas: Path) -> None:
    import jsonschema

    cfg = make_cfg()
    r = R.render(cfg, example_outputs())
    bad = json.loads(json.dumps(r.app("workloads").objects[-1]))
    es = next(o for o in r.objects if o["kind"] == "ExternalSecret")
    bad = json.loads(json.dumps(es))
    bad["spec"]["secretStoreRef"]["kind"] = "NoSuchStore"
    with pytest.raises(jsonschema.ValidationError):
        _validate_crd(bad, shared_schemas)


def test_mlflow_values_match_the_chart_schema(
    rendered: tuple[DeploymentConfig, R.Rendered], shared_schemas: Path
) -> None:
    import jsonschema

    cfg, r = rendered
    assert cfg.versions.mlflow_chart == "1.11.5"  # the schema we have is for this version
    schema = json.loads(
        (shared_schemas / "chart-values" / "mlflow-1.11.5.values.schema.json").read_text()
    )
    values = r.app("mlflow").manifest["spec"]["source"]["helm"]["valuesObject"]
    jsonschema.Draft7Validator(_without_required(schema)).validate(
        _merge(_defaults(schema), values)
    )
    # basic auth through our own ini (users in MySQL), not the chart's SQLite-backed one
    assert values["auth"]["enabled"] is False
    assert values["extraArgs"]["appName"] == "basic-auth"
    assert values["extraEnvVars"]["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/mlflow/auth/basic_auth.ini"
    assert values["artifactRoot"]["proxiedArtifactStorage"] is True
    assert (
        values["backendStore"]["existingDatabaseSecret"]["name"]
        == cfg.names.k8s_secrets["mlflow_db_password"]
    )
    # TLS to Cloud SQL: MLflow mounts the CA ConfigMap its own app carries (it waits for the
    # database; workloads does not)
    assert "ssl_ca=/etc/cloudsql/server-ca.pem" in values["backendStore"]["mysql"]["database"]
    assert not [o for o in r.app("workloads").objects if o["kind"] == "ConfigMap"]
    ca = next(o for o in values["extraDeploy"] if o["kind"] == "ConfigMap")
    assert values["extraVolumes"][0]["configMap"]["name"] == ca["metadata"]["name"]
    assert ca["metadata"]["namespace"] == cfg.names.namespaces["mlflow"]
    assert ca["data"]["server-ca.pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert values["extraVolumeMounts"][0]["mountPath"] == "/etc/cloudsql"


def _without_required(schema: Any) -> Any:
    """The schema minus its `required` lists. The chart's generated schema requires every
    key because Helm validates the chart defaults merged with ours; without the chart's
    values.yaml offline, we check that every key we set exists and has the right type."""
    if isinstance(schema, dict):
        return {
            # conditions (not/if/oneOf...) keep theirs: they express rules such as
            # "auth and ldapAuth are not both enabled"
            k: v if k in _LOGIC else _without_required(v)
            for k, v in schema.items()
            if k != "required"
        }
    if isinstance(schema, list):
        return [_without_required(v) for v in schema]
    return schema


_LOGIC = {"not", "if", "then", "else", "oneOf", "anyOf", "allOf"}


def _defaults(schema: dict[str, Any]) -> Any:
    """The chart defaults as the schema records them (stand-in for its values.yaml)."""
    if "properties" in schema:
        out = {k: _defaults(v) for k, v in schema["properties"].items()}
        return {k: v for k, v in out.items() if v is not None}
    default = schema.get("default")
    if schema.get("type") == "boolean" and isinstance(default, str):
        return default == "true"  # a few generated defaults are quoted ("false")
    return default


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in over.items()}}
    return over


def test_mlflow_schema_check_catches_wrong_values(shared_schemas: Path) -> None:
    import jsonschema

    schema = json.loads(
        (shared_schemas / "chart-values" / "mlflow-1.11.5.values.schema.json").read_text()
    )
    v = jsonschema.Draft7Validator(_without_required(schema))
    base = _defaults(schema)
    v.validate(_merge(base, {"auth": {"enabled": True}}))
    with pytest.raises(jsonschema.ValidationError):
        v.validate(_merge(base, {"auth": {"enabled": "yes"}}))  # wrong type
    with pytest.raises(jsonschema.ValidationError):
        v.validate(_merge(base, {"backendStore": {"mysql": {"sslMode": "on"}}}))  # unknown key
    with pytest.raises(jsonschema.ValidationError):
        v.validate(_merge(base, {"auth": {"enabled": True}, "ldapAuth": {"enabled": True}}))


# ---------------------------------------------------------------- waves and dependencies


def _wave(app: R.ChildApp) -> int:
    return int(app.manifest["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])


_CRD_PROVIDERS = {
    "external-secrets.io": "external_secrets",
    "cert-manager.io": "cert_manager",
}


def test_declared_prerequisites_are_in_earlier_waves(
    rendered: tuple[DeploymentConfig, R.Rendered],
) -> None:
    _, r = rendered
    by_key = {a.key: a for a in r.apps}
    for app in r.apps:
        assert _wave(app) == app.wave
        for req in app.requires:
            assert _wave(by_key[req]) < _wave(app), f"{app.key} needs {req} in an earlier wave"


def test_objects_depend_only_on_earlier_waves(
    rendered: tuple[DeploymentConfig, R.Rendered],
) -> None:
    """Derived from content: CRD kinds, Secrets, ServiceAccounts and namespaces used."""
    cfg, r = rendered
    by_key = {a.key: a for a in r.apps}
    provided_secret: dict[tuple[str, str], int] = {}
    provided_sa: dict[tuple[str, str], int] = {}
    for app in r.apps:
        for obj in app.objects:
            if obj["kind"] == "ExternalSecret":
                provided_secret[(obj["metadata"]["namespace"], obj["spec"]["target"]["name"])] = (
                    app.wave
                )
            if obj["kind"] == "ServiceAccount":
                provided_sa[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = app.wave
    # CRD kinds come from an operator in an earlier wave
    for app in r.apps:
        for obj in app.objects:
            group = obj["apiVersion"].split("/")[0]
            if group in _CRD_PROVIDERS:
                assert by_key[_CRD_PROVIDERS[group]].wave < app.wave, f"{obj['kind']} in {app.key}"
    # the charts' Secrets and ServiceAccounts exist in an earlier wave
    zenml = by_key["zenml_server"]
    zv = zenml.manifest["spec"]["source"]["helm"]["valuesObject"]
    zns = cfg.names.namespaces["zenml"]
    refs = [zv["zenml"]["database"]["passwordSecretRef"]["name"]]
    refs += [e["secretName"] for e in zv["zenml"]["environmentSecretKeyRefs"]]
    for name in refs:
        assert provided_secret[(zns, name)] < zenml.wave
    assert provided_sa[(zns, zv["serviceAccount"]["name"])] < zenml.wave
    mlflow = by_key["mlflow"]
    mv = mlflow.manifest["spec"]["source"]["helm"]["valuesObject"]
    mns = cfg.names.namespaces["mlflow"]
    # or in the app itself (what carries the database's outputs), in a sync wave before the
    # migration Job's, the first that mounts them (the chart's pods are in wave 0)
    inner = lambda o: int(o["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])  # noqa: E731
    job = next(o for o in mv["extraDeploy"] if o["kind"] == "Job")
    own = {
        (o["metadata"]["namespace"], o["spec"]["target"]["name"]): inner(o)
        for o in mv["extraDeploy"]
        if o["kind"] == "ExternalSecret"
    }
    assert own and inner(job) < 0
    for name in (
        mv["backendStore"]["existingDatabaseSecret"]["name"],
        *(v["secret"]["secretName"] for v in mv["extraVolumes"] if "secret" in v),
        *mv["extraSecretNamesForEnvFrom"],
    ):
        if (mns, name) in own:
            assert own[(mns, name)] < inner(job)
        else:
            assert provided_secret[(mns, name)] < mlflow.wave
    assert provided_sa[(mns, mv["serviceAccount"]["name"])] < mlflow.wave
    # the ClusterIssuers the ingress annotations / Certificates use exist in an earlier or same app
    issuers = {
        o["metadata"]["name"]: a.wave
        for a in r.apps
        for o in a.objects
        if o["kind"] == "ClusterIssuer"
    }
    if cfg.ingress == "nginx":
        # the same wave will do: cert-manager issues an Ingress's certificate once its
        # issuer exists (the server itself does not wait for it)
        issuer = zv["zenml"]["ingress"]["annotations"]["cert-manager.io/cluster-issuer"]
        assert issuers[issuer] <= zenml.wave
        assert by_key["ingress_nginx"].wave < zenml.wave


def test_wave_order_is_the_documented_one(rendered: tuple[DeploymentConfig, R.Rendered]) -> None:
    cfg, r = rendered
    w = {a.key: a.wave for a in r.apps}
    operators = [w["external_secrets"], w["cert_manager"]] + (
        [w["ingress_nginx"]] if cfg.ingress == "nginx" else []
    )
    assert max(operators) < w["workloads"] < w["platform"] == w["zenml_server"] == w["mlflow"]
    assert ("ingress_nginx" in w) == (cfg.ingress == "nginx")


def test_each_app_syncs_in_the_first_wave_its_requirements_allow_but_the_platform(
    rendered: tuple[DeploymentConfig, R.Rendered],
) -> None:
    """No wave waits for more than it needs: apps that do not depend on each other (ZenML
    and MLflow) share a wave, and an app starts right after the last app it requires. The
    platform is the exception: it shares the servers' wave, so that they do not wait for its
    load balancer and certificates (test_estimate_graph checks no layout is faster)."""
    _, r = rendered
    by_key = {a.key: a for a in r.apps}
    for app in r.apps:
        earliest = 1 + max((by_key[q].wave for q in app.requires), default=-1)
        if app.key == "platform":
            assert app.wave == r.app("zenml_server").wave > earliest
            continue
        assert app.wave == earliest, f"{app.key} waits in wave {app.wave}, could sync in {earliest}"
    assert r.app("zenml_server").wave == r.app("mlflow").wave


def test_children_sync_automatically_with_retry_and_cascade(
    rendered: tuple[DeploymentConfig, R.Rendered],
) -> None:
    _, r = rendered
    for app in r.apps:
        spec = app.manifest["spec"]
        assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        assert spec["syncPolicy"]["retry"]["backoff"]["factor"] >= 2
        assert app.manifest["metadata"]["finalizers"] == [
            "resources-finalizer.argocd.argoproj.io/foreground"
        ]
        assert spec["project"] == r.project["metadata"]["name"]
    big_crds = [r.app("external_secrets"), r.app("cert_manager")]
    assert all(
        "ServerSideApply=true" in a.manifest["spec"]["syncPolicy"]["syncOptions"] for a in big_crds
    )


# ---------------------------------------------------------------- project, root, health check


def test_project_is_least_privilege(rendered: tuple[DeploymentConfig, R.Rendered]) -> None:
    cfg, r = rendered
    spec = r.project["spec"]
    used = {a.manifest["spec"]["source"]["repoURL"] for a in r.apps} | {
        r.root["spec"]["source"]["repoURL"]
    }
    assert set(spec["sourceRepos"]) == used
    assert "*" not in spec["sourceRepos"]
    assert all(
        d["namespace"] != "*" and d["server"] == "https://kubernetes.default.svc"
        for d in spec["destinations"]
    )
    dest_ns = {d["namespace"] for d in spec["destinations"]}
    for app in r.apps:
        assert app.manifest["spec"]["destination"]["namespace"] in dest_ns
        for obj in app.objects:
            ns = obj["metadata"].get("namespace")
            assert ns is None or ns in dest_ns
    cluster_kinds = {(c["group"], c["kind"]) for c in spec["clusterResourceWhitelist"]}
    assert all(c["kind"] != "*" and c["group"] != "*" for c in spec["clusterResourceWhitelist"])
    for app in r.apps:
        for obj in app.objects:
            if "namespace" not in obj["metadata"]:
                group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
                assert (group, obj["kind"]) in cluster_kinds
    assert (("networking.k8s.io", "IngressClass") in cluster_kinds) == (cfg.ingress == "nginx")


def test_root_source_follows_the_gitops_repo(rendered: tuple[DeploymentConfig, R.Rendered]) -> None:
    cfg, r = rendered
    src = r.root["spec"]["source"]
    if cfg.gitops_repo:
        assert src == {
            "repoURL": cfg.gitops_repo,
            "targetRevision": cfg.gitops_revision,
            "path": f"{cfg.gitops_path}/apps",
        }
        assert r.app("platform").manifest["spec"]["source"]["path"] == f"{cfg.gitops_path}/platform"
    else:
        assert src["chart"] == R.RAW_CHART["chart"]
        assert src["helm"]["valuesObject"]["resources"] == [a.manifest for a in r.apps]
        assert (
            r.app("workloads").manifest["spec"]["source"]["helm"]["valuesObject"]["resources"]
            == r.app("workloads").objects
        )


def test_argocd_cm_carries_the_application_health_check() -> None:
    r = R.render(make_cfg(), example_outputs())
    lua = r.argocd_cm["data"]["resource.customizations.health.argoproj.io_Application"]
    assert "comparedTo" in lua and "Synced" in lua and "Missing" in lua
    assert r.argocd_cm["metadata"]["name"] == "argocd-cm"
    assert r.argocd_cm["data"]["users.anonymous.enabled"] == "false"


def test_argocd_is_not_exposed() -> None:
    """Nothing we render makes Argo CD public (the upstream server Service is ClusterIP)."""
    r = R.render(make_cfg(), example_outputs())
    for obj in r.all_manifests():
        if obj["kind"] in ("Service", "Ingress", "HTTPRoute"):
            assert obj["metadata"].get("namespace") != "argocd"


# ---------------------------------------------------------------- values wired from outputs


def test_values_come_from_outputs_and_config() -> None:
    out = example_outputs(sql_private_ip="10.9.8.7", ingress_ip="203.0.113.77")
    cfg = make_cfg(ingress="nginx", analytics=True)
    r = R.render(cfg, out)
    zv = r.app("zenml_server").manifest["spec"]["source"]["helm"]["valuesObject"]["zenml"]
    assert zv["database"]["url"] == "mysql://zenml@10.9.8.7:3306/zenml"
    assert zv["debug"] is False and zv["analyticsOptIn"] is True
    assert zv["secretsStore"] == {
        "enabled": True,
        "type": "gcp",
        "gcp": {"authMethod": "implicit", "authConfig": {"project_id": "acme-ml-prod"}},
    }
    assert zv["enableImplicitAuthMethods"] is True
    assert zv["environment"]["ZENML_STORE_SSL_CA"] == out.sql_server_ca_cert
    assert (
        r.app("zenml_server").manifest["spec"]["source"]["targetRevision"]
        == cfg.versions.zenml_chart
    )
    nginx = r.app("ingress_nginx").manifest["spec"]["source"]["helm"]["valuesObject"]
    assert nginx["controller"]["service"]["loadBalancerIP"] == "203.0.113.77"
    sas = {
        o["metadata"]["name"]: o
        for o in r.app("workloads").objects
        if o["kind"] == "ServiceAccount"
    }
    assert (
        sas["zenml-server"]["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        == out.service_accounts["zenml_server"]
    )
    assert (
        sas["mlflow"]["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        == out.service_accounts["mlflow"]
    )


def _values(r: R.Rendered, key: str) -> dict[str, Any]:
    return dict(r.app(key).manifest["spec"]["source"]["helm"]["valuesObject"])


def test_ha_runs_two_zenml_replicas_spread_over_zones_with_a_disruption_budget() -> None:
    cfg = make_cfg(ha=True)
    r = R.render(cfg, example_outputs())
    zv = _values(r, "zenml_server")
    assert zv["zenml"]["replicaCount"] == 2
    term = zv["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "topology.kubernetes.io/zone"
    selector = ha.server_selectors(cfg)["zenml"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    pdbs = [o for o in r.app("workloads").objects if o["kind"] == "PodDisruptionBudget"]
    by_ns = {p["metadata"]["namespace"]: p["spec"] for p in pdbs}
    assert by_ns["zenml"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    # the migration Job's pods carry the chart's selector labels but not component=server
    assert selector["app.kubernetes.io/component"] == "server"
    mv = _values(r, "mlflow")
    if ha.mlflow_can_scale(cfg):
        assert mv["replicaCount"] == 2 and "mlflow" in by_ns
    else:  # MLflow's users still live in each pod's SQLite file: one replica, no budget
        assert mv["replicaCount"] == 1 and "affinity" not in mv and "mlflow" not in by_ns


def test_without_ha_there_is_one_replica_each_and_no_budget() -> None:
    r = R.render(make_cfg(), example_outputs())
    assert _values(r, "zenml_server")["zenml"]["replicaCount"] == 1
    assert "affinity" not in _values(r, "zenml_server")
    assert _values(r, "mlflow")["replicaCount"] == 1
    assert not [o for o in r.app("workloads").objects if o["kind"] == "PodDisruptionBudget"]


def test_ha_refuses_a_zonal_database_and_makes_it_regional() -> None:
    with pytest.raises(ConfigError, match="ha needs a REGIONAL Cloud SQL instance"):
        make_cfg(ha=True, sql_availability="ZONAL")
    assert make_cfg(ha=True).sql_availability_effective == "REGIONAL"
    assert make_cfg().sql_availability_effective == make_cfg().sql_availability


def test_one_external_secret_per_secret_with_ids_from_outputs() -> None:
    out = example_outputs()
    r = R.render(make_cfg(), out)
    mlflow = r.app("mlflow").manifest["spec"]["source"]["helm"]["valuesObject"]["extraDeploy"]
    es = [o for o in [*r.objects, *mlflow] if o["kind"] == "ExternalSecret"]
    used_ids = {d["remoteRef"]["key"] for o in es for d in o["spec"]["data"]}
    cluster_keys = [
        "zenml_db_password",
        "mlflow_db_password",
        "zenml_admin",
        "zenml_jwt",
        "mlflow_auth",
        "mlflow_auth_db_password",
        "mlflow_flask",
    ]
    assert used_ids == {out.secret_ids[k] for k in cluster_keys}
    # the MLflow auth config combines the admin account and its database password
    assert len(es) == len(cluster_keys) - 1
    admin = next(o for o in es if o["metadata"]["name"] == "zenml-admin")
    assert {d["remoteRef"]["property"] for d in admin["spec"]["data"]} == {"username", "password"}


def test_gateway_uses_the_reserved_address_and_hosts() -> None:
    out = example_outputs()
    cfg = make_cfg()
    r = R.render(cfg, out)
    gw = next(o for o in r.objects if o["kind"] == "Gateway")
    assert gw["spec"]["addresses"] == [{"type": "NamedAddress", "value": cfg.names.ingress_ip}]
    hosts = {lst.get("hostname") for lst in gw["spec"]["listeners"]}
    assert {out.zenml_host, out.mlflow_host} <= hosts
    certs = {o["spec"]["dnsNames"][0] for o in r.objects if o["kind"] == "Certificate"}
    assert certs == {out.zenml_host, out.mlflow_host}
    issuers = [o for o in r.objects if o["kind"] == "ClusterIssuer"]
    assert {i["spec"]["acme"]["server"] for i in issuers} == set(platform.LETSENCRYPT.values())
    assert all("gatewayHTTPRoute" in i["spec"]["acme"]["solvers"][0]["http01"] for i in issuers)


def test_missing_secret_id_is_a_clear_error() -> None:
    out = example_outputs()
    ids = dict(out.secret_ids)
    ids.pop("zenml_jwt")
    with pytest.raises(ConfigError, match="zenml_jwt"):
        R.render(make_cfg(), example_outputs(secret_ids=ids))


def test_unsupported_argocd_version_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=re.escape("v3.0.0")):
        R.render(make_cfg(versions={"argocd": "v3.0.0"}), example_outputs())


# ---------------------------------------------------------------- substitution engine


def test_substitution_never_changes_structure() -> None:
    evil = "x\nkind: Secret\n---\nfoo: ${bar}"
    out = substitute({"a": "${v}", "b": "pre-${v}-post", "c": ["${n}"]}, {"v": evil, "n": 3})
    assert out == {"a": evil, "b": f"pre-{evil}-post", "c": [3]}
    assert substitute({"keep": 1, "drop": "${none}"}, {"none": None}) == {"keep": 1}
    with pytest.raises(ConfigError, match="unknown placeholder"):
        substitute({"a": "${missing}"}, {})
    with pytest.raises(ConfigError, match="not text"):
        substitute({"a": "x-${m}"}, {"m": {"k": 1}})


# ---------------------------------------------------------------- no secret values anywhere


def test_no_secret_value_is_ever_rendered(tmp_path: Path) -> None:
    """Generate secret values, make them reachable the way a careless template could (outputs
    with a service-account key, env), render everything, and search all text for them."""
    values = {k: secrets.token_urlsafe(24) for k in ("db", "admin", "jwt", "flask", "sa_key")}
    out = example_outputs(pipelines_sa_key=json.dumps({"private_key": values["sa_key"]}))
    for name, overrides in VARIANTS.items():
        cfg = make_cfg(**overrides, connector_auth="service-account")
        ids = dict(out.secret_ids, pipelines_sa_key=f"zenml-pipelines-key-{name}")
        r = R.render(cfg, out.model_copy(update={"secret_ids": ids}))
        texts = [json.dumps(R.argocd_plan(cfg, out.model_copy(update={"secret_ids": ids})))]
        T.write_tree(r, tmp_path / name)
        texts += [p.read_text() for p in (tmp_path / name).rglob("*") if p.is_file()]
        blob = "\n".join(texts)
        for v in values.values():
            assert v not in blob
        # every Secret we render is a repository declaration without credentials
        for obj in r.objects:
            if obj["kind"] == "Secret":
                assert set(obj["stringData"]) <= {"name", "type", "url", "enableOCI"}
                assert not re.search(r"//[^/@]+@", obj["stringData"]["url"])


# ---------------------------------------------------------------- render --out tree


def test_tree_layout_and_roundtrip(tmp_path: Path) -> None:
    cfg = make_cfg(gitops_repo="https://github.com/acme/ml-gitops.git", gitops_path="gitops")
    r = R.render(cfg, example_outputs())
    T.write_tree(r, tmp_path)
    apps = sorted(p.name for p in (tmp_path / "apps").glob("*.yaml"))
    assert apps == sorted(f"{a.name}.yaml" for a in r.apps)
    for app in r.apps:
        if app.objects:
            folder = tmp_path / app.manifest["spec"]["source"]["path"].removeprefix("gitops/")
            docs = [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))]
            assert sorted(map(json.dumps, docs)) == sorted(map(json.dumps, app.objects))
    assert yaml.safe_load((tmp_path / "bootstrap" / "root.yaml").read_text()) == r.root
    # a user's file in a rendered folder is no business of render's
    (tmp_path / "apps" / "old-app.yaml").write_text("x: 1\n")
    T.write_tree(r, tmp_path)
    assert (tmp_path / "apps" / "old-app.yaml").read_text() == "x: 1\n"


def test_argocd_plan_contract_shape() -> None:
    cfg = make_cfg()
    plan = R.argocd_plan(cfg, example_outputs())
    assert set(plan) == {"version", "install", "project", "root", "applications", "objects"}
    assert plan["version"] == cfg.versions.argocd
    assert set(plan["install"]) == {"manifest_url", "sha256", "argocd_cm"}
    assert re.fullmatch(r"[0-9a-f]{64}", plan["install"]["sha256"])
    assert cfg.versions.argocd in plan["install"]["manifest_url"]
    assert all(a["kind"] == "Application" for a in plan["applications"])
    assert all(o["kind"] != "Application" for o in plan["objects"])
    json.dumps(plan)  # plain JSON data


def test_private_gitops_repo_credentials_come_from_eso(shared_schemas: Path) -> None:
    out = example_outputs()
    ids = dict(out.secret_ids, gitops_repo="zenml-gitops-repo-token")
    cfg = make_cfg(gitops_repo="https://github.com/acme/private-gitops.git")
    r = R.render(cfg, out.model_copy(update={"secret_ids": ids}))
    repo_secret = cfg.names.argocd_repo_secrets["gitops"]
    assert repo_secret not in {o["metadata"]["name"] for o in r.bootstrap}
    es = next(
        o
        for o in r.objects
        if o["kind"] == "ExternalSecret" and o["metadata"]["name"] == repo_secret
    )
    assert es["metadata"]["namespace"] == cfg.names.namespaces["argocd"]
    assert es["spec"]["target"]["template"]["metadata"]["labels"] == {
        "argocd.argoproj.io/secret-type": "repository"
    }
    assert {d["remoteRef"]["property"] for d in es["spec"]["data"]} == {"username", "password"}
    _validate_crd(es, shared_schemas)
    # it cannot live in the repo it unlocks: the bootstrap applies it before the root app
    assert all(es not in a.objects for a in r.apps)
    assert [o["kind"] for o in r.before_root] == [
        "Application",
        "ClusterSecretStore",
        "ExternalSecret",
    ]
    assert r.before_root[0]["metadata"]["name"] == cfg.names.argocd_apps["external_secrets"]
    assert f"bootstrap/externalsecret-{repo_secret}.argocd.yaml" in T.tree(r)
    store = next(o for o in r.objects if o["kind"] == "ClusterSecretStore")
    assert cfg.names.namespaces["argocd"] in store["spec"]["conditions"][0]["namespaces"]


def test_gateway_backends_are_probed_on_their_health_endpoints() -> None:
    r = R.render(make_cfg(), example_outputs())
    routes = {
        o["spec"]["rules"][0]["backendRefs"][0]["name"]: o
        for o in r.objects
        if o["kind"] == "HTTPRoute" and o["spec"]["rules"][0].get("backendRefs")
    }
    policies = {
        o["spec"]["targetRef"]["name"]: o for o in r.objects if o["kind"] == "HealthCheckPolicy"
    }
    assert set(policies) == set(routes) == {"zenml-server", "mlflow"}
    for name, policy in policies.items():
        assert policy["metadata"]["namespace"] == routes[name]["metadata"]["namespace"]
    assert not [
        o
        for o in R.render(make_cfg(ingress="nginx"), example_outputs()).objects
        if o["kind"] == "HealthCheckPolicy"
    ]


@pytest.mark.parametrize("auth", ["implicit", "service-account"])
def test_pipeline_pods_can_be_started_by_the_connector_identity_and_ci(auth: str) -> None:
    """The kubernetes orchestrator's client reaches GKE as the connector's Google identity;
    without a RoleBinding for it (a `User` named by email) pipelines cannot start."""
    sas = dict(example_outputs().service_accounts)
    sas["ci"] = "zenml-ci@acme-ml-prod.iam.gserviceaccount.com"
    cfg = make_cfg(connector_auth=auth, github_repo="acme/ml-pipelines")
    objs = R.render(cfg, example_outputs(service_accounts=sas)).objects
    (binding,) = [o for o in objs if o["kind"] == "RoleBinding"]
    users = {s["name"] for s in binding["subjects"] if s["kind"] == "User"}
    connector = "zenml_server" if auth == "implicit" else "pipelines"
    assert users == {sas[connector], sas["ci"]}
    ksas = [s for s in binding["subjects"] if s["kind"] == "ServiceAccount"]
    assert ksas == [
        {
            "kind": "ServiceAccount",
            "name": cfg.names.ksas["pipelines"],
            "namespace": cfg.names.namespaces["pipelines"],
        }
    ]
    assert binding["metadata"]["namespace"] == cfg.names.namespaces["pipelines"]


# ---------------------------------------------------------------- render --out ownership

REPO = "https://github.com/acme/ml-gitops.git"


def _private(out: InfraOutputs) -> InfraOutputs:
    return out.model_copy(update={"secret_ids": dict(out.secret_ids, gitops_repo="acme-repo")})


def test_render_into_a_folder_with_user_files_keeps_them(tmp_path: Path) -> None:
    cfg = make_cfg(gitops_repo=REPO)
    mine = {
        "README.md": "# our GitOps repo\n",
        "apps/team-app.yaml": "kind: Application\n",
        "platform/extra.yaml": "kind: ConfigMap\n",
        "notes.txt": "keep\n",
    }
    for rel, text in mine.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    # the README is in the way: nothing is written, the command stops and says why
    with pytest.raises(UserError, match=r"README\.md \(not written by render\)") as e:
        T.write_tree(R.render(cfg, example_outputs()), tmp_path)
    assert "--force" in (e.value.hint or "")
    assert not (tmp_path / "bootstrap").exists()
    (tmp_path / "README.md").unlink()
    T.write_tree(R.render(cfg, example_outputs()), tmp_path)
    mine.pop("README.md")
    for rel, text in mine.items():
        assert (tmp_path / rel).read_text() == text
    assert TREE_MANIFEST in {p.name for p in tmp_path.iterdir()}


def test_render_removes_only_its_own_unchanged_stale_files(tmp_path: Path) -> None:
    cfg = make_cfg(gitops_repo=REPO)
    out = example_outputs()
    first = T.write_tree(R.render(cfg, _private(out)), tmp_path)
    stale = [
        p for p in first.written if p.parent.name == "bootstrap" and "externalsecret" in p.name
    ]
    assert stale
    # the repo turns public: the credentials ExternalSecret is no longer rendered
    second = T.write_tree(R.render(cfg, out), tmp_path)
    assert second.removed == stale and not stale[0].exists()
    # an owned file the user edited is neither overwritten nor, once stale, deleted
    T.write_tree(R.render(cfg, _private(out)), tmp_path)
    stale[0].write_text(stale[0].read_text() + "# reviewed\n")
    third = T.write_tree(R.render(cfg, out), tmp_path)
    assert third.kept == stale and stale[0].read_text().endswith("# reviewed\n")
    root = tmp_path / "bootstrap" / "root.yaml"
    root.write_text(root.read_text() + "# local edit\n")
    with pytest.raises(UserError, match=r"root\.yaml \(changed since render wrote it\)"):
        T.write_tree(R.render(cfg, out), tmp_path)
    T.write_tree(R.render(cfg, out), tmp_path, force=True)
    assert "# local edit" not in root.read_text()


def test_render_never_writes_through_a_symlink(tmp_path: Path) -> None:
    cfg = make_cfg(gitops_repo=REPO)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "precious.md"
    target.write_text("precious\n")
    out_dir = tmp_path / "tree"
    out_dir.mkdir()
    (out_dir / "README.md").symlink_to(target)
    with pytest.raises(UserError, match="a symlink"):
        T.write_tree(R.render(cfg, example_outputs()), out_dir)
    T.write_tree(R.render(cfg, example_outputs()), out_dir, force=True)
    assert target.read_text() == "precious\n"  # the link was replaced, not followed
    assert not (out_dir / "README.md").is_symlink()
    # a linked folder on the way is refused even with --force
    (out_dir / "apps").rename(out_dir / "apps-real")
    (out_dir / "apps").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UserError, match="symlinked folders"):
        T.write_tree(R.render(cfg, example_outputs()), out_dir, force=True)
    assert sorted(p.name for p in outside.iterdir()) == ["precious.md"]
