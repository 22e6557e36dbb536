"""Cloud Monitoring: uptime checks on both servers, alert policies, a channel and a dashboard.

Nothing here watches from inside the cluster: the checks run from Google's probes on the
public hostnames, so they see what users see (DNS, the load balancer, the certificate).
Every policy carries a documentation text that says what to look at first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from ._base import Component

# The servers' unauthenticated health endpoints (MLflow's auth app leaves /health open).
HEALTH_PATH = "/health"
# Uptime checks need at least three probe regions; a server is down when more than one fails.
PROBE_REGIONS: tuple[str, ...] = ("USA", "EUROPE", "ASIA_PACIFIC")
CHECK_PERIOD_S = 60
CERT_WARN_DAYS = 14
SQL_DISK_LIMIT = 0.8
SQL_BUSY_LIMIT = 0.9
SQL_BUSY_FOR_S = 900
SERVER_DOWN_FOR_S = 300
# The GKE metrics the dashboard charts for the servers' pods.
SERVER_NAMESPACES: tuple[str, ...] = ("zenml", "mlflow")

UPTIME_PASSED = "monitoring.googleapis.com/uptime_check/check_passed"
UPTIME_CERT = "monitoring.googleapis.com/uptime_check/time_until_ssl_cert_expires"
UPTIME_LATENCY = "monitoring.googleapis.com/uptime_check/request_latency"


@dataclass(frozen=True)
class MonitoringArgs:
    project: str
    deployment: str  # the config's name: in every display name and command
    region: str
    hosts: dict[str, pulumi.Output[str]]  # zenml / mlflow -> public hostname
    check_names: dict[str, str]
    alert_prefix: str
    dashboard: str
    channel_name: str
    alert_email: str | None
    sql_instance: str
    cluster: str
    labels: dict[str, str]
    # `pause`: Cloud Monitoring cannot disable an uptime check, so the checks (and the
    # policies built on their IDs) are left out; the other policies stay, disabled.
    paused: bool = False


def _status_cmd(args: MonitoringArgs) -> str:
    return (
        f"`zenml-gcp-gitops status --project {args.project} --region {args.region} "
        f"--name {args.deployment}`"
    )


def _docs(text: str) -> gcp.monitoring.AlertPolicyDocumentationArgs:
    return gcp.monitoring.AlertPolicyDocumentationArgs(content=text, mime_type="text/markdown")


def _threshold(
    display: str,
    filter_: pulumi.Input[str],
    *,
    comparison: str,
    value: float,
    duration_s: int,
    aligner: str = "ALIGN_MEAN",
    reducer: str | None = None,
    group_by: tuple[str, ...] = (),
    period_s: int = 300,
) -> gcp.monitoring.AlertPolicyConditionArgs:
    agg = gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
        alignment_period=f"{period_s}s",
        per_series_aligner=aligner,
        cross_series_reducer=reducer,
        group_by_fields=list(group_by) or None,
    )
    return gcp.monitoring.AlertPolicyConditionArgs(
        display_name=display,
        condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
            filter=filter_,
            comparison=comparison,
            threshold_value=value,
            duration=f"{duration_s}s",
            aggregations=[agg],
            trigger=gcp.monitoring.AlertPolicyConditionConditionThresholdTriggerArgs(count=1),
        ),
    )


def sql_filter(metric: str, project: str, instance: str) -> str:
    return (
        f'metric.type="cloudsql.googleapis.com/database/{metric}" '
        f'AND resource.type="cloudsql_database" '
        f'AND resource.label.database_id="{project}:{instance}"'
    )


def uptime_filter(metric: str, check_id: str) -> str:
    return (
        f'metric.type="{metric}" AND resource.type="uptime_url" '
        f'AND metric.label.check_id="{check_id}"'
    )


def backup_log_filter(project: str, instance: str) -> str:
    """Cloud SQL writes one System Event audit entry per automated backup window."""
    return (
        f'logName="projects/{project}/logs/cloudaudit.googleapis.com%2Fsystem_event" '
        f'AND protoPayload.methodName="cloudsql.instances.automatedBackup" '
        f'AND resource.type="cloudsql_database" '
        f'AND resource.labels.database_id="{project}:{instance}" '
        f'AND protoPayload.metadata.windowStatus:("FAILED" OR "OVERDUE")'
    )


def dashboard_json(
    title: str, project: str, instance: str, cluster: str, check_ids: dict[str, str]
) -> str:
    """A mosaic dashboard (Monitoring API v1 `Dashboard`): servers, pods, Cloud SQL."""

    def series(filter_: str, aligner: str, reducer: str, group_by: list[str]) -> dict[str, Any]:
        return {
            "timeSeriesQuery": {
                "timeSeriesFilter": {
                    "filter": filter_,
                    "aggregation": {
                        "alignmentPeriod": "60s",
                        "perSeriesAligner": aligner,
                        "crossSeriesReducer": reducer,
                        "groupByFields": group_by,
                    },
                }
            },
            "plotType": "LINE",
        }

    def chart(name: str, sets: list[dict[str, Any]], unit: str) -> dict[str, Any]:
        return {"title": name, "xyChart": {"dataSets": sets, "yAxis": {"label": unit}}}

    pods = (
        f'resource.type="k8s_container" AND resource.label.cluster_name="{cluster}" '
        f"AND resource.label.namespace_name=one_of("
        + ", ".join(f'"{ns}"' for ns in SERVER_NAMESPACES)
        + ")"
    )
    widgets = [
        chart(
            "Servers: health checks passed",
            [
                series(uptime_filter(UPTIME_PASSED, cid), "ALIGN_FRACTION_TRUE", "REDUCE_MEAN", [])
                for cid in check_ids.values()
            ],
            "fraction",
        ),
        chart(
            "Servers: response latency",
            [
                series(uptime_filter(UPTIME_LATENCY, cid), "ALIGN_MEAN", "REDUCE_MEAN", [])
                for cid in check_ids.values()
            ],
            "ms",
        ),
        chart(
            "Server pods: CPU against requests",
            [
                series(
                    f'metric.type="kubernetes.io/container/cpu/request_utilization" AND {pods}',
                    "ALIGN_MEAN",
                    "REDUCE_MAX",
                    ["resource.label.namespace_name"],
                )
            ],
            "fraction",
        ),
        chart(
            "Server pods: memory against requests",
            [
                series(
                    f'metric.type="kubernetes.io/container/memory/request_utilization" AND {pods}',
                    "ALIGN_MEAN",
                    "REDUCE_MAX",
                    ["resource.label.namespace_name"],
                )
            ],
            "fraction",
        ),
        chart(
            "Server pods: restarts",
            [
                series(
                    f'metric.type="kubernetes.io/container/restart_count" AND {pods}',
                    "ALIGN_DELTA",
                    "REDUCE_SUM",
                    ["resource.label.namespace_name"],
                )
            ],
            "restarts",
        ),
    ]
    for metric, name, unit in (
        ("cpu/utilization", "Cloud SQL: CPU", "fraction"),
        ("memory/utilization", "Cloud SQL: memory", "fraction"),
        ("disk/utilization", "Cloud SQL: disk", "fraction"),
        ("network/connections", "Cloud SQL: connections", "connections"),
    ):
        widgets.append(
            chart(
                name,
                [series(sql_filter(metric, project, instance), "ALIGN_MEAN", "REDUCE_MEAN", [])],
                unit,
            )
        )
    width, height, per_row = 24, 16, 2
    tiles = [
        {
            "xPos": (i % per_row) * width,
            "yPos": (i // per_row) * height,
            "width": width,
            "height": height,
            "widget": w,
        }
        for i, w in enumerate(widgets)
    ]
    return json.dumps(
        {"displayName": title, "mosaicLayout": {"columns": width * per_row, "tiles": tiles}},
        sort_keys=True,
    )


class Monitoring(Component):
    """Uptime checks, alert policies (each says what to do first), a channel, a dashboard."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Monitoring", name, opts)
        status = _status_cmd(args)
        self.checks = {
            key: gcp.monitoring.UptimeCheckConfig(
                f"uptime-{key}",
                project=args.project,
                display_name=args.check_names[key],
                period=f"{CHECK_PERIOD_S}s",
                timeout="10s",
                selected_regions=list(PROBE_REGIONS),
                http_check=gcp.monitoring.UptimeCheckConfigHttpCheckArgs(
                    path=HEALTH_PATH,
                    port=443,
                    request_method="GET",
                    use_ssl=True,
                    validate_ssl=True,  # an invalid or expired certificate fails the check
                ),
                monitored_resource=gcp.monitoring.UptimeCheckConfigMonitoredResourceArgs(
                    type="uptime_url", labels={"project_id": args.project, "host": host}
                ),
                user_labels=args.labels,
                opts=self.child(),
            )
            for key, host in args.hosts.items()
            if not args.paused
        }
        check_ids = {k: c.uptime_check_id for k, c in self.checks.items()}

        self.channel: gcp.monitoring.NotificationChannel | None = None
        if args.alert_email:
            self.channel = gcp.monitoring.NotificationChannel(
                "alert-email",
                project=args.project,
                display_name=args.channel_name,
                type="email",
                labels={"email_address": args.alert_email},
                user_labels=args.labels,
                opts=self.child(),
            )
        channels = [self.channel.id] if self.channel is not None else []

        def policy(
            key: str,
            display: str,
            conditions: list[gcp.monitoring.AlertPolicyConditionArgs],
            docs: str,
            strategy: gcp.monitoring.AlertPolicyAlertStrategyArgs | None = None,
        ) -> gcp.monitoring.AlertPolicy:
            return gcp.monitoring.AlertPolicy(
                f"alert-{key}",
                project=args.project,
                display_name=f"{args.alert_prefix}{display}",
                combiner="OR",
                conditions=conditions,
                documentation=_docs(docs),
                notification_channels=channels,
                alert_strategy=strategy,
                user_labels=args.labels,
                severity="CRITICAL" if key.endswith("down") else "WARNING",
                enabled=not args.paused,
                opts=self.child(),
            )

        self.policies: dict[str, gcp.monitoring.AlertPolicy] = {}
        for key, cid in check_ids.items():
            server = "ZenML" if key == "zenml" else "MLflow"
            ns = "zenml" if key == "zenml" else "mlflow"
            self.policies[f"{key}-down"] = policy(
                f"{key}-down",
                f"{server} server down",
                [
                    _threshold(
                        f"{server} /health fails from more than one region",
                        cid.apply(lambda c: uptime_filter(UPTIME_PASSED, c)),
                        comparison="COMPARISON_GT",
                        value=1,
                        duration_s=SERVER_DOWN_FOR_S,
                        aligner="ALIGN_NEXT_OLDER",
                        reducer="REDUCE_COUNT_FALSE",
                        group_by=("resource.label.host",),
                        period_s=CHECK_PERIOD_S * 5,
                    )
                ],
                f"The {server} server's `{HEALTH_PATH}` has failed from several regions for "
                f"{SERVER_DOWN_FOR_S // 60} minutes.\n\nFirst: {status} shows Argo CD's view "
                f"of each app and whether the servers answer. Then "
                f"`kubectl -n {ns} get pods` and `kubectl -n {ns} logs deploy/<name>` "
                "(a crash loop, a failed database connection), and the Gateway's address "
                "(`kubectl -n gateway get gateway`). The runbook is docs/operations.md.",
            )
        if check_ids:  # the checks are left out while paused
            self.policies["certificate"] = policy(
                "certificate",
                "TLS certificate expires soon",
                [
                    _threshold(
                        f"certificate of {key} expires in < {CERT_WARN_DAYS} days",
                        cid.apply(lambda c: uptime_filter(UPTIME_CERT, c)),
                        comparison="COMPARISON_LT",
                        value=CERT_WARN_DAYS,
                        duration_s=600,
                        aligner="ALIGN_NEXT_OLDER",
                        reducer="REDUCE_MIN",
                        group_by=("metric.label.check_id",),
                        period_s=1200,
                    )
                    for key, cid in check_ids.items()
                ],
                f"A server's certificate expires in under {CERT_WARN_DAYS} days, so cert-manager "
                "has not renewed it (it renews 30 days ahead).\n\nFirst: "
                "`kubectl get certificates,certificaterequests,challenges -A` and "
                "`kubectl -n cert-manager logs deploy/cert-manager`; an HTTP-01 challenge needs "
                "the hostname to reach the Gateway, a DNS-01 challenge needs the Cloud DNS grant.",
            )
        sql = args.sql_instance
        self.policies["sql-disk"] = policy(
            "sql-disk",
            "Cloud SQL disk above 80 %",
            [
                _threshold(
                    "disk utilization > 80 %",
                    sql_filter("disk/utilization", args.project, sql),
                    comparison="COMPARISON_GT",
                    value=SQL_DISK_LIMIT,
                    duration_s=300,
                )
            ],
            f"The Cloud SQL instance `{sql}` uses over {SQL_DISK_LIMIT:.0%} of its disk. "
            "Automatic storage increase grows it, at a cost, and it never shrinks.\n\nFirst: "
            f"`gcloud sql instances describe {sql} --project {args.project}` (disk size, "
            "binary logs kept), then which database grew (ZenML's runs, MLflow's metrics).",
        )
        self.policies["sql-busy"] = policy(
            "sql-busy",
            "Cloud SQL CPU or memory high",
            [
                _threshold(
                    f"{metric} > {SQL_BUSY_LIMIT:.0%} for {SQL_BUSY_FOR_S // 60} min",
                    sql_filter(f"{metric}/utilization", args.project, sql),
                    comparison="COMPARISON_GT",
                    value=SQL_BUSY_LIMIT,
                    duration_s=SQL_BUSY_FOR_S,
                )
                for metric in ("cpu", "memory")
            ],
            f"The Cloud SQL instance `{sql}` has been above {SQL_BUSY_LIMIT:.0%} CPU or memory "
            f"for {SQL_BUSY_FOR_S // 60} minutes; the servers slow down or fail.\n\nFirst: "
            "Query Insights in the console for the slow queries; if the load is real, raise "
            "`sql_tier` and run `deploy` (a tier change restarts the instance).",
        )
        self.policies["backup-failed"] = policy(
            "backup-failed",
            "Cloud SQL automated backup failed",
            [
                gcp.monitoring.AlertPolicyConditionArgs(
                    display_name="an automated backup window failed or is overdue",
                    condition_matched_log=gcp.monitoring.AlertPolicyConditionConditionMatchedLogArgs(
                        filter=backup_log_filter(args.project, sql)
                    ),
                )
            ],
            f"An automated backup of `{sql}` failed or did not run in its window, so the "
            "newest restore point is older than a day.\n\nFirst: "
            f"`gcloud sql backups list --instance {sql} --project {args.project}` (the error "
            "of the failed run), then take one now: `zenml-gcp-gitops backup`.",
            # a log-based condition notifies at most this often
            gcp.monitoring.AlertPolicyAlertStrategyArgs(
                notification_rate_limit=gcp.monitoring.AlertPolicyAlertStrategyNotificationRateLimitArgs(
                    period="3600s"
                ),
                auto_close="86400s",
            ),
        )

        self.dashboard = gcp.monitoring.Dashboard(
            "dashboard",
            project=args.project,
            dashboard_json=pulumi.Output.all(**check_ids).apply(
                # Output.all() of no checks (paused) resolves to a list
                lambda ids: dashboard_json(
                    args.dashboard, args.project, sql, args.cluster, dict(ids or {})
                )
            ),
            opts=self.child(),
        )
        self.dashboard_url = self.dashboard.id.apply(
            lambda i: (
                "https://console.cloud.google.com/monitoring/dashboards/builder/"
                f"{i.rsplit('/', 1)[-1]}?project={args.project}"
            )
        )
        self.register_outputs(
            {
                "uptime_checks": check_ids,
                "dashboard": self.dashboard.id,
                "notified": args.alert_email is not None,
            }
        )
