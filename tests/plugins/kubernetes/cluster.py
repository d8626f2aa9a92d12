"""The test cluster (as API objects) and the table of spec rules the kubernetes plugin answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from tests.helpers.kubeapi import endpoint_slice, namespace, pod, service

Obj = dict[str, Any]
ZONE = "cluster.local."
SOA = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 5"
SOA_IN_ADDR = (
    "in-addr.arpa. 5 IN SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. 0 7200 1800 86400 5"
)
HTTP = (("http", 80, "TCP"),)


def objects() -> list[Obj]:
    """Every object of the test cluster, in an order an API server accepts."""
    return [
        namespace("testns", {"team": "a"}),
        namespace("other", {"team": "b"}),
        namespace("kube-system"),
        service("kube-dns", "kube-system", cluster_ip="10.0.0.10", ports=(("dns", 53, "UDP"),)),
        service("svc1", "testns", cluster_ip="10.0.0.1", ports=HTTP, labels={"app": "one"}),
        endpoint_slice(
            "svc1-a", "svc1", "testns", addresses=["172.0.0.1"], hostnames={"172.0.0.1": "ep1a"}
        ),
        service("svcempty", "testns", cluster_ip="10.0.0.9", ports=HTTP),
        service("svc6", "testns", cluster_ip="1234:abcd::1", ports=HTTP),
        service(
            "svc-dual-stack", "testns", cluster_ips=["10.0.0.3", "10::3"], cluster_ip="10.0.0.3"
        ),
        service("hdls1", "testns", cluster_ip="None", ports=HTTP),
        endpoint_slice(
            "hdls1-v4",
            "hdls1",
            "testns",
            addresses=["172.0.0.2", "172.0.0.3", "172.0.0.4", "172.0.0.5", ("172.0.0.6", False)],
            hostnames={"172.0.0.4": "dup-name", "172.0.0.5": "dup-name"},
        ),
        endpoint_slice(
            "hdls1-v6",
            "hdls1",
            "testns",
            addresses=["5678:abcd::1", "5678:abcd::2"],
            address_type="IPv6",
        ),
        service("hdlsprtls", "testns", cluster_ip="None", ports=()),
        endpoint_slice("hdlsprtls-a", "hdlsprtls", "testns", addresses=["172.0.0.20"], ports=()),
        service("pnr", "testns", cluster_ip="None", ports=HTTP, publish_not_ready=True),
        endpoint_slice("pnr-a", "pnr", "testns", addresses=[("172.0.0.30", False)]),
        service("hdlsempty", "testns", cluster_ip="None", ports=HTTP),
        service("external", "testns", type="ExternalName", external_name="ext.interwebs.test"),
        service(
            "external-to-service",
            "testns",
            type="ExternalName",
            external_name="svc1.testns.svc.cluster.local",
        ),
        service("svc2", "other", cluster_ip="10.0.0.2", ports=HTTP, labels={"app": "two"}),
        pod("foo", "testns", ip="10.240.0.1"),
    ]


def write_manifests(folder: Path, objs: list[Obj] | None = None) -> Path:
    """The objects as a manifests folder: one JSON file per object."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, obj in enumerate(objects() if objs is None else objs):
        meta = obj["metadata"]
        name = f"{index:02d}-{obj['kind']}-{meta.get('namespace', '')}-{meta['name']}.json"
        (folder / name).write_text(json.dumps(obj))
    return folder


@dataclass(frozen=True)
class Case:
    qname: str
    qtype: str
    rcode: str
    answer: tuple[str, ...] = ()
    additional: tuple[str, ...] = ()
    authority: tuple[str, ...] | None = None  # None: the zone SOA when the answer is empty

    def expected_authority(self) -> tuple[str, ...]:
        if self.authority is not None:
            return self.authority
        if self.answer:
            return ()
        return (SOA_IN_ADDR,) if self.qname.endswith("in-addr.arpa.") else (SOA,)


def row(qname: str, qtype: str, rcode: str, *answer: str, additional: tuple[str, ...] = ()) -> Any:
    case = Case(qname, qtype, rcode, tuple(answer), additional)
    short = qname.removesuffix(".cluster.local.").removesuffix(".")
    return pytest.param(case, id=f"{short} {qtype} → {rcode}")


