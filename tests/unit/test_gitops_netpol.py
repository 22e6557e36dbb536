"""The rendered NetworkPolicies, evaluated: who may connect to whom.

A small evaluator of NetworkPolicy semantics (pod selectors, namespace selectors, ipBlocks
with exceptions, ports, policy types) runs the rendered policies over a matrix of source ->
destination connections and checks every allowed and every denied pair. A connection goes
through when the source's egress and the destination's ingress both admit it; a pod no policy
selects for a direction is open in that direction.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from zenml_gcp_gitops.config import PROXY_CIDR, build_config
from zenml_gcp_gitops.gitops import render as R
from zenml_gcp_gitops.gitops.apps import ha
from zenml_gcp_gitops.outputs import InfraOutputs

EXAMPLE = Path(__file__).resolve().parents[2] / "argocd" / "example"
CHARTS = ("zenml-0.98.0-assembled", "mlflow-1.11.5", "ingress-nginx-4.13.3")


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace + labels) or an address outside the cluster (namespace None)."""

    ip: str
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _ns_labels(ns: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": ns}  # set by the API server on every namespace


def _peer_matches(peer: dict[str, Any], other: Endpoint, policy_ns: str) -> bool:
    if "ipBlock" in peer:
        ip = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        if ip not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(ip in ipaddress.ip_network(x) for x in block.get("except", []))
    if other.namespace is None:  # selectors only ever match pods
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], _ns_labels(other.namespace)):
            return False
    elif other.namespace != policy_ns:  # a bare podSelector means the policy's namespace
        return False
    return _selects(peer.get("podSelector", {}), other.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, proto: str) -> bool:
    if not ports:
        return True
    return any(p.get("protocol", "TCP") == proto and p.get("port") in (None, port) for p in ports)


