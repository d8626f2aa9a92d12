"""k8s_external against a real server: CoreDNS's k8s_external test table (adapted to the
cluster in cluster.py) over UDP, the fast path, reload of changed Services, and setup."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import pytest_asyncio

from clusterdns.core.fast import FastReply
from clusterdns.corefile import CorefileError
from clusterdns.wire import parse_query
from tests.helpers.dnsclient import query
from tests.helpers.server import RunningServer, running_server
from tests.plugins.k8s_external.cluster import objects
from tests.plugins.kubernetes.cluster import write_manifests

SOA = "example.com. 5 IN SOA ns1.dns.example.com. hostmaster.dns.example.com. 0 7200 1800 86400 5"
T = ".testns.example.com."
H = ".svc-headless.testns.example.com."

pytestmark = pytest.mark.asyncio(loop_scope="module")


def corefile(folder: Path, options: str = "headless") -> str:
    return (
        ".:0 {\n"
        f"    kubernetes cluster.local {{\n        manifests {folder}\n    }}\n"
        f"    k8s_external example.com in-addr.arpa {{\n        {options}\n    }}\n"
        "}\n"
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: Any) -> AsyncIterator[RunningServer]:
    folder = write_manifests(Path(tmp_path_factory.mktemp("manifests")), objects())
    async with running_server(corefile(folder)) as running:
        assert await running.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
        yield running


@dataclass(frozen=True)
class Case:
    qname: str
    qtype: str
    rcode: str
    answer: tuple[str, ...] = ()
    additional: tuple[str, ...] = ()
    authority: tuple[str, ...] | None = None  # None: the SOA when the answer is empty


def row(qname: str, qtype: str, rcode: str, *answer: str, **more: Any) -> Any:
    case = Case(qname, qtype, rcode, tuple(answer), **more)
    return pytest.param(case, id=f"{qname.removesuffix('.')} {qtype} → {rcode}")


def lines(rrsets: list[dns.rrset.RRset]) -> list[str]:
    out = []
    for rrset in rrsets:
        if rrset.rdtype == dns.rdatatype.OPT:
            continue
        for rdata in rrset:
            if rrset.rdtype == dns.rdatatype.SOA:
                rdata = rdata.replace(serial=0)  # the serial moves with the cluster
            out.append(f"{rrset.name} {rrset.ttl} IN {dns.rdatatype.to_text(rrset.rdtype)} {rdata}")
    return sorted(line.lower() for line in out)


def expected(texts: tuple[str, ...]) -> list[str]:
    rrsets = []
    for text in texts:
        name, ttl, cls, rdtype, rdata = text.split(None, 4)
        rrsets.append(dns.rrset.from_text(name, int(ttl), cls, rdtype, rdata))
    return lines(rrsets)


def check(response: dns.message.Message, case: Case) -> None:
    assert dns.rcode.to_text(response.rcode()) == case.rcode, response.to_text()
    assert response.flags & dns.flags.AA, response.to_text()
    authority = case.authority if case.authority is not None else () if case.answer else (SOA,)
    assert lines(response.answer) == expected(case.answer), response.to_text()
    assert lines(response.authority) == expected(authority), response.to_text()
    assert lines(response.additional) == expected(case.additional), response.to_text()


ROWS = [
    # CoreDNS's table (plugin/k8s_external/external_test.go)
    row("4.3.2.1.in-addr.arpa.", "PTR", "NOERROR", f"4.3.2.1.in-addr.arpa. 5 IN PTR svc1{T}",
        authority=()),
    row(f"svc1{T}", "PTR", "NOERROR"),
    row(f"not-existing{T}", "PTR", "NXDOMAIN"),
    row(f"svc1{T}", "A", "NOERROR", f"svc1{T} 5 IN A 1.2.3.4"),
    row(f"svc1{T}", "SRV", "NOERROR", f"svc1{T} 5 IN SRV 0 100 80 svc1{T}",
        additional=(f"svc1{T} 5 IN A 1.2.3.4",)),
    row(f"*._not-udp-or-tcp.svc1{T}", "SRV", "NXDOMAIN"),
    row(f"_http._tcp.svc1{T}", "SRV", "NOERROR", f"_http._tcp.svc1{T} 5 IN SRV 0 100 80 svc1{T}",
        additional=(f"svc1{T} 5 IN A 1.2.3.4",)),
    row(f"svc1{T}", "AAAA", "NOERROR"),
    row(f"svc0{T}", "AAAA", "NXDOMAIN"),
    row(f"svc0{T}", "A", "NXDOMAIN"),
    row("svc0.svc-nons.example.com.", "A", "NXDOMAIN"),
    row(f"svc6{T}", "AAAA", "NOERROR", f"svc6{T} 5 IN AAAA 1:2::5"),
    row(f"_http._tcp.svc6{T}", "SRV", "NOERROR", f"_http._tcp.svc6{T} 5 IN SRV 0 100 80 svc6{T}",
        additional=(f"svc6{T} 5 IN AAAA 1:2::5",)),
    row(f"svc6{T}", "SRV", "NOERROR", f"svc6{T} 5 IN SRV 0 100 80 svc6{T}",
        additional=(f"svc6{T} 5 IN AAAA 1:2::5",)),
    row("testns.example.com.", "A", "NOERROR"),
    row("testns.example.com.", "SOA", "NOERROR"),
    row(f"svc11{T}", "A", "NOERROR", f"svc11{T} 5 IN A 2.3.4.5"),
    row(f"_http._tcp.svc11{T}", "SRV", "NOERROR", f"_http._tcp.svc11{T} 5 IN SRV 0 100 80 svc11{T}",
        additional=(f"svc11{T} 5 IN A 2.3.4.5",)),
    row(f"svc11{T}", "SRV", "NOERROR", f"svc11{T} 5 IN SRV 0 100 80 svc11{T}",
        additional=(f"svc11{T} 5 IN A 2.3.4.5",)),
    # A load balancer hostname: a CNAME; nothing here serves dummy.hostname, so no more.
    row(f"svc12{T}", "A", "NOERROR", f"svc12{T} 5 IN CNAME dummy.hostname."),
    row(f"_http._tcp.svc12{T}", "SRV", "NOERROR",
        f"_http._tcp.svc12{T} 5 IN SRV 0 100 80 dummy.hostname."),
    row(f"svc12{T}", "SRV", "NOERROR", f"svc12{T} 5 IN SRV 0 100 80 dummy.hostname."),
    row(f"svc-headless{T}", "A", "NOERROR",
        f"svc-headless{T} 5 IN A 1.2.3.4", f"svc-headless{T} 5 IN A 1.2.3.5"),
    row(f"svc-headless{T}", "SRV", "NOERROR",
        f"svc-headless{T} 5 IN SRV 0 50 80 endpoint-svc-0{H}",
        f"svc-headless{T} 5 IN SRV 0 50 80 endpoint-svc-1{H}",
        additional=(f"endpoint-svc-0{H} 5 IN A 1.2.3.4", f"endpoint-svc-1{H} 5 IN A 1.2.3.5")),
    row(f"_http._tcp.svc-headless{T}", "SRV", "NOERROR",
        f"_http._tcp.svc-headless{T} 5 IN SRV 0 50 80 endpoint-svc-0{H}",
        f"_http._tcp.svc-headless{T} 5 IN SRV 0 50 80 endpoint-svc-1{H}",
        additional=(f"endpoint-svc-0{H} 5 IN A 1.2.3.4", f"endpoint-svc-1{H} 5 IN A 1.2.3.5")),
    row(f"endpoint-svc-0{H}", "SRV", "NOERROR",
        f"endpoint-svc-0{H} 5 IN SRV 0 100 80 endpoint-svc-0{H}",
        additional=(f"endpoint-svc-0{H} 5 IN A 1.2.3.4",)),
    row(f"endpoint-svc-1{H}", "A", "NOERROR", f"endpoint-svc-1{H} 5 IN A 1.2.3.5"),
    # ... and more
    row(f"1-2-3-6{H}", "A", "NXDOMAIN"),  # not ready
    row(f"plain{T}", "A", "NXDOMAIN"),  # no external address
    # CoreDNS: with headless, an endpoint label under a ClusterIP Service without external
    # addresses names that endpoint; under one with external addresses, any label gets them.
    row(f"p0.plain{T}", "A", "NOERROR", f"p0.plain{T} 5 IN A 10.2.0.1"),
    row(f"p1.plain{T}", "A", "NXDOMAIN"),
    row(f"anything.svc1{T}", "A", "NOERROR", f"anything.svc1{T} 5 IN A 1.2.3.4"),
    row(f"multi{T}", "SRV", "NOERROR",
        f"multi{T} 5 IN SRV 0 50 80 multi{T}", f"multi{T} 5 IN SRV 0 50 443 multi{T}",
        additional=(f"multi{T} 5 IN A 10.1.1.1",)),
    row(f"_https._tcp.multi{T}", "SRV", "NOERROR",
        f"_https._tcp.multi{T} 5 IN SRV 0 100 443 multi{T}",
        additional=(f"multi{T} 5 IN A 10.1.1.1",)),
    row(f"_https._udp.multi{T}", "SRV", "NXDOMAIN"),
    row(f"multi{T}", "TXT", "NOERROR"),
    row(f"noports{T}", "A", "NOERROR", f"noports{T} 5 IN A 5.6.7.8"),
    row(f"noports{T}", "SRV", "NOERROR"),
    row(f"a.b.c.svc1{T}", "A", "NXDOMAIN"),
    # the apex and the nameserver
    row("example.com.", "SOA", "NOERROR", SOA),
    row("example.com.", "NS", "NOERROR", "example.com. 5 IN NS ns1.dns.example.com.",
        additional=("ns1.dns.example.com. 5 IN A 192.0.2.53",
                    "ns1.dns.example.com. 5 IN AAAA 2001:db8::53")),
    row("example.com.", "A", "NOERROR"),
    row("dns.example.com.", "A", "NOERROR"),
    row("ns1.dns.example.com.", "A", "NOERROR", "ns1.dns.example.com. 5 IN A 192.0.2.53"),
    row("ns1.dns.example.com.", "AAAA", "NOERROR", "ns1.dns.example.com. 5 IN AAAA 2001:db8::53"),
    row("ns1.dns.example.com.", "TXT", "NOERROR"),
    row("ns2.dns.example.com.", "A", "NXDOMAIN"),
]  # fmt: skip


@pytest.mark.parametrize("case", ROWS)
async def test_table(server: RunningServer, case: Case) -> None:
    check(await query(server.port, case.qname, case.qtype), case)


@pytest.mark.parametrize("case", ROWS[3:12])
async def test_table_over_tcp_in_mixed_case(server: RunningServer, case: Case) -> None:
    """The answer owner keeps the client's letter case (it points at the question)."""
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(case.qname))
    response = await query(server.port, mixed, case.qtype, tcp=True)
    check(response, case)
    if response.answer:
        assert response.answer[0].name.to_text() == mixed


