"""Binary Authorization: the cluster runs only images this stack knows."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from ._base import Component


@dataclass(frozen=True)
class BinauthzArgs:
    project: str
    patterns: list[str]  # image name patterns admitted without attestation


class Binauthz(Component):
    """The project's policy: deny every image except the admitted patterns.

    Google-maintained GKE system images are admitted by the global policy
    (`globalPolicyEvaluationMode: ENABLE`). The policy is a project singleton: a second stack
    in the same project with this option on would overwrite it.
    """

    def __init__(self, name: str, args: BinauthzArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Binauthz", name, opts)
        self.policy = gcp.binaryauthorization.Policy(
            "policy",
            project=args.project,
            description="zenml-gcp-gitops: only the stack's own and pinned upstream images",
            global_policy_evaluation_mode="ENABLE",
            admission_whitelist_patterns=[
                gcp.binaryauthorization.PolicyAdmissionWhitelistPatternArgs(name_pattern=p)
                for p in args.patterns
            ],
            default_admission_rule=gcp.binaryauthorization.PolicyDefaultAdmissionRuleArgs(
                evaluation_mode="ALWAYS_DENY",
                enforcement_mode="ENFORCED_BLOCK_AND_AUDIT_LOG",
            ),
            opts=self.child(),
        )
        self.register_outputs({})
