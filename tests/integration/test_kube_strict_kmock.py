"""The product's Kubernetes layer (gitops/kube.py) on a fake API server that behaves like a real
one where the product must cope: a CRD's kind is served only once the CRD is installed, and a
delete cascades to what the deleted object holds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from tests.fakes.kube_kmock import FakeCluster
from zenml_gcp_gitops.errors import ServiceUnavailable
from zenml_gcp_gitops.gitops.kube import Kube

ARGO = "argoproj.io/v1alpha1"


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    c = FakeCluster(crds_installed=False).start()
    yield c
    c.stop()


def test_wait_for_kind_returns_once_the_crd_is_installed(cluster: FakeCluster) -> None:
    kube = Kube(cluster.api_client())
    polls: list[float] = []

    def sleep(s: float) -> None:  # the chart's controller installs the CRD on the 2nd poll
        polls.append(s)
        if len(polls) == 2:
            cluster.install_crd("Application")

    kube.wait_for_kind(
        ARGO, "Application", timeout=60, poll=5, sleep=sleep, clock=lambda: 5.0 * len(polls)
    )
    assert len(polls) == 2
    assert kube.get(ARGO, "Application", "nope", "argocd") is None


def test_a_kind_served_by_an_earlier_cluster_at_the_same_address_is_not_assumed() -> None:
    # destroy + deploy can put a new API server behind the old address; what the last run
    # discovered there must not stand in for asking the new one
    c = FakeCluster(crds_installed=True).start()
    try:
        assert Kube(c.api_client()).resource(ARGO, "Application").kind == "Application"
        c.uninstall_crd("Application")
        polls: list[float] = []
        with pytest.raises(ServiceUnavailable, match="does not serve Application"):
            Kube(c.api_client()).wait_for_kind(
                ARGO,
                "Application",
                timeout=10,
                poll=5,
                sleep=polls.append,
                clock=lambda: 5.0 * len(polls),
            )
        assert polls == [5, 5]
    finally:
        c.stop()


def test_wait_for_kind_names_the_missing_kind_when_it_never_comes(cluster: FakeCluster) -> None:
    kube = Kube(cluster.api_client())
    t = [0.0]

    def sleep(s: float) -> None:
        t[0] += s

    with pytest.raises(
        ServiceUnavailable, match=r"does not serve Application \(argoproj.io/v1alpha1\) after 30s"
    ):
        kube.wait_for_kind(ARGO, "Application", timeout=30, poll=5, sleep=sleep, clock=lambda: t[0])


def test_discovery_is_read_again_for_a_kind_installed_a_moment_ago(cluster: FakeCluster) -> None:
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        if len(slept) == 2:  # established only after the first backoff
            cluster.install_crd("Application")

    kube = Kube(cluster.api_client(), retries=5, retry_wait=2.0, sleep=sleep)
    with pytest.raises(ResourceNotFoundError):
        kube.resource(ARGO, "Application")  # without wait: one re-read, then the error
    slept.clear()
    assert kube.resource(ARGO, "Application", wait=True).kind == "Application"
    assert slept == [0, 2.0]


def test_a_crd_the_product_applies_makes_its_kind_served(cluster: FakeCluster) -> None:
    kube = Kube(cluster.api_client(), sleep=lambda s: None)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "applications.argoproj.io"},
        "spec": {
            "group": "argoproj.io",
            "names": {"kind": "Application", "plural": "applications"},
            "scope": "Namespaced",
            "versions": [{"name": "v1alpha1", "served": True, "storage": True}],
        },
    }
    assert not cluster.served("Application")
    kube.apply(crd)
    assert cluster.served("Application")
    assert kube.resource(ARGO, "Application", wait=True).namespaced


def test_deleting_a_namespace_deletes_what_is_in_it_and_what_it_owns(cluster: FakeCluster) -> None:
    kube = Kube(cluster.api_client(), sleep=lambda s: None)
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "zenml"}})
    kube.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "zenml"}}
    )
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "srv"}
    cluster.put(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "srv", "namespace": "other"},
        }
    )
    cluster.put({"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "srv-1", "namespace": "other", "ownerReferences": [owner]}})  # fmt: skip
    assert kube.delete("v1", "Namespace", "zenml")
    assert cluster.get("ConfigMap", "cfg", "zenml") is None
    assert kube.delete("apps/v1", "Deployment", "srv", "other")
    assert cluster.get("Pod", "srv-1", "other") is None


def test_a_stale_resource_version_is_refused_and_apply_sends_none() -> None:
    """A write carrying the resourceVersion of an older read is refused (409), as on a real
    API server; the product's apply of an object it read earlier must still go through and
    keep what a controller changed meanwhile."""
    from kubernetes.dynamic.exceptions import ConflictError

    c = FakeCluster().start()
    try:
        kube = Kube(c.api_client(), sleep=lambda s: None)
        kube.apply({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "cm", "namespace": "zenml"}, "data": {"a": "1"}})  # fmt: skip
        read = kube.get("v1", "ConfigMap", "cm", "zenml")
        assert read is not None and read["metadata"]["resourceVersion"]
        c.patch("ConfigMap", "cm", "zenml", {"metadata": {"labels": {"by": "controller"}}})
        c.patch("ConfigMap", "cm", "zenml", {"metadata": {"resourceVersion": "999999"}})
        stale = {**read, "data": {"a": "2"}}
        res = kube.resource("v1", "ConfigMap")
        with pytest.raises(ConflictError):  # a write made from the old read
            res.patch(body=stale, name="cm", namespace="zenml",
                      content_type="application/merge-patch+json")  # fmt: skip
        kube.apply(stale)
        now = c.get("ConfigMap", "cm", "zenml")
        assert now is not None and now["data"] == {"a": "2"}
        assert now["metadata"]["labels"] == {"by": "controller"}
    finally:
        c.stop()
