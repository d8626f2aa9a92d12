"""Zone transfers against a real server: the kubernetes, k8s_external and file zones with
dnspython's xfr client and dig, IXFR, large zones over several messages, and every way a
transfer is refused."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
import pytest_asyncio

from tests.helpers.kubeapi import endpoint_slice, namespace, service
from tests.helpers.server import RunningServer, running_server
from tests.plugins.k8s_external.cluster import external
from tests.plugins.kubernetes.cluster import write_manifests

pytestmark = pytest.mark.asyncio(loop_scope="module")

FILE_ZONE = """\
$ORIGIN example.org.
@ 300 SOA ns admin 2024010101 7200 3600 1209600 300
@ 300 NS ns
@ 300 MX 10 mail
ns 300 A 192.0.2.53
mail 300 A 192.0.2.25
www 300 CNAME mail
_sip._udp 300 SRV 0 5 5060 mail
deep.sub 300 TXT "hello"
"""
WHOLE = len(FILE_ZONE.splitlines()) - 1 + 1  # every record but $ORIGIN, and the SOA again


def objects() -> list[dict[str, Any]]:
    return [
        namespace("default"),
        namespace("kube-system"),
        external(
            service(
                "kube-dns",
                "kube-system",
                cluster_ip="10.0.0.10",
                ports=(("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")),
            ),
            ["192.0.2.53"],
        ),
        service("web", "default", cluster_ip="10.0.0.20",
                ports=(("http", 80, "TCP"), ("", 8080, "TCP"))),
        service("hdls", "default", cluster_ip="None", ports=(("http", 80, "TCP"),)),
        endpoint_slice("hdls-a", "hdls", "default",
                       addresses=["10.1.0.1", "10.1.0.2", ("10.1.0.3", False)],
                       hostnames={"10.1.0.1": "pod-a"}),
        service("ext", "default", type="ExternalName", external_name="ext.example.net", ports=()),
        external(service("lb", "default", cluster_ip="10.0.0.30", type="LoadBalancer"),
                 ["192.0.2.7"]),
    ]  # fmt: skip


S = ".default.svc.cluster.local."
K = ".kube-system.svc.cluster.local."
SOA_CLUSTER = (
    "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 5"
)
# CoreDNS's plugin/kubernetes/xfr.go, applied by hand to objects() (Services by name).
CLUSTER_AXFR = [
    SOA_CLUSTER,
    "cluster.local. 5 IN NS ns.dns.cluster.local.",
    "ns.dns.cluster.local. 5 IN A 10.0.0.10",
    f"ext{S} 5 IN CNAME ext.example.net.",
    f"hdls{S} 5 IN A 10.1.0.1",
    f"pod-a.hdls{S} 5 IN A 10.1.0.1",
    f"_http._tcp.hdls{S} 5 IN SRV 0 50 80 pod-a.hdls{S}",
    f"hdls{S} 5 IN A 10.1.0.2",
    f"10-1-0-2.hdls{S} 5 IN A 10.1.0.2",
    f"_http._tcp.hdls{S} 5 IN SRV 0 50 80 10-1-0-2.hdls{S}",
    f"kube-dns{K} 5 IN A 10.0.0.10",
    f"kube-dns{K} 5 IN SRV 0 100 53 kube-dns{K}",
    f"_dns._udp.kube-dns{K} 5 IN SRV 0 100 53 kube-dns{K}",
    f"_dns-tcp._tcp.kube-dns{K} 5 IN SRV 0 100 53 kube-dns{K}",
    f"lb{S} 5 IN A 10.0.0.30",
    f"lb{S} 5 IN SRV 0 100 80 lb{S}",
    f"_http._tcp.lb{S} 5 IN SRV 0 100 80 lb{S}",
    f"web{S} 5 IN A 10.0.0.20",
    f"web{S} 5 IN SRV 0 100 80 web{S}",
    f"_http._tcp.web{S} 5 IN SRV 0 100 80 web{S}",
    f"web{S} 5 IN SRV 0 100 8080 web{S}",
    SOA_CLUSTER,
]
E = ".default.example.com."
EK = ".kube-system.example.com."
SOA_EXTERNAL = (
    "example.com. 5 IN SOA ns1.dns.example.com. hostmaster.dns.example.com. 0 7200 1800 86400 5"
)
# What queries for each name answer (k8s_external's table), Services by namespace and name.
EXTERNAL_AXFR = [
    SOA_EXTERNAL,
    "example.com. 5 IN NS ns1.dns.example.com.",
    "ns1.dns.example.com. 5 IN A 192.0.2.53",
    f"hdls{E} 5 IN A 10.1.0.1",
    f"hdls{E} 5 IN A 10.1.0.2",
    f"hdls{E} 5 IN SRV 0 50 80 pod-a.hdls{E}",
    f"hdls{E} 5 IN SRV 0 50 80 10-1-0-2.hdls{E}",
    f"pod-a.hdls{E} 5 IN A 10.1.0.1",
    f"pod-a.hdls{E} 5 IN SRV 0 100 80 pod-a.hdls{E}",
    f"10-1-0-2.hdls{E} 5 IN A 10.1.0.2",
    f"10-1-0-2.hdls{E} 5 IN SRV 0 100 80 10-1-0-2.hdls{E}",
    f"_http._tcp.hdls{E} 5 IN SRV 0 50 80 pod-a.hdls{E}",
    f"_http._tcp.hdls{E} 5 IN SRV 0 50 80 10-1-0-2.hdls{E}",
    f"lb{E} 5 IN A 192.0.2.7",
    f"lb{E} 5 IN SRV 0 100 80 lb{E}",
    f"_http._tcp.lb{E} 5 IN SRV 0 100 80 lb{E}",
    f"kube-dns{EK} 5 IN A 192.0.2.53",
    f"kube-dns{EK} 5 IN SRV 0 50 53 kube-dns{EK}",
    f"_dns._udp.kube-dns{EK} 5 IN SRV 0 100 53 kube-dns{EK}",
    f"_dns-tcp._tcp.kube-dns{EK} 5 IN SRV 0 100 53 kube-dns{EK}",
    SOA_EXTERNAL,
]


def corefile(folder: Path, zone_file: Path, transfer: str = "transfer {\n to *\n }") -> str:
    return (
        ".:0 {\n"
        f"    {transfer}\n"
        f"    kubernetes cluster.local {{\n        manifests {folder}\n    }}\n"
        "    k8s_external example.com {\n        headless\n    }\n"
        f"    file {zone_file} example.org\n"
        "}\n"
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: Any) -> AsyncIterator[RunningServer]:
    folder = Path(tmp_path_factory.mktemp("xfr"))
    write_manifests(folder / "m", objects())
    (folder / "db.example.org").write_text(FILE_ZONE)
    async with running_server(corefile(folder / "m", folder / "db.example.org")) as running:
        assert await running.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
        yield running


def line(rrset: dns.rrset.RRset, rdata: Any) -> str:
    if rrset.rdtype == dns.rdatatype.SOA:
        rdata = rdata.replace(serial=0)
    return f"{rrset.name} {rrset.ttl} IN {dns.rdatatype.to_text(rrset.rdtype)} {rdata}".lower()


def normal(text: str) -> str:
    name, ttl, cls, rdtype, rdata = text.split(None, 4)
    rrset = dns.rrset.from_text(name, int(ttl), cls, rdtype, rdata)
    return line(rrset, rrset[0])


async def transfer(port: int, zone: str, **kwargs: Any) -> list[dns.message.Message]:
    """The messages of one transfer, through dnspython's xfr client (in a thread)."""

    def run() -> list[dns.message.Message]:
        return list(
            dns.query.xfr("127.0.0.1", zone, port=port, lifetime=10, relativize=False, **kwargs)
        )

    return await asyncio.to_thread(run)


