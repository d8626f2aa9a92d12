"""``multicluster``: KEP-1645 names from ServiceImports and their imported EndpointSlices,
served from manifests and from the API server (list, watch, and a CRD installed late)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import dns.message
import dns.rcode
import pytest
import pytest_asyncio

from clusterdns.core.fast import FastReply
from clusterdns.plugins.kubernetes.handler import Kubernetes
from clusterdns.sources.kube import source as kube_source
from clusterdns.wire import parse_query
from tests.helpers.dnsclient import make_query, query
from tests.helpers.kubeapi import (
    KubeAPIServer,
    imported_slice,
    namespace,
    service,
    service_import,
)
from tests.helpers.oracle import oracle_for
from tests.helpers.server import RunningServer, running_server
from tests.plugins.kubernetes.cluster import Case, check, check_zone_case, corefile, write_manifests

pytestmark = pytest.mark.asyncio(loop_scope="module")

ZONES = "cluster.local clusterset.local in-addr.arpa"
M = ".shop.svc.clusterset.local."
SOA_SET = (
    "clusterset.local. 5 IN SOA ns.dns.clusterset.local. hostmaster.clusterset.local. "
    "0 7200 1800 86400 5"
)
PG = (("pg", 5432, "TCP"),)


def mcs_objects() -> list[dict[str, Any]]:
    return [
        namespace("shop"),
        # A local Service of the same name: the cluster zone keeps answering it.
        service("cart", "shop", cluster_ip="10.96.0.7"),
        service_import("cart", "shop", ips=["10.42.0.7", "fd00::7"]),
        service_import("db", "shop", headless=True, ports=PG),
        service_import("empty", "shop", headless=True, ports=PG),
        service_import("pending", "shop", ips=[]),  # its clusterset IP not allocated yet
        imported_slice(
            "db-east",
            "db",
            "east",
            "shop",
            addresses=["10.1.0.5", ("10.1.0.6", False)],
            hostnames={"10.1.0.5": "db-0"},
            ports=PG,
        ),
        imported_slice("db-west", "db", "west", "shop", addresses=["10.2.0.9"], ports=PG),
    ]


def mrow(qname: str, qtype: str, rcode: str, *answer: str, additional: tuple[str, ...] = ()) -> Any:
    in_set = qname.endswith("clusterset.local.")
    authority = None if answer or not in_set else (SOA_SET,)
    case = Case(qname, qtype, rcode, tuple(answer), additional, authority)
    return pytest.param(case, id=f"{qname.removesuffix('.local.')} {qtype} → {rcode}")


ROWS = [
    # 2.3 a ServiceImport with clusterset IPs
    mrow("cart" + M, "A", "NOERROR", f"cart{M} 5 IN A 10.42.0.7"),
    mrow("cart" + M, "AAAA", "NOERROR", f"cart{M} 5 IN AAAA fd00::7"),
    mrow(
        "_http._tcp.cart" + M,
        "SRV",
        "NOERROR",
        f"_http._tcp.cart{M} 5 IN SRV 0 50 80 cart{M}",
        additional=(f"cart{M} 5 IN A 10.42.0.7", f"cart{M} 5 IN AAAA fd00::7"),
    ),
    mrow("_http._udp.cart" + M, "SRV", "NXDOMAIN"),
    mrow("_tcp.cart" + M, "SRV", "NOERROR"),  # empty non-terminal
    # 2.4 a headless ServiceImport: every ready endpoint of every cluster
    mrow("db" + M, "A", "NOERROR", f"db{M} 5 IN A 10.1.0.5", f"db{M} 5 IN A 10.2.0.9"),
    mrow("db" + M, "AAAA", "NOERROR"),
    mrow(
        "_pg._tcp.db" + M,
        "SRV",
        "NOERROR",
        f"_pg._tcp.db{M} 5 IN SRV 0 50 5432 db-0.east.db{M}",
        f"_pg._tcp.db{M} 5 IN SRV 0 50 5432 10-2-0-9.west.db{M}",
        additional=(f"db-0.east.db{M} 5 IN A 10.1.0.5", f"10-2-0-9.west.db{M} 5 IN A 10.2.0.9"),
    ),
    mrow("db-0.east.db" + M, "A", "NOERROR", f"db-0.east.db{M} 5 IN A 10.1.0.5"),
    mrow("10-2-0-9.west.db" + M, "A", "NOERROR", f"10-2-0-9.west.db{M} 5 IN A 10.2.0.9"),
    mrow("db-0.west.db" + M, "A", "NXDOMAIN"),  # that hostname is in another cluster
    mrow("10-1-0-6.east.db" + M, "A", "NXDOMAIN"),  # not ready
    mrow("east.db" + M, "A", "NOERROR"),  # the cluster label: an empty non-terminal
    mrow("north.db" + M, "A", "NXDOMAIN"),
    mrow("a.db-0.east.db" + M, "A", "NXDOMAIN"),
    mrow("empty" + M, "A", "NXDOMAIN"),  # headless without ready endpoints: no name
    mrow("pending" + M, "A", "NOERROR"),  # exists (ports), no address yet: NODATA
    mrow("nope" + M, "A", "NXDOMAIN"),
    mrow("shop.svc.clusterset.local.", "A", "NOERROR"),
    mrow("other.svc.clusterset.local.", "A", "NXDOMAIN"),
    mrow(
        "dns-version.clusterset.local.",
        "TXT",
        "NOERROR",
        'dns-version.clusterset.local. 28800 IN TXT "1.1.0"',
    ),
    # The cluster zone is the Services', not the ServiceImports'.
    mrow(
        "cart.shop.svc.cluster.local.",
        "A",
        "NOERROR",
        "cart.shop.svc.cluster.local. 5 IN A 10.96.0.7",
    ),
    mrow("db.shop.svc.cluster.local.", "A", "NXDOMAIN"),
]


def mcs_corefile(source: str) -> str:
    return corefile(source, extra="multicluster clusterset.local", zones=ZONES)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mcs_manifests(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = write_manifests(tmp_path_factory.mktemp("mcs"), mcs_objects())
    async with running_server(mcs_corefile(f"manifests {folder}")) as server:
        assert await server.plugin("kubernetes").model.wait_synced(5)  # type: ignore[union-attr]
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mcs_api() -> Any:
    async with KubeAPIServer(bookmark_interval=0.2, serve_mcs=True) as api:
        for obj in mcs_objects():
            api.create(obj)
        async with running_server(mcs_corefile(f"endpoint {api.url}")) as server:
            assert await server.plugin("kubernetes").model.wait_synced(5)  # type: ignore[union-attr]
            yield server


@pytest.mark.parametrize("case", ROWS)
async def test_manifests(mcs_manifests: RunningServer, case: Case) -> None:
    check(await query(mcs_manifests.port, case.qname, case.qtype, payload=4096), case)


@pytest.mark.parametrize("case", ROWS)
async def test_api(mcs_api: RunningServer, case: Case) -> None:
    check(await query(mcs_api.port, case.qname, case.qtype, payload=4096), case)


@pytest.mark.parametrize("case", ROWS)
async def test_fast_path_agrees_with_dnspython(mcs_manifests: RunningServer, case: Case) -> None:
    """Each row is answered on the wire at first sight, byte for byte what dnspython's
    renderer makes of the same records, in the question's letter case."""
    plugin = mcs_manifests.plugin("kubernetes")
    assert isinstance(plugin, Kubernetes)
    mixed = "".join(c.upper() if i % 3 == 0 else c for i, c in enumerate(case.qname))
    parsed = parse_query(make_query(mixed, case.qtype, payload=1232).to_wire())
    answer = plugin.table.decide(
        parsed.qname_lower, parsed.label_offsets, parsed.qtype, asked=parsed.qname_wire
    )
    assert answer is not None
    fast = plugin.answer_fast(parsed, 1232, 4096)
    assert isinstance(fast, FastReply)
    assert fast.wire == oracle_for(parsed, answer, limit=1232)
    reply = dns.message.from_wire(fast.wire)
    check(reply, case)
    check_zone_case(reply, mixed, zones=("clusterset.local.", "cluster.local."))


