"""`argocd/example/gitops/` is the rendered tree of `argocd/example/config.yaml`: drift fails.

Regenerate after an intended change with:
    zenml-gcp-gitops render --config argocd/example/config.yaml \
        --outputs argocd/example/outputs.json --out argocd/example/gitops
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from zenml_gcp_gitops.cli import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "argocd" / "example"
REGEN = (
    "zenml-gcp-gitops render --config argocd/example/config.yaml "
    "--outputs argocd/example/outputs.json --out argocd/example/gitops"
)


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def _render(tmp_path: Path, *extra: str) -> Result:
    args = [
        "render",
        "--config",
        str(EXAMPLE / "config.yaml"),
        "--outputs",
        str(EXAMPLE / "outputs.json"),
        *extra,
    ]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_example_tree_is_current(tmp_path: Path) -> None:
    result = _render(tmp_path, "--out", str(tmp_path / "tree"))
    assert result.exit_code == 0, result.output
    want, got = _files(EXAMPLE / "gitops"), _files(tmp_path / "tree")
    assert sorted(got) == sorted(want), f"file set drifted; regenerate: {REGEN}"
    for name, text in want.items():
        assert got[name] == text, f"{name} drifted; regenerate: {REGEN}"


def test_render_json_output_lists_the_tree(tmp_path: Path) -> None:
    result = _render(tmp_path, "--out", str(tmp_path / "t"), "--output", "json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert "apps/zenml-zenml-server.yaml" in data["files"]
    assert data["applications"][0] == "zenml-external-secrets"


def test_render_without_outputs_or_record_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "render",
            "--project",
            "acme-ml-prod",
            "--region",
            "europe-west4",
            "--state",
            "local",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1
    assert "no deployed infra outputs" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("flags", [["--outputs", "x.json", "--offline"]])
def test_render_rejects_conflicting_sources(tmp_path: Path, flags: list[str]) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "render",
            "--project",
            "acme-ml-prod",
            "--region",
            "europe-west4",
            "--out",
            str(tmp_path),
            *flags,
        ],
    )
    assert result.exit_code == 2
    assert "exclusive" in result.output


def test_render_offline_uses_the_plan_mocks(tmp_path: Path) -> None:
    from zenml_gcp_gitops.plan import offline_outputs  # a product module: never a skip

    assert callable(offline_outputs)
    result = CliRunner().invoke(
        cli,
        [
            "render",
            "--offline",
            "--project",
            "acme-ml-prod",
            "--region",
            "europe-west4",
            "--out",
            str(tmp_path),
            "--placeholders",
            "-o",
            "json",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    root = (tmp_path / "bootstrap" / "root.yaml").read_text()
    assert "zenml-root" in root
    server = (tmp_path / "apps" / "zenml-zenml-server.yaml").read_text()
    assert "203.0.113." in server
    # every file with a mocked value, and the README, says so on its first line
    from zenml_gcp_gitops.gitops.tree import PLACEHOLDER_BANNER, placeholder_files

    assert server.startswith(f"# {PLACEHOLDER_BANNER}\n")
    assert PLACEHOLDER_BANNER in (tmp_path / "README.md").read_text().splitlines()[0]
    marked = placeholder_files(tmp_path)
    for path in tmp_path.rglob("*.yaml"):
        text = path.read_text()
        has_mock = any(m in text for m in ("203.0.113.10", "198.51.100.3", "TU9DSyBDRVJU"))
        assert (path in marked) == has_mock, path
    assert yaml.safe_load(server)["kind"] == "Application"  # the banner is a YAML comment


def test_render_offline_out_needs_placeholders(tmp_path: Path) -> None:
    args = ["render", "--offline", "--project", "acme-ml-prod", "--region", "europe-west4"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "t")])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--placeholders" in lines[0], result.stderr
    assert not (tmp_path / "t").exists()


def test_real_outputs_carry_no_banner(tmp_path: Path) -> None:
    from zenml_gcp_gitops.gitops.tree import placeholder_files

    assert _render(tmp_path, "--out", str(tmp_path / "tree")).exit_code == 0
    assert placeholder_files(tmp_path / "tree") == []


def test_example_tree_carries_the_network_policies() -> None:
    """The committed tree a user copies holds the policies, each a valid core object."""
    import kubernetes_validate
    import yaml

    found = {}
    for path in sorted((EXAMPLE / "gitops" / "workloads").glob("networkpolicy-*.yaml")):
        obj = yaml.safe_load(path.read_text())
        kubernetes_validate.validate(obj, "1.33.0", strict=True)
        found[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
    assert {
        ("zenml", "default-deny-ingress"),
        ("mlflow", "default-deny-ingress"),
        ("zenml-pipelines", "default-deny-ingress"),
        ("zenml", "zenml-from-gateway"),
        ("mlflow", "mlflow-from-gateway"),
        ("zenml", "zenml-from-pipelines"),
        ("mlflow", "mlflow-from-pipelines"),
        ("zenml", "zenml-egress"),
        ("mlflow", "mlflow-egress"),
        ("mlflow", "mlflow-migrate-egress"),
    } == set(found)
