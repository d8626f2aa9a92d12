"""ClusterModel: indexes, change detection, notifications, sync."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from clusterdns.sources.kube import objects as api
from clusterdns.sources.model import Change, ClusterModel, IpOwner, Kind
from tests.helpers.kubeapi import (
    endpoint_slice,
    endpoints,
    imported_slice,
    namespace,
    pod,
    service,
    service_import,
)

TYPES: dict[Kind, type[Any]] = {
    Kind.SERVICES: api.Service,
    Kind.ENDPOINTSLICES: api.EndpointSlice,
    Kind.ENDPOINTS: api.Endpoints,
    Kind.PODS: api.Pod,
    Kind.NAMESPACES: api.Namespace,
    Kind.SERVICE_IMPORTS: api.ServiceImport,
    Kind.MULTICLUSTER_SLICES: api.EndpointSlice,
}


def obj(kind: Kind, data: dict[str, Any]) -> Any:
    return msgspec.convert(data, type=TYPES[kind])


class Recorder:
    def __init__(self, model: ClusterModel) -> None:
        self.changes: list[Change] = []
        model.subscribe(self.changes.append)


@pytest.fixture
def model() -> ClusterModel:
    return ClusterModel(kinds={Kind.SERVICES, Kind.ENDPOINTSLICES})


def test_sync_requires_every_kind(model: ClusterModel) -> None:
    assert not model.synced
    model.replace_all(Kind.SERVICES, [])
    assert not model.synced and not model.synced_event.is_set()
    model.replace_all(Kind.ENDPOINTSLICES, [])
    assert model.synced and model.synced_event.is_set()
    assert model.generation == 0  # nothing DNS-visible changed


def test_endpoints_kind_satisfies_endpointslices(model: ClusterModel) -> None:
    model.replace_all(Kind.SERVICES, [])
    model.replace_all(Kind.ENDPOINTS, [])  # the API source's fallback
    assert model.synced


async def test_wait_synced_times_out(model: ClusterModel) -> None:
    assert not await model.wait_synced(0.01)
    model.replace_all(Kind.SERVICES, [])
    model.replace_all(Kind.ENDPOINTSLICES, [])
    assert await model.wait_synced(0.01)


def test_service_indexes(model: ClusterModel) -> None:
    model.replace_all(
        Kind.SERVICES,
        [
            obj(Kind.SERVICES, service("a", cluster_ip="10.96.0.1")),
            obj(Kind.SERVICES, service("b", cluster_ip="10.96.0.2")),
            obj(Kind.SERVICES, service("q", "shared", cluster_ip="10.96.0.3")),
        ],
    )
    a = model.service("default", "a")
    assert a is not None and a.cluster_ips == ("10.96.0.1",)
    assert model.service("default", "q") is None
    assert sorted(s.name for s in model.services_in("default")) == ["a", "b"]
    assert [s.name for s in model.services_in("nowhere")] == []
    assert len(list(model.services())) == 3
    # Namespaces not watched: a namespace exists while a Service is in it.
    assert model.namespace_exists("shared") and not model.namespace_exists("nowhere")
    model.apply(Kind.SERVICES, "DELETED", obj(Kind.SERVICES, service("q", "shared")))
    assert not model.namespace_exists("shared")
    assert model.ip_owners("10.96.0.3") == ()


def test_namespace_objects_decide_when_watched() -> None:
    model = ClusterModel(kinds={Kind.SERVICES, Kind.NAMESPACES})
    model.replace_all(Kind.NAMESPACES, [obj(Kind.NAMESPACES, namespace("empty", {"team": "x"}))])
    model.replace_all(Kind.SERVICES, [obj(Kind.SERVICES, service("a", cluster_ip="10.96.0.1"))])
    assert model.namespace_exists("empty")
    assert not model.namespace_exists("default")  # has a Service, but no Namespace object
    ns = model.namespace("empty")
    assert ns is not None and ns.labels == (("team", "x"),)
    assert [n.name for n in model.namespaces()] == ["empty"]


def test_endpoints_merge_dedupe_and_order(model: ClusterModel) -> None:
    model.replace_all(
        Kind.ENDPOINTSLICES,
        [
            obj(
                Kind.ENDPOINTSLICES,
                endpoint_slice("web-b", "web", addresses=["10.0.0.3", ("10.0.0.1", True)]),
            ),
            obj(
                Kind.ENDPOINTSLICES,
                endpoint_slice("web-a", "web", addresses=[("10.0.0.1", False), "10.0.0.2"]),
            ),
            obj(Kind.ENDPOINTSLICES, endpoint_slice("other", "other", addresses=["10.0.0.9"])),
        ],
    )
    eps = model.endpoints("default", "web")
    # slice order by name (web-a, web-b); 10.0.0.1 twice: the ready one wins, first position kept
    assert [(e.addresses[0], e.ready) for e in eps] == [
        ("10.0.0.1", True),
        ("10.0.0.2", True),
        ("10.0.0.3", True),
    ]
    assert model.endpoints("default", "nope") == ()


def test_ip_owners(model: ClusterModel) -> None:
    model.replace_all(
        Kind.SERVICES,
        [
            obj(Kind.SERVICES, service("web", cluster_ip="None")),
            obj(Kind.SERVICES, service("api", cluster_ips=["10.96.0.5", "fd00::5"])),
            obj(Kind.SERVICES, service("pub", cluster_ip="None", publish_not_ready=True)),
        ],
    )
    model.replace_all(
        Kind.ENDPOINTSLICES,
        [
            obj(
                Kind.ENDPOINTSLICES,
                endpoint_slice(
                    "web-a",
                    "web",
                    addresses=["10.0.0.1", "10.0.0.2", ("10.0.0.3", False)],
                    hostnames={"10.0.0.1": "web-0"},
                ),
            ),
            obj(
                Kind.ENDPOINTSLICES, endpoint_slice("pub-a", "pub", addresses=[("10.0.0.4", False)])
            ),
            obj(Kind.ENDPOINTSLICES, endpoint_slice("ghost-a", "ghost", addresses=["10.0.0.5"])),
        ],
    )
    assert model.ip_owners("10.96.0.5") == (IpOwner("default", "api", None),)
    assert model.ip_owners("fd00::5") == (IpOwner("default", "api", None),)
    assert model.ip_owners("10.0.0.1") == (IpOwner("default", "web", "web-0"),)
    assert model.ip_owners("10.0.0.2") == (IpOwner("default", "web", None),)
    assert model.ip_owners("10.0.0.3") == ()  # not ready
    assert model.ip_owners("10.0.0.4") == (IpOwner("default", "pub", None),)  # published
    assert model.ip_owners("10.0.0.5") == ()  # no such Service
    # the Service appears later: its endpoints become PTR owners
    model.apply(Kind.SERVICES, "ADDED", obj(Kind.SERVICES, service("ghost", cluster_ip="None")))
    assert model.ip_owners("10.0.0.5") == (IpOwner("default", "ghost", None),)
    model.apply(
        Kind.ENDPOINTSLICES,
        "DELETED",
        obj(Kind.ENDPOINTSLICES, endpoint_slice("web-a", "web")),
    )
    assert model.ip_owners("10.0.0.1") == ()
    assert model.endpoints("default", "web") == ()


def test_resource_version_only_update_is_skipped(model: ClusterModel) -> None:
    rec = Recorder(model)
    data = service("web", cluster_ip="10.96.0.20")
    data["metadata"]["resourceVersion"] = "1"
    model.apply(Kind.SERVICES, "ADDED", obj(Kind.SERVICES, data))
    assert model.generation == 1 and len(rec.changes) == 1
    data["metadata"]["resourceVersion"] = "2"
    model.apply(Kind.SERVICES, "MODIFIED", obj(Kind.SERVICES, data))
    assert model.generation == 1 and len(rec.changes) == 1
    data["spec"]["clusterIP"] = "10.96.0.21"
    model.apply(Kind.SERVICES, "MODIFIED", obj(Kind.SERVICES, data))
    assert model.generation == 2 and len(rec.changes) == 2
    assert model.ip_owners("10.96.0.20") == ()
    assert model.ip_owners("10.96.0.21") == (IpOwner("default", "web", None),)


def test_change_contents(model: ClusterModel) -> None:
    rec = Recorder(model)
    model.apply(
        Kind.SERVICES, "ADDED", obj(Kind.SERVICES, service("web", "shop", cluster_ip="None"))
    )
    assert rec.changes[-1] == Change(
        services=frozenset({("shop", "web")}),
        namespaces=frozenset({"shop"}),
        pod_ips=frozenset(),
        named=frozenset({("shop", "web")}),
    )
    model.apply(
        Kind.ENDPOINTSLICES,
        "ADDED",
        obj(Kind.ENDPOINTSLICES, endpoint_slice("web-a", "web", "shop", addresses=["10.0.0.1"])),
    )
    assert rec.changes[-1].services == {("shop", "web")} and not rec.changes[-1].namespaces
    assert not rec.changes[-1].named, "endpoints changed, not the namespace's names"
    # A slice whose merged result does not change (a duplicate address) changes nothing.
    generation = model.generation
    model.apply(
        Kind.ENDPOINTSLICES,
        "ADDED",
        obj(Kind.ENDPOINTSLICES, endpoint_slice("web-b", "web", "shop", addresses=["10.0.0.1"])),
    )
    assert model.generation == generation
    # replace_all applies only the differences
    model.replace_all(
        Kind.SERVICES,
        [
            obj(Kind.SERVICES, service("web", "shop", cluster_ip="None")),
            obj(Kind.SERVICES, service("new", "shop", cluster_ip="10.96.0.9")),
        ],
    )
    assert rec.changes[-1].services == rec.changes[-1].named == {("shop", "new")}
    model.replace_all(
        Kind.SERVICES,
        [
            obj(Kind.SERVICES, service("web", "shop", cluster_ip="None")),
            obj(Kind.SERVICES, service("new", "shop", cluster_ip="10.96.0.10")),
        ],
    )
    assert rec.changes[-1].services == {("shop", "new")} and not rec.changes[-1].named
    model.replace_all(Kind.SERVICES, [])
    assert rec.changes[-1].services == {("shop", "new"), ("shop", "web")}
    assert rec.changes[-1].named == {("shop", "new"), ("shop", "web")}
    assert rec.changes[-1].namespaces == {"shop"}


def test_pods_by_ip() -> None:
    model = ClusterModel(kinds={Kind.PODS})
    rec = Recorder(model)
    model.replace_all(
        Kind.PODS,
        [
            obj(Kind.PODS, pod("a", ip="10.244.0.5")),
            obj(Kind.PODS, pod("b", "other", ip="10.244.0.5")),
        ],
    )
    assert [p.name for p in model.pods_by_ip("10.244.0.5")] == ["a", "b"]
    model.apply(Kind.PODS, "MODIFIED", obj(Kind.PODS, pod("a", ip="10.244.0.6")))
    assert rec.changes[-1].pod_ips == {"10.244.0.5", "10.244.0.6"}
    assert [p.name for p in model.pods_by_ip("10.244.0.5")] == ["b"]
    assert [p.name for p in model.pods_by_ip("10.244.0.6")] == ["a"]
    model.apply(Kind.PODS, "DELETED", obj(Kind.PODS, pod("b", "other", ip="10.244.0.5")))
    assert model.pods_by_ip("10.244.0.5") == ()


def test_legacy_endpoints() -> None:
    model = ClusterModel(kinds={Kind.SERVICES, Kind.ENDPOINTS})
    model.replace_all(Kind.SERVICES, [obj(Kind.SERVICES, service("web", cluster_ip="None"))])
    model.replace_all(
        Kind.ENDPOINTS,
        [obj(Kind.ENDPOINTS, endpoints("web", ready=["10.0.0.1"], not_ready=["10.0.0.2"]))],
    )
    assert [(e.addresses, e.ready) for e in model.endpoints("default", "web")] == [
        (("10.0.0.1",), True),
        (("10.0.0.2",), False),
    ]


def test_subscriber_errors_do_not_break_updates(model: ClusterModel) -> None:
    def boom(change: Change) -> None:
        raise RuntimeError("boom")

    model.subscribe(boom)
    rec = Recorder(model)
    model.apply(Kind.SERVICES, "ADDED", obj(Kind.SERVICES, service("web", cluster_ip="10.96.0.20")))
    assert len(rec.changes) == 1 and model.service("default", "web") is not None


def test_listing_page_by_page_applies_at_commit(model: ClusterModel) -> None:
    rec = Recorder(model)
    listing = model.listing(Kind.SERVICES)
    listing.add([obj(Kind.SERVICES, service("a", cluster_ip="10.96.0.1"))])
    listing.add([obj(Kind.SERVICES, service("b", cluster_ip="10.96.0.2"))])
    assert model.service("default", "a") is None and not rec.changes  # nothing until commit
    listing.commit()
    assert listing.count == 2
    assert sorted(s.name for s in model.services()) == ["a", "b"]
    assert rec.changes[-1].services == {("default", "a"), ("default", "b")}


def test_relist_keeps_the_stored_records(model: ClusterModel) -> None:
    objs = [
        obj(Kind.SERVICES, service("a", cluster_ip="10.96.0.1")),
        obj(Kind.SERVICES, service("b", cluster_ip="10.96.0.2")),
    ]
    model.replace_all(Kind.SERVICES, objs)
    stored = model.service("default", "a")
    generation = model.generation
    model.replace_all(Kind.SERVICES, objs)  # a relist finding nothing new
    assert model.service("default", "a") is stored  # one copy, not two
    assert model.generation == generation


def test_reverse_index_follows_owners_and_records(model: ClusterModel) -> None:
    model.replace_all(
        Kind.SERVICES,
        [
            obj(Kind.SERVICES, service("one", cluster_ip="None")),
            obj(Kind.SERVICES, service("two", cluster_ip="None")),
        ],
    )
    model.replace_all(
        Kind.ENDPOINTSLICES,
        [
            obj(Kind.ENDPOINTSLICES, endpoint_slice("one-a", "one", addresses=["10.0.0.1"])),
            obj(Kind.ENDPOINTSLICES, endpoint_slice("two-a", "two", addresses=["10.0.0.1"])),
        ],
    )
    # The same address in two Services: both answer its PTR query, in claim order.
    assert [o.service for o in model.ip_owners("10.0.0.1")] == ["one", "two"]
    # A changed Service record replaces the old one in place (order kept).
    model.apply(
        Kind.SERVICES,
        "MODIFIED",
        obj(Kind.SERVICES, service("one", cluster_ip="None", labels={"x": "y"})),
    )
    assert [s.labels for s in model.ip_services("10.0.0.1")] == [(("x", "y"),), ()]
    model.apply(Kind.SERVICES, "DELETED", obj(Kind.SERVICES, service("one")))
    assert model.ip_owners("10.0.0.1") == (IpOwner("default", "two", None),)


def test_large_change_is_full(model: ClusterModel) -> None:
    rec = Recorder(model)
    model.replace_all(
        Kind.SERVICES,
        [obj(Kind.SERVICES, service(f"s{i}", cluster_ip="None")) for i in range(10_001)],
    )
    assert rec.changes[-1].full and not rec.changes[-1].services
    assert model.service_count() == 10_001


def test_slices_of_two_kinds_merge_in_kind_then_name_order(model: ClusterModel) -> None:
    model.replace_all(
        Kind.ENDPOINTSLICES,
        [obj(Kind.ENDPOINTSLICES, endpoint_slice("web-a", "web", addresses=["10.0.0.2"]))],
    )
    model.replace_all(Kind.ENDPOINTS, [obj(Kind.ENDPOINTS, endpoints("web", ready=["10.0.0.1"]))])
    assert [e.addresses[0] for e in model.endpoints("default", "web")] == ["10.0.0.1", "10.0.0.2"]


def test_change_names_the_ips_whose_ptr_may_differ(model: ClusterModel) -> None:
    """Change.ips: what a changed Service owned before and after (its PTR answers)."""
    rec = Recorder(model)
    model.replace_all(
        Kind.SERVICES, [obj(Kind.SERVICES, service("db", "x", cluster_ip="10.96.0.7"))]
    )
    model.replace_all(
        Kind.ENDPOINTSLICES,
        [obj(Kind.ENDPOINTSLICES, endpoint_slice("db-a", "db", "x", addresses=["10.1.0.1"]))],
    )
    model.apply(
        Kind.ENDPOINTSLICES,
        "MODIFIED",
        obj(Kind.ENDPOINTSLICES, endpoint_slice("db-a", "db", "x", addresses=["10.1.0.2"])),
    )
    assert {"10.1.0.1", "10.1.0.2"} <= rec.changes[-1].ips
    model.apply(
        Kind.SERVICES, "MODIFIED", obj(Kind.SERVICES, service("db", "x", cluster_ip="10.96.0.8"))
    )
    assert {"10.96.0.7", "10.96.0.8"} <= rec.changes[-1].ips
    # Another Service's change says nothing about db's addresses.
    model.apply(
        Kind.SERVICES, "ADDED", obj(Kind.SERVICES, service("web", "x", cluster_ip="10.96.0.9"))
    )
    assert rec.changes[-1].ips == {"10.96.0.9"}


def test_service_imports_and_their_slices() -> None:
    """ServiceImports and imported slices: readers, per-cluster merge, and the Change
    naming the ServiceImport (not a Service) whose names may differ."""
    model = ClusterModel(kinds={Kind.SERVICE_IMPORTS, Kind.MULTICLUSTER_SLICES})
    changes = Recorder(model).changes
    si = Kind.SERVICE_IMPORTS
    mc = Kind.MULTICLUSTER_SLICES
    model.replace_all(si, [obj(si, service_import("db", "shop", headless=True))])
    assert model.synced is False
    model.replace_all(mc, [])
    assert model.synced
    imported = model.service_import("shop", "db")
    assert imported is not None and imported.headless and imported.ips == ()
    assert changes[-1].imports == {("shop", "db")} and not changes[-1].services
    east = imported_slice("e1", "db", "east", "shop", addresses=["10.1.0.5", "10.1.0.6"])
    east2 = imported_slice("e2", "db", "east", "shop", addresses=["10.1.0.6", "10.1.0.7"])
    west = imported_slice("w1", "db", "west", "shop", addresses=["10.1.0.5"])
    for data in (east, east2, west):
        model.apply(mc, "ADDED", obj(mc, data))
        assert changes[-1].imports == {("shop", "db")}
    got = [(cluster, ep.addresses) for cluster, ep in model.import_endpoints("shop", "db")]
    # One cluster's slices merge (10.1.0.6 once); the same IP in two clusters is two.
    assert got == [
        ("east", ("10.1.0.5",)), ("east", ("10.1.0.6",)), ("east", ("10.1.0.7",)),
        ("west", ("10.1.0.5",)),
    ]  # fmt: skip
    generation = model.generation
    model.apply(mc, "MODIFIED", obj(mc, west))  # unchanged: no generation, no notice
    assert model.generation == generation
    model.apply(mc, "DELETED", obj(mc, east))
    assert [c for c, _ in model.import_endpoints("shop", "db")] == ["east", "east", "west"]
    model.apply(si, "DELETED", obj(si, service_import("db", "shop", headless=True)))
    assert model.service_import("shop", "db") is None
    assert list(model.service_imports()) == []
    # A slice without the MCS service label belongs to no ServiceImport.
    stray = endpoint_slice("s", "db", "shop", addresses=["10.9.9.9"])
    count = len(changes)
    model.apply(mc, "ADDED", obj(mc, stray))
    assert len(changes) == count
    assert all("10.9.9.9" not in ep.addresses for _, ep in model.import_endpoints("shop", "db"))
