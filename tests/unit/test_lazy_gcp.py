"""`lazy_gcp`: a pulumi_gcp subpackage loaded name by name gives the objects its own
`__init__` exports, and the offline run loads only the modules it names."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from zenml_gcp_gitops.lazy_gcp import snake

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter: in this one another test may have loaded pulumi_gcp whole already.
_CHILD = textwrap.dedent(
    """
    import json, sys
    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.lazy_gcp import PartialPackage
    from zenml_gcp_gitops.plan import run_program

    run_program(build_config(None, {"project": "acme-ml-prod", "region": "europe-west4"}))
    parts = {n: m for n, m in sys.modules.items() if isinstance(m, PartialPackage)}
    touched = {n: m for n, m in parts.items() if m.__dict__.get("_zgg_files") is not None}
    resolved = {
        n: {k: v for k, v in vars(m).items() if not k.startswith("_") and k[0].isupper()}
        for n, m in touched.items()
    }
    report = {
        "touched": sorted(touched),
        "full_before": sorted(n for n, m in touched.items() if m._zgg_full),
        "compute_modules": sorted(
            n for n in sys.modules if n.startswith("pulumi_gcp.compute.")
        ),
    }
    import pulumi_gcp
    lookups = {"get_project_output": pulumi_gcp.organizations.get_project_output}
    try:
        pulumi_gcp.compute.NoSuchResourceAnywhere
    except AttributeError:
        report["missing_raises"] = True
    report["missing_loads_all"] = pulumi_gcp.compute._zgg_full
    star = {}
    exec("from pulumi_gcp.kms import *", star)  # a name the program never uses
    report["star_import"] = "CryptoKeyIAMBinding" in star and "KeyRing" in star
    report["dir_lists_all"] = "SecretIamBinding" in dir(pulumi_gcp.secretmanager)
    for m in touched.values():
        m.load_all()  # the package's own __init__, run over the same module
    report["differs"] = sorted(
        f"{n}.{k}" for n, names in resolved.items() for k, v in names.items()
        if getattr(sys.modules[n], k) is not v
    )
    report["get_project_output_same"] = (
        pulumi_gcp.organizations.get_project_output is lookups["get_project_output"]
    )
    report["resolved"] = sum(len(v) for v in resolved.values())
    print(json.dumps(report))
    """
)


def test_names_resolve_to_what_the_package_exports_and_only_used_modules_load(
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={
            "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "ZENML_GCP_GITOPS_HOME": str(tmp_path / "zgg"),
        },
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "pulumi_gcp.compute" in report["touched"]
    assert "pulumi_gcp.container" in report["touched"]
    # every name the program uses was found without loading a whole subpackage
    assert report["full_before"] == []
    assert "pulumi_gcp.compute.instance" not in report["compute_modules"]
    assert len(report["compute_modules"]) < 30, report["compute_modules"]
    assert report["resolved"] > 50
    # ... and is the very object the subpackage's own __init__ exports
    assert report["differs"] == []
    assert report["get_project_output_same"] is True
    # a name no module defines loads the whole package, then is missing as usual
    assert report["missing_raises"] is True
    assert report["missing_loads_all"] is True
    # star imports and dir() see every name, as with the package's own __init__
    assert report["star_import"] is True and report["dir_lists_all"] is True


def test_snake_follows_the_generated_module_names() -> None:
    assert snake("BucketIAMMember") == "bucket_iam_member"
    assert snake("RepositoryIamMember") == "repository_iam_member"
    assert snake("IAMAuditConfig") == "iam_audit_config"
    assert snake("RouterNat") == "router_nat"
    assert snake("Network") == "network"
