"""Plausible provider outputs for GCP/random resources under the fake engine.

Inputs echo back as outputs (as the GCP provider mostly does), plus the computed fields the
program exports: ids, emails, IPs, endpoints, CA certificates, generated passwords.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pulumi

PROJECT_NUMBER = "123456789012"
FAKE_PEM = "-----BEGIN CERTIFICATE-----\nMIIFAKE\n-----END CERTIFICATE-----\n"


def _ip(name: str, prefix: str) -> str:
    h = int(hashlib.sha256(name.encode()).hexdigest(), 16)
    return f"{prefix}.{h % 200 + 10}"


class GcpMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        i = dict(args.inputs)
        typ, name = args.typ, args.name
        project = i.get("project", "fake-project")
        region = i.get("region") or i.get("location") or "europe-west4"
        out: dict[str, Any] = {**i}
        out.setdefault("name", name)
        out["selfLink"] = f"https://www.googleapis.com/fake/{typ}/{out['name']}"
        rid = f"{name}-id"
        if typ.startswith("gcp:serviceaccount/account:"):
            out["email"] = f"{i.get('accountId', name)}@{project}.iam.gserviceaccount.com"
            out["member"] = f"serviceAccount:{out['email']}"
            rid = out["email"]
        elif typ.startswith("gcp:serviceaccount/key:"):
            out["privateKey"] = base64.b64encode(b'{"type": "service_account"}').decode()
        elif typ.startswith("gcp:container/cluster:"):
            out["endpoint"] = _ip(name, "34.90.0")
            out["masterAuth"] = {
                "clusterCaCertificate": base64.b64encode(FAKE_PEM.encode()).decode()
            }
            out["controlPlaneEndpointsConfig"] = {
                "dnsEndpointConfig": {
                    "endpoint": f"gke-{name}.{region}.gke.goog",
                    "allowExternalTraffic": True,
                },
                "ipEndpointsConfig": {"enabled": False},
            }
        elif typ.startswith("gcp:sql/databaseInstance:"):
            out["privateIpAddress"] = _ip(name, "10.100.0")
            out["firstIpAddress"] = out["privateIpAddress"]
            out["connectionName"] = f"{project}:{region}:{out['name']}"
            out["serverCaCerts"] = [{"cert": FAKE_PEM}]
        elif typ.startswith(("gcp:compute/globalAddress:", "gcp:compute/address:")):
            out["address"] = _ip(name, "34.120.0")
        elif typ.startswith("gcp:iam/workloadIdentityPool:"):
            out["name"] = (
                f"projects/{PROJECT_NUMBER}/locations/global/workloadIdentityPools/{i.get('workloadIdentityPoolId', name)}"
            )
        elif typ.startswith("gcp:iam/workloadIdentityPoolProvider:"):
            out["name"] = (
                f"projects/{PROJECT_NUMBER}/locations/global/workloadIdentityPools/"
                f"{i.get('workloadIdentityPoolId', 'pool')}/providers/{i.get('workloadIdentityPoolProviderId', name)}"
            )
        elif typ.startswith("gcp:projects/serviceIdentity:"):
            agent = "gcp-sa-" + str(i.get("service", "x")).split(".")[0]
            out["email"] = f"service-{PROJECT_NUMBER}@{agent}.iam.gserviceaccount.com"
            out["member"] = f"serviceAccount:{out['email']}"
        elif typ.startswith("gcp:kms/cryptoKey:"):
            rid = f"{i.get('keyRing', 'ring')}/cryptoKeys/{out['name']}"
        elif typ.startswith("gcp:secretmanager/secret:"):
            out["name"] = f"projects/{PROJECT_NUMBER}/secrets/{i.get('secretId', name)}"
        elif typ.startswith("gcp:monitoring/uptimeCheckConfig:"):
            slug = str(i.get("displayName", name)).lower().replace(" ", "-")
            out["uptimeCheckId"] = f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
            rid = out["name"] = f"projects/{project}/uptimeCheckConfigs/{out['uptimeCheckId']}"
        elif typ.startswith("gcp:monitoring/dashboard:"):
            rid = f"projects/{PROJECT_NUMBER}/dashboards/{hashlib.sha256(name.encode()).hexdigest()[:12]}"
        elif typ.startswith("random:index/randomPassword:"):
            out["result"] = "pw-" + hashlib.sha256(name.encode()).hexdigest()[:20]
            out["bcryptHash"] = "$2a$10$" + hashlib.sha256(name.encode()).hexdigest()[:40]
        elif typ.startswith("random:index/randomId:"):
            out["hex"] = hashlib.sha256(name.encode()).hexdigest()[:16]
            out["b64Url"] = out["hex"]
        elif typ.startswith("random:index/randomString:"):
            out["result"] = hashlib.sha256(name.encode()).hexdigest()[: int(i.get("length", 16))]
        return rid, out

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[Any]] | dict[str, Any]:
        if args.token == "gcp:organizations/getProject:getProject":
            return {
                "number": PROJECT_NUMBER,
                "projectId": args.args.get("projectId", "fake-project"),
            }
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":
            return {"project": "fake-project", "region": "europe-west4", "accessToken": "x"}
        return {}
