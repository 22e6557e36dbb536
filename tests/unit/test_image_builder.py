"""Our Cloud Build image builder: every build it submits runs as the configured account.

ZenML's own builder runs end to end here (context upload, build configuration, submission,
digest); only the Cloud Build client and the credentials are fakes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from google.cloud.devtools import cloudbuild_v1
from pydantic import ValidationError
from zenml.enums import StackComponentType
from zenml.integrations.gcp.image_builders import gcp_image_builder

from zenml_gcp_gitops.flavors.image_builder import (
    GCPBuildAccountImageBuilder,
    GCPBuildAccountImageBuilderConfig,
    GCPBuildAccountImageBuilderFlavor,
)
from zenml_gcp_gitops.zenml.stack_spec import BUILD_ACCOUNT_FLAVOR, BUILD_ACCOUNT_FLAVOR_SOURCE

PROJECT = "acme-ml-prod"
BUILD_SA = f"zenml-build@{PROJECT}.iam.gserviceaccount.com"
IMAGE = "europe-west4-docker.pkg.dev/acme-ml-prod/zenml-images/zenml:run-1"
DIGEST = "sha256:" + "ab" * 32


class FakeCloudBuild:
    """Records `create_build` and answers like a successful build."""

    submitted: list[tuple[str, cloudbuild_v1.Build, Any]] = []

    def __init__(self, credentials: Any = None, client_options: Any = None) -> None:
        self.client_options = client_options

    def create_build(self, project_id: str, build: cloudbuild_v1.Build) -> Any:
        FakeCloudBuild.submitted.append((project_id, build, self.client_options))
        result = SimpleNamespace(
            status=cloudbuild_v1.Build.Status.SUCCESS,
            results=SimpleNamespace(images=[SimpleNamespace(digest=DIGEST)]),
        )
        return SimpleNamespace(
            metadata=SimpleNamespace(build=SimpleNamespace(log_url="https://console/logs")),
            result=lambda timeout=None: result,
        )


def make_builder(**config: Any) -> GCPBuildAccountImageBuilder:
    now = datetime.now(UTC)
    return GCPBuildAccountImageBuilder(
        name="zenml-image-builder",
        id=uuid.uuid4(),
        config=GCPBuildAccountImageBuilderConfig(
            service_account=BUILD_SA, location="europe-west4", **config
        ),
        flavor=BUILD_ACCOUNT_FLAVOR,
        type=StackComponentType.IMAGE_BUILDER,
        user=None,
        created=now,
        updated=now,
    )


@pytest.fixture
def cloud_build(monkeypatch: pytest.MonkeyPatch) -> type[FakeCloudBuild]:
    FakeCloudBuild.submitted = []
    monkeypatch.setattr(gcp_image_builder.cloudbuild_v1, "CloudBuildClient", FakeCloudBuild)
    monkeypatch.setattr(
        GCPBuildAccountImageBuilder, "_get_authentication", lambda self: (object(), PROJECT)
    )
    monkeypatch.setattr(
        GCPBuildAccountImageBuilder,
        "_upload_build_context",
        staticmethod(
            lambda build_context, parent_path_directory_name, **kw: (
                f"gs://acme-ml-prod-zenml-artifacts/{parent_path_directory_name}/abc.tar.gz"
            )
        ),
    )
    return FakeCloudBuild


def test_the_submitted_build_runs_as_the_build_account(cloud_build: type[FakeCloudBuild]) -> None:
    builder = make_builder()
    got = builder.build(
        image_name=IMAGE,
        build_context=object(),  # type: ignore[arg-type]  # uploaded by the stub above
        container_registry=object(),  # type: ignore[arg-type]
    )
    assert got == IMAGE.rsplit(":", 1)[0] + "@" + DIGEST
    [(project, build, options)] = cloud_build.submitted
    assert project == PROJECT
    assert build.service_account == f"projects/{PROJECT}/serviceAccounts/{BUILD_SA}"
    assert build.options.logging == cloudbuild_v1.BuildOptions.LoggingMode.CLOUD_LOGGING_ONLY
    # the rest is ZenML's build: context from the artifact bucket, build then push
    assert build.source.storage_source.bucket == "acme-ml-prod-zenml-artifacts"
    assert build.source.storage_source.object_ == "cloud-build-contexts/abc.tar.gz"
    assert [step.args[0] for step in build.steps] == ["build", "push"]
    assert list(build.images) == [IMAGE]
    assert options.api_endpoint == "europe-west4-cloudbuild.googleapis.com"


def test_zenml_s_own_builder_would_run_as_the_default_account(
    cloud_build: type[FakeCloudBuild],
) -> None:
    """The reason for the flavor: the parent sets no account, so the build would run as the
    project's default build account."""
    build = gcp_image_builder.GCPImageBuilder._configure_cloud_build(
        make_builder(), image_name=IMAGE, cloud_build_context="gs://b/cloud-build-contexts/x"
    )
    assert build.service_account == ""


