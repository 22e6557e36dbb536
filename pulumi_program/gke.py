"""GKE Autopilot: private nodes, DNS control-plane endpoint, release channel, Gateway API."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from ._base import Component, required

RELEASE_CHANNEL = "REGULAR"


@dataclass(frozen=True)
class GkeArgs:
    project: str
    region: str
    cluster: str
    network: pulumi.Input[str]
    subnet: pulumi.Input[str]
    pods_range: str
    services_range: str
    authorized_networks: tuple[str, ...]
    deletion_protection: bool
    node_service_account: str  # account ID of the nodes' own least-privilege identity
    repository: pulumi.Input[str]  # Artifact Registry repository the nodes pull images from
    labels: dict[str, str]
    binary_authorization: bool = False  # enforce the project's Binary Authorization policy


class Gke(Component):
    """A regional Autopilot cluster whose control plane is never open to the internet.

    Clients reach it through the DNS-based endpoint, which is authorised by IAM rather than
    by source IP. The IP endpoint stays private unless `authorized_networks` is set, and
    then only those CIDRs reach its public address (Google's own ranges are excluded).
    Version upgrades follow the release channel instead of a pinned version prefix.
    """

    def __init__(self, name: str, args: GkeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Gke", name, opts)
        public_ip = bool(args.authorized_networks)
        # Nodes get their own account instead of the Compute default one (often Editor):
        # it may write logs and metrics and pull images from this stack's repository only.
        self.node_account = gcp.serviceaccount.Account(
            "nodes",
            account_id=args.node_service_account,
            project=args.project,
            display_name="zenml-gcp-gitops GKE nodes",
            opts=self.child(),
        )
        node_member = self.node_account.email.apply(lambda e: f"serviceAccount:{e}")
        node_role = gcp.projects.IAMMember(
            "nodes-default-role",
            project=args.project,
            role="roles/container.defaultNodeServiceAccount",
            member=node_member,
            opts=self.child(),
        )
        pull = gcp.artifactregistry.RepositoryIamMember(
            "nodes-pull-images",
            project=args.project,
            location=args.region,
            repository=args.repository,
            role="roles/artifactregistry.reader",
            member=node_member,
            opts=self.child(),
        )
        self.cluster = gcp.container.Cluster(
            "cluster",
            name=args.cluster,
            project=args.project,
            location=args.region,
            enable_autopilot=True,
            network=args.network,
            subnetwork=args.subnet,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name=args.pods_range,
                services_secondary_range_name=args.services_range,
            ),
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True,
                enable_private_endpoint=not public_ip,
            ),
            control_plane_endpoints_config=gcp.container.ClusterControlPlaneEndpointsConfigArgs(
                dns_endpoint_config=gcp.container.ClusterControlPlaneEndpointsConfigDnsEndpointConfigArgs(
                    allow_external_traffic=True,
                ),
                ip_endpoints_config=gcp.container.ClusterControlPlaneEndpointsConfigIpEndpointsConfigArgs(
                    enabled=True,
                ),
            ),
            master_authorized_networks_config=gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=[
                    gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                        cidr_block=cidr, display_name=f"authorized-{i}"
                    )
                    for i, cidr in enumerate(args.authorized_networks)
                ],
                gcp_public_cidrs_access_enabled=False,
            ),
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=RELEASE_CHANNEL),
            gateway_api_config=gcp.container.ClusterGatewayApiConfigArgs(
                channel="CHANNEL_STANDARD"
            ),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{args.project}.svc.id.goog"
            ),
            cluster_autoscaling=gcp.container.ClusterClusterAutoscalingArgs(
                auto_provisioning_defaults=gcp.container.ClusterClusterAutoscalingAutoProvisioningDefaultsArgs(
                    service_account=self.node_account.email,
                    oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                ),
            ),
            binary_authorization=(
                gcp.container.ClusterBinaryAuthorizationArgs(
                    evaluation_mode="PROJECT_SINGLETON_POLICY_ENFORCE"
                )
                if args.binary_authorization
                else None
            ),
            deletion_protection=args.deletion_protection,
            resource_labels=args.labels,
            opts=self.child([node_role, pull]),
        )
        self.cluster_name: pulumi.Output[str] = self.cluster.name
        self.location: pulumi.Output[str] = self.cluster.location
        self.endpoint: pulumi.Output[str] = self.cluster.control_plane_endpoints_config.apply(
            lambda c: required(
                required(c.dns_endpoint_config, "DNS endpoint config").endpoint, "DNS endpoint"
            )
        )
        self.ca_certificate: pulumi.Output[str] = self.cluster.master_auth.apply(
            lambda a: required(a.cluster_ca_certificate, "cluster CA certificate")
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "location": self.location,
                "endpoint": self.endpoint,
            }
        )
