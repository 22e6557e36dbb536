"""A Cloud Build image builder whose builds run as a named service account.

ZenML's `gcp` image builder submits builds without an account, so they run as the project's
default build account, which holds Editor in many projects: anyone allowed to submit a
build could then act as Editor. This flavor is ZenML's builder plus two fields on every
build: `service_account` (the stack's `<name>-build` account, which may only push to the
stack's repository, read build contexts and write logs) and the logging mode that Cloud
Build requires whenever a build names its own account.

ZenML imports this module wherever it loads the stack (clients, orchestrator and step
pods), so the flavor adds the light part of this package (`zenml-gcp-gitops==VERSION`, no
extras) to the images it builds; its dependencies are ZenML's `gcp` integration's own.
`register` registers it on the server like `zenml flavor register` does.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

from google.cloud.devtools import cloudbuild_v1
from pydantic import field_validator
from zenml.integrations.gcp.flavors.gcp_image_builder_flavor import (
    GCPImageBuilderConfig,
    GCPImageBuilderFlavor,
)
from zenml.integrations.gcp.image_builders.gcp_image_builder import GCPImageBuilder

from . import BUILD_ACCOUNT_FLAVOR, pipeline_requirement

if TYPE_CHECKING:
    from zenml.config.docker_settings import DockerBuildOptions
    from zenml.image_builders import BaseImageBuilderConfig

_SA_EMAIL = re.compile(
    r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@([a-z][a-z0-9-]{4,28}[a-z0-9])\.iam\.gserviceaccount\.com$"
)
# With a user-specified account, Cloud Build refuses builds that would log to its default
# bucket; Cloud Logging only needs roles/logging.logWriter on the account.
# (built through the enum class: the stubs type a bare member as int)
_Mode = cloudbuild_v1.BuildOptions.LoggingMode
LOGGING = _Mode(_Mode.CLOUD_LOGGING_ONLY)


class GCPBuildAccountImageBuilderConfig(GCPImageBuilderConfig):
    """ZenML's GCP image builder settings plus the account every build runs as.

    Attributes:
        service_account: email of a user-managed service account in the build's project.
    """

    service_account: str

    @field_validator("service_account")
    @classmethod
    def _email(cls, v: str) -> str:
        v = v.strip()
        if not _SA_EMAIL.match(v):
            raise ValueError(
                f"'{v}' is not a user-managed service account email "
                "(NAME@PROJECT.iam.gserviceaccount.com)"
            )
        return v

    @property
    def service_account_resource(self) -> str:
        """The build's `service_account` field: projects/PROJECT/serviceAccounts/EMAIL."""
        match = _SA_EMAIL.match(self.service_account)
        assert match is not None  # checked by the validator
        return f"projects/{match.group(1)}/serviceAccounts/{self.service_account}"


class GCPBuildAccountImageBuilder(GCPImageBuilder):
    """ZenML's Cloud Build image builder; every build runs as the configured account."""

    @property
    def config(self) -> GCPBuildAccountImageBuilderConfig:
        return cast(GCPBuildAccountImageBuilderConfig, self._config)

    @property
    def requirements(self) -> set[str]:
        """ZenML's GCP requirements plus the light part of this package, which defines the
        flavor the pods load (no extras: nothing deploy-time goes into an image)."""
        from zenml.integrations.utils import get_requirements_for_module

        return {*get_requirements_for_module(GCPImageBuilder.__module__), pipeline_requirement()}

    def _configure_cloud_build(
        self,
        image_name: str,
        cloud_build_context: str,
        build_options: DockerBuildOptions | None = None,
    ) -> cloudbuild_v1.Build:
        build: cloudbuild_v1.Build = super()._configure_cloud_build(
            image_name=image_name,
            cloud_build_context=cloud_build_context,
            build_options=build_options,
        )
        build.service_account = self.config.service_account_resource
        options = build.options or cloudbuild_v1.BuildOptions()
        options.logging = LOGGING
        build.options = options
        return build


class GCPBuildAccountImageBuilderFlavor(GCPImageBuilderFlavor):
    """The `gcp-build-account` image builder flavor."""

    @property
    def name(self) -> str:
        return BUILD_ACCOUNT_FLAVOR

    @property
    def display_name(self) -> str:
        return "GCP (dedicated build account)"

    @property
    def docs_url(self) -> str | None:
        return None

    @property
    def sdk_docs_url(self) -> str | None:
        return None

    @property
    def config_class(self) -> type[BaseImageBuilderConfig]:
        return GCPBuildAccountImageBuilderConfig

    @property
    def implementation_class(self) -> type[GCPImageBuilder]:
        return GCPBuildAccountImageBuilder