async def test_kubernetes_zone_unchanged(server: RunningServer) -> None:
    response = await query(server.port, "svc1.testns.svc.cluster.local.", "A")
    assert lines(response.answer) == expected(("svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1",))


async def test_both_plugins_stay_on_the_fast_path(server: RunningServer) -> None:
    """k8s_external comes before kubernetes in the chain: were it not a fast answerer, every
    cluster name of the block would go down the slow chain."""
    instance = server.app.instance
    assert instance is not None
    (block,) = instance.blocks
    assert [step.name for step in block.fast_steps] == ["k8s_external", "kubernetes"]
    external = server.plugin("k8s_external")
    wire = dns.message.make_query(f"svc1{T}", "A").to_wire()
    reply = external.answer_fast(parse_query(wire), 512, 4096)  # type: ignore[attr-defined]
    assert isinstance(reply, FastReply)
    message = dns.message.from_wire(reply.wire)
    assert lines(message.answer) == expected((f"svc1{T} 5 IN A 1.2.3.4",))
    outside = dns.message.make_query("svc1.testns.svc.cluster.local.", "A").to_wire()
    assert external.answer_fast(parse_query(outside), 512, 4096) is None  # type: ignore[attr-defined]


async def test_without_headless_endpoints_are_not_answered(tmp_path: Path) -> None:
    folder = write_manifests(tmp_path / "m", objects())
    async with running_server(corefile(folder, options="ttl 30")) as running:
        assert await running.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
        response = await query(running.port, f"svc-headless{T}", "A")
        assert response.rcode() == dns.rcode.NXDOMAIN
        response = await query(running.port, f"svc1{T}", "A")
        assert lines(response.answer) == expected((f"svc1{T} 30 IN A 1.2.3.4",))


