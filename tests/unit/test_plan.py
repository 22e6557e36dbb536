"""`plan --offline`: the JSON contract, secret hygiene, determinism and the CLI."""

from __future__ import annotations

import ipaddress
import json
import re
import threading
from typing import Any

import pytest
from click.testing import CliRunner

from zenml_gcp_gitops.cli import cli
from zenml_gcp_gitops.config import SECRET_MARK, DeploymentConfig, build_config
from zenml_gcp_gitops.outputs import InfraOutputs
from zenml_gcp_gitops.placeholders import MOCK_PSA_ADDRESS
from zenml_gcp_gitops.plan import (
    offline_outputs,
    offline_plan,
    plan_from_run,
    redact,
    run_program,
)

ARGS = ["--project", "acme-ml-prod", "--region", "europe-west4"]
TYPE_TOKEN = re.compile(r"^[a-z][a-z0-9-]*:[A-Za-z0-9/]+:[A-Za-z0-9]+$")
RESOURCE_KEYS = {"urn", "type", "name", "inputs", "parent", "depends_on"}


def cfg_of(**overrides: Any) -> DeploymentConfig:
    return build_config(None, {"project": "acme-ml-prod", "region": "europe-west4", **overrides})


FULL = {
    "orchestrator": "vertex",
    "github_repo": "acme/ml-pipelines",
    "connector_auth": "service-account",
    "authorized_networks": ["198.51.100.0/24"],
}


@pytest.fixture(scope="module")
def plan() -> dict[str, Any]:
    return offline_plan(cfg_of())


@pytest.fixture(scope="module")
def full_run() -> tuple[DeploymentConfig, Any]:
    cfg = cfg_of(**FULL)
    return cfg, run_program(cfg)


def test_top_level_contract(plan: dict[str, Any]) -> None:
    assert list(plan) == [
        "version",
        "config",
        "resources",
        "outputs",
        "argocd",
        "zenml_stack",
        "cost",
        "duration",
    ]
    assert plan["version"] == 1
    assert plan["config"] == cfg_of().redacted()
    assert isinstance(plan["resources"], list) and plan["resources"]
    for section in ("outputs", "argocd", "zenml_stack"):
        assert isinstance(plan[section], dict)
    json.dumps(plan)  # plain JSON data throughout


def test_resources_match_the_contract(plan: dict[str, Any]) -> None:
    urns = {r["urn"] for r in plan["resources"]}
    assert len(urns) == len(plan["resources"])
    for r in plan["resources"]:
        assert set(r) == RESOURCE_KEYS
        assert TYPE_TOKEN.match(r["type"]), r["type"]
        assert r["urn"].startswith("urn:pulumi:zenml::zenml-gcp-gitops::")
        assert r["urn"].endswith(f"::{r['name']}")
        assert isinstance(r["inputs"], dict)
        assert r["parent"] is None or r["parent"] in urns
        assert all(d in urns for d in r["depends_on"]), r["urn"]
        assert not r["type"].startswith("pulumi:providers:")
    types = {r["type"] for r in plan["resources"]}
    assert "gcp:container/cluster:Cluster" in types
    assert "gcp:sql/databaseInstance:DatabaseInstance" in types
    assert "zenml-gcp-gitops:infra:Network" in types
    # top-level components hang off the stack; everything else is inside one
    for r in plan["resources"]:
        assert (r["parent"] is None) == r["type"].startswith("zenml-gcp-gitops:infra:")


def test_inputs_are_camel_case_as_the_engine_receives_them(plan: dict[str, Any]) -> None:
    cluster = next(r for r in plan["resources"] if r["type"] == "gcp:container/cluster:Cluster")
    assert cluster["inputs"]["enableAutopilot"] is True
    assert "enable_autopilot" not in cluster["inputs"]
    assert "enablePrivateNodes" in cluster["inputs"]["privateClusterConfig"]
    sql = next(
        r for r in plan["resources"] if r["type"] == "gcp:sql/databaseInstance:DatabaseInstance"
    )
    assert sql["inputs"]["settings"]["ipConfiguration"]["sslMode"] == "ENCRYPTED_ONLY"