async def _until(predicate: Any, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _addresses(port: int, qname: str) -> set[str] | str:
    reply = await query(port, qname, "A")
    if reply.rcode() != dns.rcode.NOERROR:
        return dns.rcode.to_text(reply.rcode())
    return {rdata.to_text() for rrset in reply.answer for rdata in rrset}


async def test_watch_changes_reach_memoised_answers() -> None:
    """ServiceImports and imported slices created, changed and deleted while serving: each
    change reaches answers already given once (memoised), within the watch's latency."""
    async with KubeAPIServer(bookmark_interval=0.2, serve_mcs=True) as api:
        api.create(namespace("shop"))
        async with running_server(mcs_corefile(f"endpoint {api.url}")) as server:
            assert await server.plugin("kubernetes").model.wait_synced(5)  # type: ignore[union-attr]
            port = server.port
            assert await _addresses(port, "cart" + M) == "NXDOMAIN"
            assert await _addresses(port, "cart" + M) == "NXDOMAIN"  # memoised
            api.create(service_import("cart", "shop", ips=["10.42.0.7"]))
            await _until(lambda: _wants(port, "cart" + M, {"10.42.0.7"}))
            api.update(service_import("cart", "shop", ips=["10.42.0.8"]))
            await _until(lambda: _wants(port, "cart" + M, {"10.42.0.8"}))

            api.create(service_import("db", "shop", headless=True, ports=PG))
            assert await _addresses(port, "db" + M) == "NXDOMAIN"  # no endpoints yet
            api.create(imported_slice("db-a", "db", "east", "shop", addresses=["10.1.0.5"]))
            await _until(lambda: _wants(port, "db" + M, {"10.1.0.5"}))
            api.create(imported_slice("db-b", "db", "west", "shop", addresses=["10.2.0.9"]))
            await _until(lambda: _wants(port, "db" + M, {"10.1.0.5", "10.2.0.9"}))
            assert await _addresses(port, "10-2-0-9.west.db" + M) == {"10.2.0.9"}
            obj = api.get("EndpointSlice", "db-a", "shop")
            assert obj is not None
            api.delete(obj)
            await _until(lambda: _wants(port, "db" + M, {"10.2.0.9"}))
            cart = api.get("ServiceImport", "cart", "shop")
            assert cart is not None
            api.delete(cart)
            await _until(lambda: _wants(port, "cart" + M, "NXDOMAIN"))


async def _wants(port: int, qname: str, expected: set[str] | str) -> bool:
    return await _addresses(port, qname) == expected


async def test_crd_installed_later(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the MCS CRDs the server still gets ready (the clusterset names are
    NXDOMAIN, and a warning says why); once they are installed, ServiceImports answer."""
    monkeypatch.setattr(kube_source, "OPTIONAL_RECHECK", 0.2)
    caplog.set_level(logging.WARNING, logger="clusterdns.sources.kube")
    async with KubeAPIServer(bookmark_interval=0.2, serve_mcs=False) as api:
        for obj in mcs_objects():
            if obj["kind"] != "ServiceImport":
                api.create(obj)
        async with running_server(mcs_corefile(f"endpoint {api.url}")) as server:
            plugin = server.plugin("kubernetes")
            assert isinstance(plugin, Kubernetes)
            assert await plugin.model.wait_synced(5)
            assert plugin.ready()
            assert await _addresses(server.port, "cart" + M) == "NXDOMAIN"
            assert await _addresses(server.port, "cart.shop.svc.cluster.local.") == {"10.96.0.7"}
            assert any("multicluster.x-k8s.io/v1alpha1" in r.message for r in caplog.records)
            api.serve_mcs = True
            api.create(service_import("cart", "shop", ips=["10.42.0.7"]))
            await _until(lambda: _wants(server.port, "cart" + M, {"10.42.0.7"}))


async def test_records_list_the_service_imports(mcs_manifests: RunningServer) -> None:
    """introspect and ``clusterdns records`` list the clusterset names, each with what
    the table answers for it."""
    plugin = mcs_manifests.plugin("kubernetes")
    assert isinstance(plugin, Kubernetes)
    listed = {row.name: row.records for row in plugin.list_records("clusterset.local.")}
    assert set(listed) == {
        "cart" + M, "_http._tcp.cart" + M, "db" + M, "_pg._tcp.db" + M,
        "db-0.east.db" + M, "10-2-0-9.west.db" + M,
    }  # fmt: skip
    assert f"db-0.east.db{M} 5 IN A 10.1.0.5" in listed["db-0.east.db" + M]
