"""The slim Pod IP → namespace index (Kind.POD_IPS) and ClusterModel.pod_namespace."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from clusterdns.sources.kube import objects as api
from clusterdns.sources.manifests import ManifestsSource
from clusterdns.sources.model import Change, ClusterModel, Kind
from clusterdns.sources.podips import PodIPIndex, ip_key
from tests.helpers.kubeapi import KubeAPIServer, pod
from tests.sources.conftest import eventually, make_source, running

IP = "10.244.1.7"


def pod_obj(
    name: str,
    namespace: str = "default",
    *,
    ip: str | None = IP,
    phase: str = "Running",
    host_network: bool = False,
    terminating: bool = False,
    ips: list[str] | None = None,
) -> api.Pod:
    data: dict[str, Any] = pod(name, namespace, ip=ip)
    data["status"]["phase"] = phase
    if ips is not None:
        data["status"]["podIPs"] = [{"ip": i} for i in ips]
    if host_network:
        data["spec"]["hostNetwork"] = True
    if terminating:
        data["metadata"]["deletionTimestamp"] = "2026-11-24T10:00:00Z"
    return msgspec.convert(data, type=api.Pod)


def test_add_and_delete() -> None:
    index = PodIPIndex()
    assert index.apply(pod_obj("a"))
    assert index.namespace_of(IP) == "default"
    assert not index.apply(pod_obj("a"))  # a status update with the same IP
    assert index.apply(pod_obj("a"), deleted=True)
    assert index.namespace_of(IP) is None and len(index) == 0


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        (("b", "other"), "other"),
        (("b", "default"), "default"),
    ],
    ids=["reused by another namespace", "reused in the same namespace"],
)
def test_reuse_delete_after_add_keeps_the_new_owner(second: tuple[str, str], expected: str) -> None:
    index = PodIPIndex()
    index.apply(pod_obj("a", "default"))
    index.apply(pod_obj(*second))  # the new Pod's IP arrives first
    assert index.namespace_of(IP) == expected
    assert not index.apply(pod_obj("a", "default"), deleted=True)  # the old Pod's late delete
    assert index.namespace_of(IP) == expected
    index.apply(pod_obj("a", "default", phase="Succeeded"))  # or a late "finished" update
    assert index.namespace_of(IP) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"phase": "Succeeded"},
        {"phase": "Failed"},
        {"terminating": True},
        {"host_network": True},
        {"ip": None},
    ],
    ids=["succeeded", "failed", "terminating", "host network", "no ip yet"],
)
def test_not_eligible(kwargs: dict[str, Any]) -> None:
    index = PodIPIndex()
    assert not index.apply(pod_obj("a", **kwargs))
    assert index.namespace_of(IP) is None


def test_finishing_releases_its_ip() -> None:
    index = PodIPIndex()
    index.apply(pod_obj("a"))
    assert index.apply(pod_obj("a", terminating=True))
    assert index.namespace_of(IP) is None


def test_dual_stack_and_text_forms() -> None:
    index = PodIPIndex()
    index.apply(pod_obj("a", ips=[IP, "fd00:0:0::7"]))
    assert index.namespace_of("fd00::7") == "default"
    assert index.namespace_of("fd00:0000::0007") == "default"
    assert index.namespace_of("not an ip") is None


def test_v4_and_v6_keys_differ() -> None:
    assert ip_key("10.0.0.1") != ip_key("::10.0.0.1")
    index = PodIPIndex()
    index.apply(pod_obj("a", ip="10.0.0.1"))
    assert index.namespace_of("::10.0.0.1") is None


def test_replace_all() -> None:
    index = PodIPIndex()
    index.apply(pod_obj("gone", ip="10.0.0.9"))
    assert index.replace_all([pod_obj("a"), pod_obj("b", "other", ip="10.0.0.2")])
    assert index.namespace_of("10.0.0.9") is None
    assert index.namespace_of("10.0.0.2") == "other"
    assert not index.replace_all([pod_obj("a"), pod_obj("b", "other", ip="10.0.0.2")])


# --- the model -----------------------------------------------------------------------------


def test_model_pod_ips_kind_keeps_no_pod_records() -> None:
    model = ClusterModel(kinds={Kind.POD_IPS})
    changes: list[Change] = []
    model.subscribe(changes.append)
    assert not model.synced
    model.replace_all(Kind.POD_IPS, [pod_obj("a")])
    assert model.synced
    assert model.pod_namespace(IP) == "default"
    assert model.pods_by_ip(IP) == ()
    model.apply(Kind.POD_IPS, "DELETED", pod_obj("a"))
    assert model.pod_namespace(IP) is None
    # Nothing the DNS plugin precomputes depends on the index.
    assert changes == [] and model.generation == 0


def test_model_pods_feed_the_index_when_required() -> None:
    model = ClusterModel(kinds={Kind.PODS, Kind.POD_IPS})
    model.replace_all(Kind.PODS, [pod_obj("a")])
    assert model.synced  # listing Pods satisfies POD_IPS too
    model.apply(Kind.PODS, "ADDED", pod_obj("b", "other"))
    model.apply(Kind.PODS, "DELETED", pod_obj("a"))
    assert model.pod_namespace(IP) == "other"
    assert [p.name for p in model.pods_by_ip(IP)] == ["b"]


def test_model_pod_namespace_from_pod_records() -> None:
    model = ClusterModel(kinds={Kind.PODS})
    model.replace_all(Kind.PODS, [pod_obj("a")])
    assert model.pod_namespace(IP) == "default"
    model.apply(Kind.PODS, "ADDED", pod_obj("b", "other"))
    assert model.pod_namespace(IP) is None  # two namespaces claim it: no answer
    assert ClusterModel(kinds={Kind.SERVICES}).pod_namespace(IP) is None


async def test_require_before_the_sources_run() -> None:
    model = ClusterModel(kinds=set())
    assert model.synced
    model.require(Kind.POD_IPS)
    assert not model.synced and not model.synced_event.is_set()
    model.replace_all(Kind.POD_IPS, [])
    assert await model.wait_synced(0.1)
    model.require(Kind.POD_IPS)  # again: nothing changes
    assert model.synced


# --- the sources ---------------------------------------------------------------------------


async def test_kube_source_watches_what_the_model_requires(kubeapi: KubeAPIServer) -> None:
    kubeapi.create(pod("a", "default", ip=IP))
    model = ClusterModel(kinds={Kind.SERVICES})
    model.require(Kind.POD_IPS)
    async with running(make_source(kubeapi, {Kind.SERVICES}), model):
        assert await model.wait_synced(5)
        assert model.pod_namespace(IP) == "default"
        kubeapi.create(pod("b", "other", ip=IP))
        kubeapi.delete(pod("a", "default", ip=IP))
        await eventually(lambda: model.pod_namespace(IP) == "other")
        await asyncio.sleep(0.1)
        assert model.pod_namespace(IP) == "other"


async def test_kube_source_one_pod_watch_for_both(kubeapi: KubeAPIServer) -> None:
    kubeapi.create(pod("a", "default", ip=IP))
    model = ClusterModel(kinds={Kind.PODS, Kind.POD_IPS})
    async with running(make_source(kubeapi, {Kind.PODS, Kind.POD_IPS}), model):
        assert await model.wait_synced(5)
        await eventually(lambda: kubeapi.watch_requests["/api/v1/pods"] >= 1)
        await asyncio.sleep(0.1)
        assert kubeapi.list_requests["/api/v1/pods"] == 1
        assert kubeapi.open_watches == 1
        assert model.pod_namespace(IP) == "default"
        assert [p.name for p in model.pods_by_ip(IP)] == ["a"]


def test_manifests_source_pod_ips(tmp_path: Path) -> None:
    (tmp_path / "pods.yaml").write_text(
        f"kind: Pod\nmetadata: {{name: a, namespace: shop}}\nstatus: {{phase: Running, podIP: {IP}}}\n"
    )
    model = ClusterModel(kinds={Kind.SERVICES, Kind.NAMESPACES})
    model.require(Kind.POD_IPS)
    source = ManifestsSource(tmp_path, kinds={Kind.SERVICES, Kind.NAMESPACES})
    source.poll_once(model)
    assert model.synced
    assert model.pod_namespace(IP) == "shop"
    assert model.pods_by_ip(IP) == ()