def test_outputs_validate_and_use_documentation_ranges(plan: dict[str, Any]) -> None:
    out = InfraOutputs.from_mapping(plan["outputs"])
    assert ipaddress.ip_address(out.ingress_ip) in ipaddress.ip_network("203.0.113.0/24")
    assert ipaddress.ip_address(out.sql_private_ip) in ipaddress.ip_network("198.51.100.0/24")
    # the private services range, exported from the reserved range (not from the instance)
    psa = next(r for r in plan["resources"] if r["name"] == "psa-range")
    assert out.sql_range == f"{MOCK_PSA_ADDRESS}/{int(psa['inputs']['prefixLength'])}"
    assert ipaddress.ip_address(out.sql_private_ip) in ipaddress.ip_network(
        out.sql_range or "", strict=False
    )
    assert out.zenml_host == f"zenml.{out.ingress_ip}.nip.io"
    assert plan["outputs"]["pipelines_sa_key"] is None
    assert offline_outputs(cfg_of()) == out


def test_sections_from_gitops_and_register_are_filled(plan: dict[str, Any]) -> None:
    # Both sections come from other modules; when present they must reflect our outputs.
    stack = plan["zenml_stack"]
    if stack:
        assert stack["name"] == cfg_of().names.zenml_stack
    argocd = plan["argocd"]
    if argocd:
        assert "applications" in argocd


def test_no_secret_value_anywhere_in_the_plan(full_run: tuple[DeploymentConfig, Any]) -> None:
    cfg, run = full_run
    plan = plan_from_run(cfg, run)
    text = json.dumps(plan)
    assert len(run.generated_secrets) >= 8  # 6 passwords + the fake key's two secret parts
    for secret in run.generated_secrets:
        assert secret not in text
    assert "1b47061264138c4ac30d75fd1eb44270" not in text  # no raw secret sentinel either
    assert plan["outputs"]["pipelines_sa_key"] == SECRET_MARK
    versions = [
        r for r in plan["resources"] if r["type"] == "gcp:secretmanager/secretVersion:SecretVersion"
    ]
    assert versions and all(v["inputs"]["secretData"] == SECRET_MARK for v in versions)
    users = [r for r in plan["resources"] if r["type"] == "gcp:sql/user:User"]
    assert users and all(u["inputs"]["password"] == SECRET_MARK for u in users)
    # the real key is still available in-process, for the register phase
    assert "private_key" in json.loads(run.outputs["pipelines_sa_key"])


def test_repeated_runs_give_identical_output(plan: dict[str, Any]) -> None:
    again = offline_plan(cfg_of())
    assert json.dumps(again, sort_keys=True) == json.dumps(plan, sort_keys=True)


def test_identical_across_processes_and_hash_seeds() -> None:
    """A fresh interpreter with another hash seed prints byte-identical JSON."""
    import os
    import subprocess
    import sys

    args = ["plan", "--offline", *ARGS, "--github-repo", "acme/ml", "--output", "json"]
    here = CliRunner().invoke(cli, args)
    assert here.exit_code == 0, here.output
    code = "import sys; from zenml_gcp_gitops.cli import main; sys.argv[0] = 'x'; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "4242"},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == here.stdout


def test_runs_are_isolated_from_each_other() -> None:
    big = offline_plan(cfg_of(**FULL))
    small = offline_plan(cfg_of())
    assert len(big["resources"]) > len(small["resources"])
    assert not any("github" in r["urn"] for r in small["resources"])
    # also from a thread that is not the main one, as a server would call it
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.update(p=offline_plan(cfg_of())))
    t.start()
    t.join()
    assert json.dumps(box["p"], sort_keys=True) == json.dumps(small, sort_keys=True)


def test_redact_replaces_nested_sentinels() -> None:
    sentinel = {
        "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
        "value": "x",
    }
    assert redact({"a": [sentinel, {"b": sentinel}], "c": 1}) == {
        "a": [SECRET_MARK, {"b": SECRET_MARK}],
        "c": 1,
    }


# --------------------------------------------------------------------------- CLI