def test_the_build_context_prefix_is_the_one_the_build_account_may_read(
    cloud_build: type[FakeCloudBuild],
) -> None:
    """IAM lets the build account read `<bucket>/<build_context_prefix>/` only: a build that
    ZenML's builder runs must read its context from under that prefix."""
    from zenml_gcp_gitops.config import build_config

    names = build_config(None, {"project": PROJECT, "region": "europe-west4"}).names
    make_builder().build(
        image_name=IMAGE,
        build_context=object(),  # type: ignore[arg-type]  # uploaded by the stub
        container_registry=object(),  # type: ignore[arg-type]
    )
    [(_, build, _)] = cloud_build.submitted
    assert build.source.storage_source.object_.startswith(f"{names.build_context_prefix}/")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "zenml-build",
        "123456789-compute@developer.gserviceaccount.com",  # the default account
        f"zenml-build@{PROJECT}.iam.gserviceaccount.com.evil.example",
    ],
)
def test_only_a_user_managed_account_is_accepted(bad: str) -> None:
    with pytest.raises(ValidationError):
        GCPBuildAccountImageBuilderConfig(service_account=bad)


def test_zenml_loads_the_flavor_from_its_registered_source(tmp_path: Path) -> None:
    """Pods load the flavor from the source `register` stores, as ZenML's loader does."""
    from zenml.stack.flavor import validate_flavor_source
    from zenml.utils import source_utils

    # ZenML derives its source root from `__main__`'s file, which a pod's entrypoint has and a
    # test worker process may not; the flavor source is a package path either way.
    source_utils.set_custom_source_root(str(tmp_path))
    try:
        _check_flavor_source(validate_flavor_source)
    finally:
        source_utils.set_custom_source_root(None)


def _check_flavor_source(validate_flavor_source: Any) -> None:

    _, flavor = validate_flavor_source(
        BUILD_ACCOUNT_FLAVOR_SOURCE, StackComponentType.IMAGE_BUILDER
    )
    assert isinstance(flavor, GCPBuildAccountImageBuilderFlavor)
    assert flavor.name == BUILD_ACCOUNT_FLAVOR
    assert flavor.implementation_class is GCPBuildAccountImageBuilder
    needs = flavor.service_connector_requirements
    assert needs is not None
    assert (needs.connector_type, needs.resource_type) == ("gcp", "gcp-generic")
    assert "service_account" in flavor.config_schema["required"]


def test_images_carry_the_light_part_and_zenml_s_gcp_requirements_only() -> None:
    """Images get ZenML's gcp list plus one line of ours: the light part at this version, no
    extras (0.1 put the whole deploy tool, Pulumi included, into every image)."""
    from zenml.integrations.gcp import GcpIntegration

    from zenml_gcp_gitops import __version__

    reqs = make_builder().requirements
    assert reqs - set(GcpIntegration.get_requirements()) == {f"zenml-gcp-gitops=={__version__}"}


def test_the_old_import_path_still_loads_the_flavor(zenml_source_root: Path) -> None:
    """Servers registered by 0.1 hold `zenml_gcp_gitops.image_builder....`."""
    from zenml.stack.flavor import validate_flavor_source

    from zenml_gcp_gitops.flavors import LEGACY_FLAVOR_SOURCES

    for source in LEGACY_FLAVOR_SOURCES:
        _, flavor = validate_flavor_source(source, StackComponentType.IMAGE_BUILDER)
        assert isinstance(flavor, GCPBuildAccountImageBuilderFlavor)