S = ".testns.svc.cluster.local."
ROWS = [
    # 2.3 ClusterIP Services
    row("svc1" + S, "A", "NOERROR", f"svc1{S} 5 IN A 10.0.0.1"),
    row("svc1" + S, "AAAA", "NOERROR"),
    row(
        "svc1" + S,
        "SRV",
        "NOERROR",
        f"svc1{S} 5 IN SRV 0 100 80 svc1{S}",
        additional=(f"svc1{S} 5 IN A 10.0.0.1",),
    ),
    row(
        "_http._tcp.svc1" + S,
        "SRV",
        "NOERROR",
        f"_http._tcp.svc1{S} 5 IN SRV 0 100 80 svc1{S}",
        additional=(f"svc1{S} 5 IN A 10.0.0.1",),
    ),
    row("_http._udp.svc1" + S, "SRV", "NXDOMAIN"),
    row("_tcp.svc1" + S, "SRV", "NOERROR"),  # empty non-terminal
    row("ep1a.svc1" + S, "A", "NOERROR", f"ep1a.svc1{S} 5 IN A 172.0.0.1"),
    row("svcempty" + S, "A", "NOERROR", f"svcempty{S} 5 IN A 10.0.0.9"),
    row("svc6" + S, "AAAA", "NOERROR", f"svc6{S} 5 IN AAAA 1234:abcd::1"),
    row("svc6" + S, "A", "NOERROR"),
    row(
        "_http._tcp.svc6" + S,
        "SRV",
        "NOERROR",
        f"_http._tcp.svc6{S} 5 IN SRV 0 100 80 svc6{S}",
        additional=(f"svc6{S} 5 IN AAAA 1234:abcd::1",),
    ),
    row("svc-dual-stack" + S, "A", "NOERROR", f"svc-dual-stack{S} 5 IN A 10.0.0.3"),
    row("svc-dual-stack" + S, "AAAA", "NOERROR", f"svc-dual-stack{S} 5 IN AAAA 10::3"),
    row(
        "svc-dual-stack" + S,
        "SRV",
        "NOERROR",
        f"svc-dual-stack{S} 5 IN SRV 0 50 80 svc-dual-stack{S}",
        additional=(f"svc-dual-stack{S} 5 IN A 10.0.0.3", f"svc-dual-stack{S} 5 IN AAAA 10::3"),
    ),
    row("svc1" + S, "TXT", "NOERROR"),
    row("svc1" + S, "SOA", "NOERROR"),
    # 2.4 headless Services
    row("hdls1" + S, "A", "NOERROR", *(f"hdls1{S} 5 IN A 172.0.0.{i}" for i in (2, 3, 4, 5))),
    row(
        "hdls1" + S,
        "AAAA",
        "NOERROR",
        f"hdls1{S} 5 IN AAAA 5678:abcd::1",
        f"hdls1{S} 5 IN AAAA 5678:abcd::2",
    ),
    row("172-0-0-2.hdls1" + S, "A", "NOERROR", f"172-0-0-2.hdls1{S} 5 IN A 172.0.0.2"),
    row("172-0-0-6.hdls1" + S, "A", "NXDOMAIN"),  # not ready
    row(
        "dup-name.hdls1" + S,
        "A",
        "NOERROR",
        f"dup-name.hdls1{S} 5 IN A 172.0.0.4",
        f"dup-name.hdls1{S} 5 IN A 172.0.0.5",
    ),
    row(
        "5678-abcd--1.hdls1" + S, "AAAA", "NOERROR", f"5678-abcd--1.hdls1{S} 5 IN AAAA 5678:abcd::1"
    ),
    row("5678-abcd--1.hdls1" + S, "A", "NOERROR"),
    row(
        "_http._tcp.hdls1" + S,
        "SRV",
        "NOERROR",
        *(
            f"_http._tcp.hdls1{S} 5 IN SRV 0 16 80 {t}.hdls1{S}"
            for t in ("172-0-0-2", "172-0-0-3", "dup-name", "5678-abcd--1", "5678-abcd--2")
        ),
        additional=(
            f"172-0-0-2.hdls1{S} 5 IN A 172.0.0.2",
            f"172-0-0-3.hdls1{S} 5 IN A 172.0.0.3",
            f"dup-name.hdls1{S} 5 IN A 172.0.0.4",
            f"dup-name.hdls1{S} 5 IN A 172.0.0.5",
            f"5678-abcd--1.hdls1{S} 5 IN AAAA 5678:abcd::1",
            f"5678-abcd--2.hdls1{S} 5 IN AAAA 5678:abcd::2",
        ),
    ),
    row("bogusendpoint.hdls1" + S, "A", "NXDOMAIN"),
    row("hdlsprtls" + S, "A", "NOERROR", f"hdlsprtls{S} 5 IN A 172.0.0.20"),
    row("hdlsprtls" + S, "SRV", "NOERROR"),
    row("172-0-0-20.hdlsprtls" + S, "A", "NOERROR", f"172-0-0-20.hdlsprtls{S} 5 IN A 172.0.0.20"),
    row("pnr" + S, "A", "NOERROR", f"pnr{S} 5 IN A 172.0.0.30"),  # publishNotReadyAddresses
    row("hdlsempty" + S, "A", "NXDOMAIN"),  # headless without ready endpoints
    # 2.5 ExternalName
    row("external" + S, "CNAME", "NOERROR", f"external{S} 5 IN CNAME ext.interwebs.test."),
    row("external" + S, "A", "NOERROR", f"external{S} 5 IN CNAME ext.interwebs.test."),
    row(
        "external-to-service" + S,
        "A",
        "NOERROR",
        f"external-to-service{S} 5 IN CNAME svc1{S}",
        f"svc1{S} 5 IN A 10.0.0.1",
    ),
    row("endpoint.external" + S, "CNAME", "NXDOMAIN"),
    # names that do not exist, and those that exist without records
    row("svc0" + S, "A", "NXDOMAIN"),
    row("svc0.svc-nons.svc.cluster.local.", "A", "NXDOMAIN"),
    row("testns.svc.cluster.local.", "A", "NOERROR"),
    row("nonexistent.svc.cluster.local.", "A", "NXDOMAIN"),
    row("svc.cluster.local.", "A", "NOERROR"),
    row("svc.cluster.local.", "NS", "NOERROR"),
    row("pod.cluster.local.", "A", "NOERROR"),
    row("foo.cluster.local.", "NS", "NXDOMAIN"),
    row("foo.svc.cluster.local.", "NS", "NXDOMAIN"),
    row("svc1.other.svc.cluster.local.", "A", "NXDOMAIN"),
    row(
        "svc2.other.svc.cluster.local.",
        "A",
        "NOERROR",
        "svc2.other.svc.cluster.local. 5 IN A 10.0.0.2",
    ),
    # 2.2 schema version, apex
    row(
        "dns-version.cluster.local.",
        "TXT",
        "NOERROR",
        'dns-version.cluster.local. 28800 IN TXT "1.1.0"',
    ),
    row("dns-version.cluster.local.", "A", "NOERROR"),
    row("cluster.local.", "SOA", "NOERROR", SOA),
    row(
        "cluster.local.",
        "NS",
        "NOERROR",
        "cluster.local. 5 IN NS ns.dns.cluster.local.",
        additional=("ns.dns.cluster.local. 5 IN A 10.0.0.10",),
    ),
    row("cluster.local.", "A", "NOERROR"),
    row("ns.dns.cluster.local.", "A", "NOERROR", "ns.dns.cluster.local. 5 IN A 10.0.0.10"),
    row("dns.cluster.local.", "A", "NOERROR"),
    # 2.6 pod records (pods insecure)
    row(
        "1-2-3-4.testns.pod.cluster.local.",
        "A",
        "NOERROR",
        "1-2-3-4.testns.pod.cluster.local. 5 IN A 1.2.3.4",
    ),
    row("1-2-3-4.testns.pod.cluster.local.", "AAAA", "NOERROR"),
    row(
        "fd00--1.testns.pod.cluster.local.",
        "AAAA",
        "NOERROR",
        "fd00--1.testns.pod.cluster.local. 5 IN AAAA fd00::1",
    ),
    row("1-2-3-4.nonexistent.pod.cluster.local.", "A", "NXDOMAIN"),
    row("notanip.testns.pod.cluster.local.", "A", "NXDOMAIN"),
    row("testns.pod.cluster.local.", "A", "NOERROR"),
    # PTR
    row("1.0.0.10.in-addr.arpa.", "PTR", "NOERROR", f"1.0.0.10.in-addr.arpa. 5 IN PTR svc1{S}"),
    row(
        "1.0.0.172.in-addr.arpa.",
        "PTR",
        "NOERROR",
        f"1.0.0.172.in-addr.arpa. 5 IN PTR ep1a.svc1{S}",
    ),
    row(
        "4.0.0.172.in-addr.arpa.",
        "PTR",
        "NOERROR",
        f"4.0.0.172.in-addr.arpa. 5 IN PTR dup-name.hdls1{S}",
    ),
    row(
        "2.0.0.172.in-addr.arpa.",
        "PTR",
        "NOERROR",
        f"2.0.0.172.in-addr.arpa. 5 IN PTR 172-0-0-2.hdls1{S}",
    ),
    row("6.0.0.172.in-addr.arpa.", "PTR", "NXDOMAIN"),  # not ready
    row("9.9.9.9.in-addr.arpa.", "PTR", "NXDOMAIN"),
    row("1.0.0.10.in-addr.arpa.", "A", "NOERROR"),
    row("in-addr.arpa.", "SOA", "NOERROR", SOA_IN_ADDR),
    # case-insensitive (the answer echoes the client's case; compared case-insensitively)
    row("SVC1.TestNS.svc.Cluster.Local.", "A", "NOERROR", f"svc1{S} 5 IN A 10.0.0.1"),
]


