"""Checkov as a gate: the converted plan of every variant and the rendered Kubernetes objects,
ours and the charts' `helm template` output with the values our Applications carry.

Any failed check fails, unless `.ci/checkov-allowlist.yaml` lists it with the reason it does
not apply; an allowlist entry that no longer matches anything fails too, so the list only
holds what is true today. The converter is proven first: for a set of checks, a field the
check reads is changed in our plan, and the check's verdict must flip.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.checkov import (
    VARIANTS,
    Finding,
    checkov_binary,
    load_allowlist,
    run_checkov,
    scan,
    variant_config,
)
from zenml_gcp_gitops.plan import offline_plan
from zenml_gcp_gitops.tfplan import TYPES, to_terraform_plan

try:  # the shared CI/skip policy (fails under CI=true, one summary line otherwise)
    from tests.conftest import require
except ImportError:  # pragma: no cover - older conftest

    def require(missing: str | None) -> None:
        import os

        if missing is None:
            return
        if os.environ.get("CI", "").lower() in {"true", "1", "yes"}:
            pytest.fail(f"CI=true but this test needs {missing}", pytrace=False)
        pytest.skip(f"needs {missing}")


@pytest.fixture(scope="module")
def checkov() -> str:
    binary = checkov_binary()
    require(None if binary else "checkov (ZGG_CHECKOV, or .venv-checkov as .ci/run installs it)")
    assert binary
    return binary


@pytest.fixture(scope="module")
def plans() -> dict[str, dict[str, Any]]:
    return {name: offline_plan(variant_config(name)) for name in VARIANTS}


# ----------------------------------------------------------------- the converter, offline


def test_every_resource_type_of_every_variant_has_a_terraform_type(
    plans: dict[str, dict[str, Any]],
) -> None:
    for name, plan in plans.items():
        tf = to_terraform_plan(plan)
        cloud = [r for r in plan["resources"] if not r["type"].startswith("zenml-gcp-gitops:")]
        assert len(tf["planned_values"]["root_module"]["resources"]) == len(cloud), name
        addresses = [r["address"] for r in tf["planned_values"]["root_module"]["resources"]]
        assert len(set(addresses)) == len(addresses), f"{name}: duplicate addresses"
        for r in tf["planned_values"]["root_module"]["resources"]:
            assert r["type"] in TYPES.values()


def test_values_are_snake_case_blocks_and_maps_keep_their_keys(
    plans: dict[str, dict[str, Any]],
) -> None:
    tf = to_terraform_plan(plans["default"])
    by_addr = {r["address"]: r["values"] for r in tf["planned_values"]["root_module"]["resources"]}
    bucket = by_addr["google_storage_bucket.artifacts"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["versioning"] == [{"enabled": True}]
    assert bucket["lifecycle_rule"][0]["condition"][0]["with_state"] == "ARCHIVED"
    assert bucket["labels"] == {"managed-by": "zenml-gcp-gitops", "deployment": "zenml"}
    subnet = by_addr["google_compute_subnetwork.nodes"]
    assert {r["range_name"] for r in subnet["secondary_ip_range"]} == {
        "zenml-pods",
        "zenml-services",
    }
    nat = by_addr["google_compute_router_nat.nat"]
    assert nat["subnetwork"][0]["source_ip_ranges_to_nat"] == ["ALL_IP_RANGES"]
    sql = by_addr["google_sql_database_instance.instance"]
    assert sql["settings"][0]["ip_configuration"][0]["ipv4_enabled"] is False
    assert sql["root_password"] == "[secret]"


def test_an_unknown_resource_type_is_refused(plans: dict[str, dict[str, Any]]) -> None:
    from zenml_gcp_gitops.tfplan import UnmappedTypeError

    plan = copy.deepcopy(plans["default"])
    plan["resources"].append({**plan["resources"][-1], "type": "gcp:new/thing:Thing", "urn": "x"})
    with pytest.raises(UnmappedTypeError, match="gcp:new/thing:Thing"):
        to_terraform_plan(plan)


# ------------------------------------------- the converter feeds each check what it reads

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def apply(inputs: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = inputs
        for p in parents:
            node = node[p]
        node[last] = value

    return apply


def _delete(path: str) -> Mutation:
    def apply(inputs: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = inputs
        for p in parents:
            node = node[p]
        del node[last]

    return apply


# (check, Pulumi resource name, TF address, mutation, verdict of the unchanged plan)
CASES: list[tuple[str, str, str, Mutation, str]] = [
    ("CKV_GCP_29", "artifacts", "google_storage_bucket.artifacts",
     _set("uniformBucketLevelAccess", False), "passed"),
    ("CKV_GCP_114", "artifacts", "google_storage_bucket.artifacts",
     _set("publicAccessPrevention", "inherited"), "passed"),
    ("CKV_GCP_78", "artifacts", "google_storage_bucket.artifacts",
     _set("versioning.enabled", False), "passed"),
    ("CKV_GCP_62", "mlflow", "google_storage_bucket.mlflow",
     _set("logging", {"logBucket": "some-log-bucket"}), "failed"),
    ("CKV_GCP_26", "nodes", "google_compute_subnetwork.nodes", _delete("logConfig"), "passed"),
    ("CKV_GCP_74", "nodes", "google_compute_subnetwork.nodes",
     _set("privateIpGoogleAccess", False), "passed"),
    ("CKV_GCP_84", "images", "google_artifact_registry_repository.images",
     _delete("kmsKeyName"), "passed"),
    ("CKV_GCP_43", "key", "google_kms_crypto_key.key",
     _set("rotationPeriod", "31536000s"), "passed"),
    ("CKV_GCP_60", "instance", "google_sql_database_instance.instance",
     _set("settings.ipConfiguration.ipv4Enabled", True), "passed"),
    ("CKV_GCP_14", "instance", "google_sql_database_instance.instance",
     _set("settings.backupConfiguration.enabled", False), "passed"),
    ("CKV_GCP_6", "instance", "google_sql_database_instance.instance",
     _set("settings.ipConfiguration.sslMode", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"), "failed"),
    ("CKV_GCP_21", "cluster", "google_container_cluster.cluster",
     _delete("resourceLabels"), "passed"),
    ("CKV_GCP_66", "cluster", "google_container_cluster.cluster",
     _set("binaryAuthorization", {"evaluationMode": "PROJECT_SINGLETON_POLICY_ENFORCE"}),
     "failed"),
    ("CKV_GCP_13", "cluster", "google_container_cluster.cluster",
     _set("masterAuth", {"clientCertificateConfig": {"issueClientCertificate": False}}),
     "failed"),
]  # fmt: skip


def test_known_pass_and_fail_cases_flip_with_the_field_each_check_reads(
    checkov: str, plans: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    base = plans["default"]
    (tmp_path / "base.tfplan.json").write_text(json.dumps(to_terraform_plan(base)))
    for i, (_check, name, addr, mutate, _verdict) in enumerate(CASES):
        plan = copy.deepcopy(base)
        tf_type = addr.split(".")[0]
        [res] = [
            r for r in plan["resources"] if r["name"] == name and TYPES.get(r["type"]) == tf_type
        ]
        mutate(res["inputs"])
        (tmp_path / f"case{i}.tfplan.json").write_text(json.dumps(to_terraform_plan(plan)))
    ok, bad = scan(tmp_path, "terraform_plan")
    passed = {(f.check, Path(f.file).name, f.resource) for f in ok}
    failed = {(f.check, Path(f.file).name, f.resource) for f in bad}
    problems = []
    for i, (check, _name, addr, _mutate, verdict) in enumerate(CASES):
        flipped = "failed" if verdict == "passed" else "passed"
        got_base = (check, "base.tfplan.json", addr)
        got_case = (check, f"case{i}.tfplan.json", addr)
        if got_base not in (passed if verdict == "passed" else failed):
            problems.append(f"{check} on {addr}: unchanged plan should have {verdict}")
        if got_case not in (passed if flipped == "passed" else failed):
            problems.append(f"{check} on {addr}: changed plan should have {flipped}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------ the gate


def _gate(findings: list[Finding], framework: str, scanned: set[str]) -> None:
    allow = [a for a in load_allowlist() if a.framework == framework]
    unexpected = []
    for f in findings:
        hits = [a for a in allow if a.matches(f)]
        for a in hits:
            a.used += 1
        if not hits:
            unexpected.append(f"{f.variant}: {f.check} {f.resource} ({f.name})")
    stale = [
        f"{a.check} {a.resource} {a.variants or 'all variants'}"
        for a in allow
        if not a.used and (not a.variants or set(a.variants) & scanned)
    ]
    msg = []
    if unexpected:
        msg.append("Checkov findings (fix them, or allowlist with the reason they do not apply):")
        msg += [f"  {u}" for u in sorted(set(unexpected))]
    if stale:
        msg.append("allowlist entries that match nothing any more (remove them):")
        msg += [f"  {s}" for s in stale]
    assert not msg, "\n".join(msg)


def _rendered_objects(name: str) -> list[dict[str, Any]]:
    """What the stack puts in the cluster: our own objects, plus the charts' `helm template`
    output with the values our Applications carry (each object in the namespace Argo CD puts
    it in, so findings name it as `Kind.namespace.name`)."""
    from zenml_gcp_gitops.gitops.render import render
    from zenml_gcp_gitops.plan import offline_outputs

    cfg = variant_config(name)
    objects = render(cfg, offline_outputs(cfg)).all_manifests()
    ours = [o for o in objects if o["kind"] != "Secret"]  # repository declarations: no pods
    return ours + _charts_output(name)


def _charts_output(name: str) -> list[dict[str, Any]]:
    from tests.support import charts

    require(charts.missing())
    if name not in charts.VARIANTS:  # the hardened controls are all infra-side
        return []
    out = []
    for cr in charts.render_variant(name):
        if cr.chart == "raw":  # our own objects (above), which that chart puts out verbatim
            continue
        for obj in cr.objects:
            obj = copy.deepcopy(obj)
            namespace = charts.namespace_of(obj, cr.namespace)
            if namespace:
                obj.setdefault("metadata", {})["namespace"] = namespace
            out.append(obj)
    return out


def test_checkov_passes_on_the_rendered_kubernetes_objects(checkov: str, tmp_path: Path) -> None:
    import yaml

    for name in VARIANTS:
        out = tmp_path / name
        out.mkdir()
        for i, obj in enumerate(_rendered_objects(name)):
            kind = str(obj.get("kind", "object")).lower()
            (out / f"{i:03d}-{kind}.yaml").write_text(yaml.safe_dump(obj))
    passed, findings = scan(tmp_path, "kubernetes")
    # the charts' workloads were scanned, not only our own objects
    scanned = {(f.variant, f.resource) for f in passed + findings}
    for name in VARIANTS:
        for obj in _charts_output(name):
            if obj["kind"] in {"Deployment", "Job"}:
                meta = obj["metadata"]
                resource = f"{obj['kind']}.{meta['namespace']}.{meta['name']}"
                assert (name, resource) in scanned, f"{name}: {resource} was not scanned"
    _gate(findings, "kubernetes", set(VARIANTS))


def _chart_objects(name: str) -> list[dict[str, Any]] | None:
    """The real charts' `helm template` output for a variant, when the renderer is here."""
    try:
        from tests.support import charts
    except ImportError:
        return None
    if not hasattr(charts, "variant_objects"):
        return None
    require(charts.missing())
    if name not in charts.VARIANTS:
        return []
    return [obj for obj, _ns in charts.variant_objects(name)]


def test_checkov_passes_on_the_plan_of_every_variant(
    checkov: str, plans: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    for name, plan in plans.items():
        (tmp_path / f"{name}.tfplan.json").write_text(json.dumps(to_terraform_plan(plan)))
    findings = run_checkov(tmp_path, "terraform_plan")
    assert {f.variant for f in findings} <= set(VARIANTS)
    _gate(findings, "terraform_plan", set(VARIANTS))


def test_binary_authorization_admits_exactly_the_images_the_real_charts_run() -> None:
    from zenml_gcp_gitops.gitops.images import CHART_IMAGES, images_in

    rendered: set[str] = set()
    for name in VARIANTS:
        objects = _chart_objects(name)
        require(None if objects is not None else "the real-chart renderer (tests/support/charts)")
        assert objects is not None
        rendered |= images_in(objects)
    assert rendered == set(CHART_IMAGES), (
        f"the charts' images changed: update gitops/images.py CHART_IMAGES to {sorted(rendered)}"
    )