async def test_fallthrough_passes_missing_names_on(tmp_path: Path) -> None:
    folder = write_manifests(tmp_path / "m", objects())
    text = corefile(folder, options="fallthrough").replace("}\n}", "}\n    whoami\n}")
    async with running_server(text) as running:
        assert await running.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
        missing = await query(running.port, f"svc0{T}", "A")
        assert missing.rcode() == dns.rcode.NOERROR
        assert missing.additional, "whoami answered"  # its A/AAAA of the client
        found = await query(running.port, f"svc1{T}", "A")
        assert lines(found.answer) == expected((f"svc1{T} 5 IN A 1.2.3.4",))


async def test_a_changed_service_is_answered_at_once(tmp_path: Path) -> None:
    """The reply memo keeps the first answer; changing the Service's externalIPs in its
    manifest must drop it."""
    folder = write_manifests(tmp_path / "m", objects())
    async with running_server(corefile(folder)) as running:
        assert await running.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
        for _ in range(3):  # memoised
            response = await query(running.port, f"svc1{T}", "A")
            assert lines(response.answer) == expected((f"svc1{T} 5 IN A 1.2.3.4",))
        (path,) = folder.glob("*-Service-testns-svc1.json")
        obj = json.loads(path.read_text())
        obj["spec"]["externalIPs"] = ["9.9.9.9"]
        path.write_text(json.dumps(obj))
        for _ in range(100):
            response = await query(running.port, f"svc1{T}", "A")
            if lines(response.answer) == expected((f"svc1{T} 5 IN A 9.9.9.9",)):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"still {response.answer}")


async def test_without_kubernetes_it_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(CorefileError) as err:
        async with running_server(".:0 {\n    k8s_external example.org\n}\n"):
            pass
    assert "Corefile:2: k8s_external: kubernetes plugin not loaded" in str(err.value)