def _lines(rrsets: list[dns.rrset.RRset]) -> list[str]:
    lines = []
    for rrset in rrsets:
        for rdata in rrset:
            if rrset.rdtype == dns.rdatatype.SOA:
                rdata = rdata.replace(serial=0)
            lines.append(
                f"{rrset.name} {rrset.ttl} IN {dns.rdatatype.to_text(rrset.rdtype)} {rdata}"
            )
    return sorted(line.lower() for line in lines)


def _expected(texts: tuple[str, ...]) -> list[str]:
    rrsets = [dns.rrset.from_text(*_split(text)) for text in texts]
    return _lines(rrsets)


def _split(text: str) -> tuple[str, int, str, str, str]:
    name, ttl, cls, rdtype, rdata = text.split(None, 4)
    return name, int(ttl), cls, rdtype, rdata


def check(response: dns.message.Message, case: Case) -> None:
    """Assert ``response`` answers ``case`` (sections compared as sorted record sets)."""
    assert dns.rcode.to_text(response.rcode()) == case.rcode, response.to_text()
    assert response.flags & dns.flags.AA, "authoritative answer expected"
    assert _lines(response.answer) == _expected(case.answer), response.to_text()
    assert _lines(response.authority) == _expected(case.expected_authority()), response.to_text()
    additional = [r for r in response.additional if r.rdtype != dns.rdatatype.OPT]
    assert _lines(additional) == _expected(case.additional), response.to_text()