def records(messages: list[dns.message.Message]) -> list[str]:
    return [line(rrset, rdata) for m in messages for rrset in m.answer for rdata in rrset]


@pytest.mark.parametrize(
    ("zone", "expected"),
    [("cluster.local.", CLUSTER_AXFR), ("example.com.", EXTERNAL_AXFR)],
    ids=["kubernetes", "k8s_external"],
)
async def test_axfr(server: RunningServer, zone: str, expected: list[str]) -> None:
    got = records(await transfer(server.port, zone))
    want = [normal(text) for text in expected]
    assert got[0] == want[0] and got[-1] == want[-1], "SOA first and last"
    assert sorted(got) == sorted(want)


async def test_axfr_file_zone_matches_the_file(server: RunningServer, tmp_path: Path) -> None:
    messages = await transfer(server.port, "example.org.")
    got = dns.zone.from_xfr(iter(messages), relativize=False)
    want = dns.zone.from_text(FILE_ZONE, origin="example.org.", relativize=False)
    assert got == want
    first, last = messages[0].answer[0], messages[-1].answer[-1]
    assert first.rdtype == last.rdtype == dns.rdatatype.SOA


@pytest.mark.skipif(shutil.which("dig") is None, reason="needs dig")
async def test_dig_axfr(server: RunningServer) -> None:
    def run() -> str:
        return subprocess.run(
            ["dig", "@127.0.0.1", "-p", str(server.port), "AXFR", "cluster.local.", "+nocomments"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip

    out = await asyncio.to_thread(run)
    assert f"XFR size: {len(CLUSTER_AXFR)} records (messages 1" in out, out
    assert "web.default.svc.cluster.local." in out


@pytest.mark.parametrize(
    ("zone", "serial", "count"),
    [
        ("example.org.", 2024010101, 1),
        ("example.org.", 2024010100, WHOLE),
        ("example.org.", 0, WHOLE),
    ],
    ids=["current serial: SOA alone", "older serial: the whole zone", "serial 0: whole zone"],
)
async def test_ixfr(server: RunningServer, zone: str, serial: int, count: int) -> None:
    messages = await transfer(server.port, zone, rdtype=dns.rdatatype.IXFR, serial=serial)
    assert len(records(messages)) == count


async def test_ixfr_kubernetes_current_serial(server: RunningServer) -> None:
    soa = (await transfer(server.port, "cluster.local."))[0].answer[0][0]
    messages = await transfer(
        server.port, "cluster.local.", rdtype=dns.rdatatype.IXFR, serial=soa.serial
    )
    assert len(records(messages)) == 1


async def ask(port: int, name: str, rdtype: str | int, *, tcp: bool = True) -> int:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        reply = await dns.asyncquery.tcp(query, "127.0.0.1", port=port, timeout=3)
    else:
        reply = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=3)
    return reply.rcode()


@pytest.mark.parametrize(
    ("name", "rdtype", "tcp", "rcode"),
    [
        ("cluster.local.", "AXFR", False, dns.rcode.REFUSED),
        ("example.org.", "IXFR", False, dns.rcode.REFUSED),
        # Not a zone of any transferer: on to the record plugin, which refuses it.
        ("svc.cluster.local.", "AXFR", True, dns.rcode.REFUSED),
        ("www.example.org.", "AXFR", True, dns.rcode.REFUSED),
        # IXFR without the client's SOA in the authority section.
        ("example.org.", "IXFR", True, dns.rcode.SERVFAIL),
        # Transfers change nothing else.
        ("web.default.svc.cluster.local.", "A", False, dns.rcode.NOERROR),
    ],
    ids=lambda v: str(v) if not isinstance(v, int) or isinstance(v, bool) else "",
)
async def test_refusals_with_transfer(
    server: RunningServer, name: str, rdtype: str, tcp: bool, rcode: int
) -> None:
    assert await ask(server.port, name, rdtype, tcp=tcp) == rcode


@pytest.mark.parametrize(
    "transfer_line",
    ["", "transfer {\n to 192.0.2.1 [2001:db8::1]:53\n }", "transfer other.test {\n to *\n }"],
    ids=["no transfer", "not in the to list", "transfer of another zone"],
)
async def test_refused_without_a_matching_transfer(tmp_path: Path, transfer_line: str) -> None:
    """Before transfer existed, AXFR got NOERROR with the SOA; CoreDNS refuses it."""
    write_manifests(tmp_path / "m", objects())
    (tmp_path / "db.example.org").write_text(FILE_ZONE)
    text = corefile(tmp_path / "m", tmp_path / "db.example.org", transfer=transfer_line)
    async with running_server(text) as running:
        assert await running.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
        for zone in ("cluster.local.", "example.com.", "example.org."):
            for rdtype in ("AXFR", "IXFR"):
                assert await ask(running.port, zone, rdtype) == dns.rcode.REFUSED, (zone, rdtype)
                assert await ask(running.port, zone, rdtype, tcp=False) == dns.rcode.REFUSED


def big_zone(count: int = 6000) -> str:
    """A zone of about 300 KB: five or more transfer messages."""
    hosts = "".join(f"host-{i:05d} 300 A 10.0.{i // 256}.{i % 256}\n" for i in range(count))
    return FILE_ZONE.replace("example.org.", "big.test.") + hosts


async def test_large_zone_goes_in_several_messages(tmp_path: Path) -> None:
    hosts = "".join(
        f"host-{i:05d} 300 A 10.{i // 65536}.{i // 256 % 256}.{i % 256}\n" for i in range(6000)
    )
    (tmp_path / "db.big").write_text(FILE_ZONE.replace("example.org.", "big.test.") + hosts)
    text = (
        f"big.test:0 {{\n    transfer {{\n to 127.0.0.1\n }}\n    file {tmp_path / 'db.big'}\n}}\n"
    )
    async with running_server(text) as running:
        messages = await transfer(running.port, "big.test.")
        assert len(messages) > 2
        assert all(len(m.to_wire()) <= 65535 for m in messages)
        got = dns.zone.from_xfr(iter(messages), relativize=False)
        want = dns.zone.from_file(str(tmp_path / "db.big"), origin="big.test.", relativize=False)
        assert got == want


async def test_through_cache_loadbalance_and_log(tmp_path: Path) -> None:
    """In a kubeadm-like block, the plugins before transfer pass it through untouched, and
    the cache keeps nothing of it: the second transfer of a zone of several messages is
    whole too (a cached first message would end it)."""
    (tmp_path / "db.big").write_text(big_zone())
    text = (
        "big.test:0 {\n    errors\n    log\n    cache 30\n    loadbalance\n"
        "    transfer {\n        to 127.0.0.1\n    }\n"
        f"    file {tmp_path / 'db.big'}\n"
        "}\n"
    )
    want = dns.zone.from_file(str(tmp_path / "db.big"), origin="big.test.", relativize=False)
    async with running_server(text) as running:
        for _ in range(2):
            messages = await transfer(running.port, "big.test.")
            assert len(messages) > 2
            assert dns.zone.from_xfr(iter(messages), relativize=False) == want
        assert await ask(running.port, "big.test.", "AXFR", tcp=False) == dns.rcode.REFUSED


@pytest.mark.skipif(shutil.which("dig") is None, reason="needs dig")
async def test_dig_axfr_of_the_demo_cluster() -> None:
    """The README's demo cluster (examples/cluster), transferred with dig: the names the
    README shows answered one by one are all in it, between two SOAs."""
    demo = Path(__file__).resolve().parents[3] / "examples" / "cluster"
    text = (
        ".:0 {\n    transfer {\n        to *\n    }\n"
        f"    kubernetes cluster.local in-addr.arpa {{\n        manifests {demo}\n    }}\n"
        "}\n"
    )
    async with running_server(text) as running:
        assert await running.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]

        def dig(zone: str) -> str:
            return subprocess.run(
                ["dig", "@127.0.0.1", "-p", str(running.port), "AXFR", zone, "+nocomments"],
                capture_output=True, text=True, timeout=10, check=True,
            ).stdout  # fmt: skip

        out = await asyncio.to_thread(dig, "cluster.local.")
        found = {tuple(line.split()) for line in out.splitlines() if line and line[0] != ";"}
        for record in [
            ("mysql-service.default.svc.cluster.local.", "5", "IN", "A", "10.96.162.44"),
            ("kube-dns.kube-system.svc.cluster.local.", "5", "IN", "A", "10.96.0.10"),
            ("web-0.web.default.svc.cluster.local.", "5", "IN", "A", "10.244.1.20"),
            ("queue.shared.svc.cluster.local.", "5", "IN", "A", "10.103.75.49"),
            ("search.default.svc.cluster.local.", "5", "IN", "CNAME", "www.example.com."),
        ]:
            assert record in found, out
        assert sum(" SOA " in f" {' '.join(r)} " for r in found) == 1  # the same SOA twice
        assert out.count("\tSOA\t") == 2, out
        # A reverse zone is not transferred: refused by the kubernetes plugin.
        assert "Transfer failed" in await asyncio.to_thread(dig, "in-addr.arpa.")