def test_cli_json_is_exactly_one_document() -> None:
    res = CliRunner().invoke(cli, ["plan", "--offline", *ARGS, "--output", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)  # raises if anything else is on stdout
    assert doc["version"] == 1
    assert doc["outputs"]["cluster_name"] == "zenml-gke"


def test_cli_text_groups_resources_by_component() -> None:
    res = CliRunner().invoke(cli, ["plan", "--offline", *ARGS, "--github-repo", "acme/ml"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    for component in ("Apis", "Network", "Gke", "Database", "Storage", "Identity", "Secrets"):
        assert re.search(rf"^{component}\s+\d+\s", out, re.M), component
    assert re.search(r"^Gke\s+\d+\s.*1 Cluster", out, re.M)
    assert "https://zenml.203.0.113.10.nip.io" in out
    assert "WorkloadIdentityPool" in out
    # CMEK settings apply at creation only: the plan tells an existing deployment it keeps its own
    assert "existing deployment keeps the encryption" in " ".join(out.split())
    stack = offline_plan(cfg_of(github_repo="acme/ml"))["zenml_stack"]
    if stack:  # what register will create, when that module is present
        assert f"ZenML stack {stack['name']}" in out
        for comp in stack["components"].values():
            assert comp["name"] in out


def test_cli_without_offline_points_to_deploy_dry_run() -> None:
    res = CliRunner().invoke(cli, ["plan", *ARGS])
    assert res.exit_code == 2
    assert "deploy --dry-run" in res.output
    assert "Traceback" not in res.output


def test_cli_bad_config_is_one_line_exit_2() -> None:
    res = CliRunner().invoke(
        cli, ["plan", "--offline", "--project", "X", "--region", "europe-west4"]
    )
    assert res.exit_code == 2
    assert "project" in res.output and "Traceback" not in res.output


def test_show_plan_is_what_deploy_offline_calls(capsys: pytest.CaptureFixture[str]) -> None:
    from zenml_gcp_gitops.cli.plan import show_plan

    show_plan(cfg_of(), "json")
    assert json.loads(capsys.readouterr().out)["config"]["project"] == "acme-ml-prod"


# --------------------------------------------------------------------------- Pulumi CLI entry


def test_main_builds_the_same_stack_from_pulumi_config() -> None:
    """`pulumi_program/__main__.py` maps Pulumi config keys onto DeploymentConfig fields."""
    import runpy

    from pulumi.runtime import set_all_config, set_mocks

    from zenml_gcp_gitops.plan import _make_mocks, _make_monitor
    from zenml_gcp_gitops.resources import program_dir

    box: dict[str, Any] = {}

    def target() -> None:
        import asyncio

        from pulumi.runtime.stack import run_pulumi_func

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        mocks = _make_mocks("acme-ml-prod", "europe-west4")
        monitor = _make_monitor(mocks)
        set_mocks(mocks, project="zenml-gcp-gitops", stack="dev", preview=False, monitor=monitor)
        set_all_config(
            {
                "zenml-gcp-gitops:project": "acme-ml-prod",
                "zenml-gcp-gitops:region": "europe-west4",
                "zenml-gcp-gitops:name": "dev",
                "zenml-gcp-gitops:deletion_protection": "false",
                "zenml-gcp-gitops:authorized_networks": "198.51.100.0/24",
            }
        )
        try:
            loop.run_until_complete(
                run_pulumi_func(lambda: runpy.run_path(str(program_dir() / "__main__.py")))
            )
            box["regs"] = monitor.registrations
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = e
        finally:
            loop.close()

    t = threading.Thread(target=target)
    t.start()
    t.join()
    assert "error" not in box, box.get("error")
    clusters = [r for r in box["regs"] if r.type == "gcp:container/cluster:Cluster"]
    assert [c.inputs["name"] for c in clusters] == ["dev-gke"]
    assert clusters[0].inputs["deletionProtection"] is False
    cidrs = clusters[0].inputs["masterAuthorizedNetworksConfig"]["cidrBlocks"]
    assert [c["cidrBlock"] for c in cidrs] == ["198.51.100.0/24"]
