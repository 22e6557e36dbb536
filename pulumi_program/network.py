"""The VPC: nodes subnet with pod/service ranges, NAT egress, Cloud SQL peering, ingress IP."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from zenml_gcp_gitops.config import PROXY_CIDR, PSA_PREFIX_LENGTH

from ._base import Component

# RFC 1918 ranges sized for one Autopilot cluster; fixed so plans are reproducible.
NODES_CIDR = "10.10.0.0/20"
PODS_CIDR = "10.16.0.0/14"
SERVICES_CIDR = "10.20.0.0/20"
FLOW_LOG_INTERVAL = "INTERVAL_1_MIN"


@dataclass(frozen=True)
class NetworkArgs:
    project: str
    region: str
    network: str
    subnet: str
    pods_range: str
    services_range: str
    proxy_subnet: str | None  # None: no regional gateway (ingress-nginx uses an L4 LB)
    router: str
    nat: str
    psa_range: str
    ingress_ip: str
    labels: dict[str, str]
    flow_log_sampling: float = 0.5  # 0: no VPC flow logs on the nodes subnet


class Network(Component):
    """Custom-mode VPC for private GKE nodes and private-IP Cloud SQL.

    The ingress address is a *regional* EXTERNAL address: the GKE GatewayClass
    `gke-l7-regional-external-managed` (a regional external Application LB) only accepts
    regional addresses, and a LoadBalancer Service for ingress-nginx needs one too. The
    global class `gke-l7-global-external-managed` would need a global address instead.
    Regional external Application LBs run their Envoy proxies in a proxy-only subnet of
    purpose REGIONAL_MANAGED_PROXY, which is created here when the gateway is used.
    """

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Network", name, opts)
        p, r = args.project, args.region
        self.vpc = gcp.compute.Network(
            "vpc",
            name=args.network,
            project=p,
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            opts=self.child(),
        )
        self.subnet = gcp.compute.Subnetwork(
            "nodes",
            name=args.subnet,
            project=p,
            region=r,
            network=self.vpc.id,
            ip_cidr_range=NODES_CIDR,
            private_ip_google_access=True,
            # Flow logs of every node and pod connection, aggregated per minute: who talked
            # to what, after an incident. Sampling trades cost against completeness.
            log_config=(
                gcp.compute.SubnetworkLogConfigArgs(
                    aggregation_interval=FLOW_LOG_INTERVAL,
                    flow_sampling=args.flow_log_sampling,
                    metadata="INCLUDE_ALL_METADATA",
                )
                if args.flow_log_sampling > 0
                else None
            ),
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=args.pods_range, ip_cidr_range=PODS_CIDR
                ),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=args.services_range, ip_cidr_range=SERVICES_CIDR
                ),
            ],
            opts=self.child(),
        )
        self.proxy_subnet: gcp.compute.Subnetwork | None = None
        if args.proxy_subnet:
            self.proxy_subnet = gcp.compute.Subnetwork(
                "proxy-only",
                name=args.proxy_subnet,
                project=p,
                region=r,
                network=self.vpc.id,
                ip_cidr_range=PROXY_CIDR,
                purpose="REGIONAL_MANAGED_PROXY",
                role="ACTIVE",
                opts=self.child(),
            )
        self.router = gcp.compute.Router(
            "router", name=args.router, project=p, region=r, network=self.vpc.id, opts=self.child()
        )
        # Private nodes have no external IPs: NAT gives them egress (image pulls, pip, APIs).
        self.nat = gcp.compute.RouterNat(
            "nat",
            name=args.nat,
            project=p,
            region=r,
            router=self.router.name,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
            subnetworks=[
                gcp.compute.RouterNatSubnetworkArgs(
                    name=self.subnet.id, source_ip_ranges_to_nats=["ALL_IP_RANGES"]
                )
            ],
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=self.child(),
        )
        self.psa_range = gcp.compute.GlobalAddress(
            "psa-range",
            name=args.psa_range,
            project=p,
            network=self.vpc.id,
            purpose="VPC_PEERING",
            address_type="INTERNAL",
            prefix_length=PSA_PREFIX_LENGTH,
            opts=self.child(),
        )
        # ABANDON: Cloud SQL keeps the peering busy for days after an instance is deleted,
        # so removing it would fail every destroy; it goes away with the VPC.
        self.psa_connection = gcp.servicenetworking.Connection(
            "psa",
            network=self.vpc.id,
            service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[self.psa_range.name],
            deletion_policy="ABANDON",
            opts=self.child(),
        )
        self.ingress_address = gcp.compute.Address(
            "ingress-ip",
            name=args.ingress_ip,
            project=p,
            region=r,
            address_type="EXTERNAL",
            network_tier="PREMIUM",
            labels=args.labels,
            opts=self.child(),
        )
        # the range Cloud SQL takes its private IP from: known before the instance exists
        self.psa_cidr: pulumi.Output[str] = pulumi.Output.all(
            self.psa_range.address, self.psa_range.prefix_length
        ).apply(lambda v: f"{v[0]}/{int(v[1] if v[1] is not None else PSA_PREFIX_LENGTH)}")
        self.network_name: pulumi.Output[str] = self.vpc.name
        self.subnet_name: pulumi.Output[str] = self.subnet.name
        self.ingress_ip: pulumi.Output[str] = self.ingress_address.address
        self.register_outputs(
            {
                "network": self.network_name,
                "subnet": self.subnet_name,
                "ingress_ip": self.ingress_ip,
                "psa_cidr": self.psa_cidr,
            }
        )