def check_zone_case(
    response: dns.message.Message, asked: str, zones: tuple[str, ...] = (ZONE, "in-addr.arpa.")
) -> None:
    """The zone part of names CoreDNS builds from the question's zone keeps the question's
    letter case (0x20): SRV targets, and the SOA's owner, mname and rname. Compared
    case-sensitively, unlike check()."""
    lower = asked.lower()
    zone = max((z for z in zones if lower.endswith("." + z) or lower == z), key=len, default=None)
    if zone is None:
        return
    as_asked = asked[len(asked) - len(zone) :]
    for rrset in [*response.answer, *response.authority]:
        for rdata in rrset:
            names: list[str] = []
            if rrset.rdtype == dns.rdatatype.SRV:
                names = [rdata.target.to_text()]
            elif rrset.rdtype == dns.rdatatype.SOA:
                names = [rrset.name.to_text(), rdata.mname.to_text(), rdata.rname.to_text()]
            for name in names:
                if name.lower().endswith(zone):
                    assert name.endswith(as_asked), (asked, name, response.to_text())


# CoreFile pieces shared by the tests.
def corefile(
    source_lines: str, *, extra: str = "", zones: str = "cluster.local in-addr.arpa ip6.arpa"
) -> str:
    return (
        f"{zones.replace(' ', ':0 ')}:0 {{\n"
        f"    kubernetes {zones} {{\n"
        f"        {source_lines}\n"
        f"        {extra}\n"
        "    }\n"
        "}\n"
    )


__all__ = [
    "ROWS", "Case", "check", "check_zone_case", "corefile", "objects", "write_manifests",
]  # fmt: skip
