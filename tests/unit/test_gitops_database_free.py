"""The apps that sync before the database exists carry nothing that only the database makes.

Deploy starts Argo CD and the operators, platform and workloads apps while Cloud SQL is still
being created: what they render must not change with the instance's outputs (its address,
connection name, server CA, name). The server apps (ZenML, MLflow) are the ones that wait.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zenml_gcp_gitops.config import build_config
from zenml_gcp_gitops.gitops.render import Rendered, render
from zenml_gcp_gitops.outputs import InfraOutputs
from zenml_gcp_gitops.plan import database_apps

EXAMPLE = Path(__file__).resolve().parents[2] / "argocd" / "example"
DATABASE_APPS = {"zenml_server", "mlflow"}
PEM = "-----BEGIN CERTIFICATE-----\nMIIBanotherServerCA\n-----END CERTIFICATE-----\n"


def _outputs(**db: str) -> InfraOutputs:
    data = json.loads((EXAMPLE / "outputs.json").read_text())
    return InfraOutputs.from_mapping({**data, **db})


# A second instance in the same private services range: every database output differs.
OTHER_DB = {
    "sql_instance": "zenml-mysql-2",
    "sql_connection_name": "acme-ml-prod:europe-west4:zenml-mysql-2",
    "sql_private_ip": "10.20.7.42",
    "sql_server_ca_cert": PEM,
}


def _apps(r: Rendered) -> dict[str, str]:
    return {a.key: json.dumps([a.manifest, a.objects], sort_keys=True) for a in r.apps}


@pytest.mark.parametrize("ingress", ["gateway", "nginx"])
def test_only_the_server_apps_change_with_the_database(ingress: str) -> None:
    cfg = build_config(EXAMPLE / "config.yaml", {"ingress": ingress})
    first, second = _outputs(), _outputs(**OTHER_DB)
    assert all(getattr(first, k) != v for k, v in OTHER_DB.items())
    a, b = _apps(render(cfg, first)), _apps(render(cfg, second))
    changed = {k for k in a if a[k] != b[k]}
    assert changed == DATABASE_APPS
    # the rest: operators, platform and workloads (ingress-nginx with nginx), byte for byte
    same = set(a) - changed
    assert {"platform", "workloads", "external_secrets", "cert_manager"} <= same
    assert ("ingress_nginx" in same) == (ingress == "nginx")
    # and none of them names the database's address, connection name or CA (its instance
    # name is a prefix of other names: the byte-for-byte comparison above covers it)
    for out, apps in ((first, a), (second, b)):
        marks = [out.sql_connection_name, out.sql_private_ip]
        marks += [json.dumps(out.sql_server_ca_cert)[1:-1]]
        text = "".join(apps[k] for k in same)
        assert not [m for m in marks if m in text]
        assert all(m in apps["mlflow"] for m in marks[1:])  # the marks are findable


@pytest.mark.parametrize("ingress", ["gateway", "nginx"])
def test_the_apps_that_wait_for_the_database_are_the_server_apps(ingress: str) -> None:
    cfg = build_config(EXAMPLE / "config.yaml", {"ingress": ingress})
    out = _outputs()
    assert set(database_apps(render(cfg, out), out)) == DATABASE_APPS