def _admits(
    policies: list[dict[str, Any]], pod: Endpoint, other: Endpoint, port: int, proto: str, d: str
) -> bool:
    """Does `pod` admit `other` in direction d ("Ingress": other -> pod, "Egress": pod -> other)."""
    if pod.namespace is None:
        return True  # outside the cluster: no policy applies
    side, peers_key = ("ingress", "from") if d == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and d in p["spec"].get("policyTypes", ["Ingress"])
        and _selects(p["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True
    for p in selecting:
        for rule in p["spec"].get(side) or []:
            peers = rule.get(peers_key)
            peer_ok = not peers or any(
                _peer_matches(x, other, p["metadata"]["namespace"]) for x in peers
            )
            if peer_ok and _port_matches(rule.get("ports"), port, proto):
                return True
    return False


def allowed(
    policies: list[dict[str, Any]], src: Endpoint, dst: Endpoint, port: int, proto: str = "TCP"
) -> bool:
    return _admits(policies, src, dst, port, proto, "Egress") and _admits(
        policies, dst, src, port, proto, "Ingress"
    )


# ---------------------------------------------------------------- the cluster


def _outputs() -> InfraOutputs:
    return InfraOutputs.model_validate(json.loads((EXAMPLE / "outputs.json").read_text()))


def _policies(ingress: str) -> list[dict[str, Any]]:
    cfg = build_config(EXAMPLE / "config.yaml", {"ingress": ingress})
    return [o for o in R.render(cfg, _outputs()).objects if o["kind"] == "NetworkPolicy"]


SQL_IP = _outputs().sql_private_ip
ZENML = Endpoint(
    "10.16.0.10",
    "zenml",
    {
        "app.kubernetes.io/name": "zenml",
        "app.kubernetes.io/instance": "zenml-server",
        "app.kubernetes.io/component": "server",
    },
)
MLFLOW = Endpoint(
    "10.16.0.11",
    "mlflow",
    {"app": "mlflow", "app.kubernetes.io/name": "mlflow", "app.kubernetes.io/instance": "mlflow"},
)
STEP = Endpoint("10.16.0.12", "zenml-pipelines", {"zenml-run-id": "abc", "zenml-step": "train"})
ORCHESTRATOR = Endpoint("10.16.0.13", "zenml-pipelines", {"zenml-orchestrator": "true"})
ROGUE = Endpoint("10.16.0.14", "default", {"app": "anything"})
ZENML_NEIGHBOUR = Endpoint("10.16.0.15", "zenml", {"app": "debug-shell"})
NGINX = Endpoint(
    "10.16.0.16",
    "ingress-nginx",
    {
        "app.kubernetes.io/name": "ingress-nginx",
        "app.kubernetes.io/instance": "ingress-nginx",
        "app.kubernetes.io/component": "controller",
    },
)
NGINX_OTHER = Endpoint(
    "10.16.0.17", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx-admission"}
)
SOLVER = Endpoint("10.16.0.18", "zenml", {"acme.cert-manager.io/http01-solver": "true"})
GATEWAY_NS_POD = Endpoint("10.16.0.19", "gateway", {"app": "acme-solver"})
KUBE_DNS = Endpoint("10.16.0.2", "kube-system", {"k8s-app": "kube-dns"})
GW_PROXY = Endpoint(str(next(ipaddress.ip_network(PROXY_CIDR).hosts())))
HEALTH_CHECK = Endpoint("35.191.10.20")
HEALTH_CHECK_2 = Endpoint("130.211.1.2")
INTERNET = Endpoint("198.51.100.7")
SQL = Endpoint(SQL_IP)
GOOGLE_API = Endpoint("142.250.74.10")
METADATA = Endpoint("169.254.169.254")
METADATA_DPV2 = Endpoint("169.254.169.252")
NODE = Endpoint("10.10.0.5")

# (source, destination, port, protocol) -> allowed, for either ingress choice
COMMON: list[tuple[str, Endpoint, Endpoint, int, str, bool]] = [
    # pipeline pods reach both servers
    ("step -> zenml", STEP, ZENML, 8080, "TCP", True),
    ("step -> mlflow", STEP, MLFLOW, 5000, "TCP", True),
    ("orchestrator -> zenml", ORCHESTRATOR, ZENML, 8080, "TCP", True),
    ("orchestrator -> mlflow", ORCHESTRATOR, MLFLOW, 5000, "TCP", True),
    ("step -> zenml other port", STEP, ZENML, 9000, "TCP", False),
    # pipeline pods' own egress is open (user code), their ingress is closed
    ("step -> internet", STEP, INTERNET, 443, "TCP", True),
    ("step -> google api", STEP, GOOGLE_API, 443, "TCP", True),
    ("step -> step", ORCHESTRATOR, STEP, 8000, "TCP", False),
    ("rogue -> step", ROGUE, STEP, 8000, "TCP", False),
    # anything else in the cluster is kept out of the servers
    ("rogue -> zenml", ROGUE, ZENML, 8080, "TCP", False),
    ("rogue -> mlflow", ROGUE, MLFLOW, 5000, "TCP", False),
    ("zenml neighbour -> zenml", ZENML_NEIGHBOUR, ZENML, 8080, "TCP", False),
    ("zenml -> mlflow", ZENML, MLFLOW, 5000, "TCP", False),
    ("mlflow -> zenml", MLFLOW, ZENML, 8080, "TCP", False),
    ("internet -> zenml pod", INTERNET, ZENML, 8080, "TCP", False),
    ("node -> mlflow pod", NODE, MLFLOW, 5000, "TCP", False),
    # the servers reach DNS, their database, the metadata server and Google APIs only
    ("zenml -> dns udp", ZENML, KUBE_DNS, 53, "UDP", True),
    ("zenml -> dns tcp", ZENML, KUBE_DNS, 53, "TCP", True),
    ("mlflow -> dns", MLFLOW, KUBE_DNS, 53, "UDP", True),
    ("zenml -> cloud sql", ZENML, SQL, 3306, "TCP", True),
    ("mlflow -> cloud sql", MLFLOW, SQL, 3306, "TCP", True),
    ("zenml -> cloud sql other port", ZENML, SQL, 22, "TCP", False),
    ("zenml -> metadata", ZENML, METADATA, 80, "TCP", True),
    ("mlflow -> metadata (dpv2)", MLFLOW, METADATA_DPV2, 988, "TCP", True),
    ("zenml -> google api", ZENML, GOOGLE_API, 443, "TCP", True),
    ("mlflow -> google api", MLFLOW, GOOGLE_API, 443, "TCP", True),
    ("zenml -> internet http", ZENML, INTERNET, 80, "TCP", False),
    ("zenml -> step", ZENML, STEP, 8000, "TCP", False),
    ("mlflow -> rogue pod", MLFLOW, ROGUE, 443, "TCP", False),
    ("zenml -> node", ZENML, NODE, 443, "TCP", False),
    ("mlflow -> kube-dns other port", MLFLOW, KUBE_DNS, 8080, "TCP", False),
]
GATEWAY: list[tuple[str, Endpoint, Endpoint, int, str, bool]] = [
    ("lb proxy -> zenml", GW_PROXY, ZENML, 8080, "TCP", True),
    ("lb proxy -> mlflow", GW_PROXY, MLFLOW, 5000, "TCP", True),
    ("health check -> zenml", HEALTH_CHECK, ZENML, 8080, "TCP", True),
    ("health check -> mlflow", HEALTH_CHECK_2, MLFLOW, 5000, "TCP", True),
    ("lb proxy -> zenml other port", GW_PROXY, ZENML, 22, "TCP", False),
    ("lb proxy -> step", GW_PROXY, STEP, 8080, "TCP", False),
    ("nginx pod -> zenml (no nginx here)", NGINX, ZENML, 8080, "TCP", False),
    ("gateway ns pod -> zenml", GATEWAY_NS_POD, ZENML, 8080, "TCP", False),
]
NGINX_CASES: list[tuple[str, Endpoint, Endpoint, int, str, bool]] = [
    ("nginx -> zenml", NGINX, ZENML, 8080, "TCP", True),
    ("nginx -> mlflow", NGINX, MLFLOW, 5000, "TCP", True),
    ("nginx -> acme solver", NGINX, SOLVER, 8089, "TCP", True),
    ("nginx admission pod -> zenml", NGINX_OTHER, ZENML, 8080, "TCP", False),
    ("nginx -> step", NGINX, STEP, 8080, "TCP", False),
    ("lb proxy range -> zenml (no gateway here)", GW_PROXY, ZENML, 8080, "TCP", False),
    ("rogue -> acme solver", ROGUE, SOLVER, 8089, "TCP", False),
]


@pytest.mark.parametrize(
    ("ingress", "case"),
    [("gateway", c) for c in COMMON + GATEWAY] + [("nginx", c) for c in COMMON + NGINX_CASES],
    ids=lambda x: x if isinstance(x, str) else x[0],
)
def test_connection_matrix(
    ingress: str, case: tuple[str, Endpoint, Endpoint, int, str, bool]
) -> None:
    _, src, dst, port, proto, want = case
    assert allowed(_policies(ingress), src, dst, port, proto) is want


def test_without_the_policies_everything_would_connect() -> None:
    """The evaluator is not vacuous: every denied pair above is open with no policies."""
    for _, src, dst, port, proto, _want in COMMON + GATEWAY + NGINX_CASES:
        assert allowed([], src, dst, port, proto)


@pytest.mark.parametrize("ingress", ["gateway", "nginx"])
def test_every_stack_namespace_denies_ingress_by_default(ingress: str) -> None:
    denies = {
        p["metadata"]["namespace"]
        for p in _policies(ingress)
        if p["spec"]["podSelector"] == {}
        and p["spec"]["policyTypes"] == ["Ingress"]
        and not p["spec"].get("ingress")
    }
    assert denies == {"zenml", "mlflow", "zenml-pipelines"}


def test_cloud_sql_range_is_the_private_services_block_of_the_instance() -> None:
    [egress] = [p for p in _policies("gateway") if p["metadata"]["name"] == "zenml-egress"]
    cidrs = [
        peer["ipBlock"]["cidr"]
        for rule in egress["spec"]["egress"]
        if rule.get("ports") == [{"protocol": "TCP", "port": 3306}]
        for peer in rule["to"]
    ]
    net = ipaddress.ip_network(cidrs[0])
    assert cidrs == [str(net)] and net.prefixlen == 20
    assert ipaddress.ip_address(SQL_IP) in net


def _sql_cidrs(**db: str | None) -> set[str]:
    """The database ranges of every server egress policy, rendered from these outputs."""
    cfg = build_config(EXAMPLE / "config.yaml", {})
    out = _outputs().model_copy(update=db)
    return {
        peer["ipBlock"]["cidr"]
        for p in R.render(cfg, out).objects
        if p["kind"] == "NetworkPolicy" and p["metadata"]["name"].endswith("-egress")
        for rule in p["spec"]["egress"]
        if rule.get("ports") == [{"protocol": "TCP", "port": 3306}]
        for peer in rule["to"]
    }


def test_cloud_sql_range_is_the_exported_range_else_the_block_of_the_instance() -> None:
    # the exported range wins, whatever the instance's address (none yet, at first deploy)
    assert _sql_cidrs(sql_range="10.30.0.0/16", sql_private_ip="10.30.17.5") == {"10.30.0.0/16"}
    assert _sql_cidrs(sql_range="10.30.0.0/16", sql_private_ip="10.99.0.1") == {"10.30.0.0/16"}
    # an older stack exports none: the /20 block that holds the instance
    assert _sql_cidrs(sql_range=None, sql_private_ip="10.30.17.5") == {"10.30.16.0/20"}


def test_an_exported_range_that_is_no_network_is_refused() -> None:
    from zenml_gcp_gitops.errors import ConfigError

    data = json.loads((EXAMPLE / "outputs.json").read_text())
    with pytest.raises(ConfigError, match="sql_range"):
        InfraOutputs.from_mapping({**data, "sql_range": "10.30.0.0/99"})


def _chart_text(shared: Path, chart: str, rel: str) -> str:
    return (shared.parent / "charts" / chart / rel).read_text()


def test_pod_labels_and_ports_are_the_charts(shared_schemas: Path) -> None:
    """The selectors name the labels the charts put on their pods, and the ports they serve."""
    zenml = _chart_text(shared_schemas, CHARTS[0], "templates/_helpers.tpl")
    block = zenml.split('define "zenml.selectorLabels"')[1].split("{{- end }}\n{{- end }}")[0]
    assert 'app.kubernetes.io/name: {{ include "zenml.name" . }}' in block
    assert "app.kubernetes.io/instance: {{ .Release.Name }}" in block
    assert "instanceLabel" not in (EXAMPLE.parent / "values" / "zenml.yaml").read_text()
    assert "containerPort: 8080" in _chart_text(
        shared_schemas, CHARTS[0], "templates/server-deployment.yaml"
    )
    mlflow = _chart_text(shared_schemas, CHARTS[1], "templates/_helpers.tpl")
    block = mlflow.split('define "mlflow.selectorLabels"')[1].split("{{- end }}")[0]
    assert 'app.kubernetes.io/name: {{ include "mlflow.name" . }}' in block
    assert "app.kubernetes.io/instance: {{ .Release.Name }}" in block
    values = _chart_text(shared_schemas, CHARTS[1], "values.yaml")
    assert "containerPort: 5000" in values
    nginx = _chart_text(shared_schemas, CHARTS[2], "templates/controller-deployment.yaml")
    assert "app.kubernetes.io/component: controller" in nginx
    # and the releases are the ones the policies select
    cfg = build_config(EXAMPLE / "config.yaml")
    assert ha._server_pods(cfg, "zenml")["app.kubernetes.io/instance"] == "zenml-server"
    assert ha._server_pods(cfg, "mlflow")["app.kubernetes.io/instance"] == "mlflow"
