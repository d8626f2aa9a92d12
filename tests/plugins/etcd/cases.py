"""The SkyDNS keys the etcd tests write and the table of answers they must give.

The keys follow CoreDNS's plugin/etcd tests (lookup_test.go, group_test.go, other_test.go)
plus the seed articles' records (zone kube.local). Each row's records are in the order the
reply carries them (etcd's key order, then CoreDNS's order of work), so a row also builds
the reply byte for byte with dnspython (the oracle in test_answers.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

R = "/skydns/test/skydns"
SEED_VALUE = '{"host":"10.254.162.44","priority":10,"weight":10,"ttl":30,"targetstrip":0}'


def _j(**fields: Any) -> str:
    return json.dumps(fields)


KEYS: dict[str, str] = {
    # CoreDNS's lookup_test.go
    f"{R}/region1/dev/server1/a": _j(host="dev.server1", port=8080),
    f"{R}/region1/prod/server1/a": _j(host="10.0.0.1", port=8080),
    f"{R}/region1/prod/server1/b": _j(host="10.0.0.2", port=8080),
    f"{R}/region1/prod/server6/b": _j(host="::1", port=8080),
    f"{R}/region1/prod/server1/txt/a": _j(text="sometext"),
    f"{R}/region1/prod/server1/txt/b": _j(text="moretext"),
    f"{R}/region1/prod/cname": _j(host="unresolvable.skydns.test"),
    f"{R}/priority": _j(host="priority.server1", priority=333, port=8080),
    f"{R}/region1/sub/a": _j(host="sub.server1", port=0),
    f"{R}/region1/sub/b": _j(host="sub.server2", port=80),
    f"{R}/region1/sub/c": _j(host="10.0.0.1", port=8080),
    f"{R}/targetstrip/a": _j(host="10.0.0.1", port=8080, targetstrip=1),
    f"{R}/cname/b": _j(host="a.cname.skydns.test"),
    f"{R}/cname/a": _j(host="b.cname.skydns.test"),
    f"{R}/dns/ns/a": _j(host="10.0.0.2"),
    f"{R}/dns/ns/b": _j(host="10.0.0.3"),
    f"{R}/dns/ns/c/ns1": _j(host="10.0.0.4", targetstrip=1),
    f"{R}/dns/ns/c/ns2": _j(host="10.0.0.5", targetstrip=1),
    "/skydns/arpa/in-addr/10/0/0/1": _j(host="reverse.example.com"),
    # CNAME chains inside the zone and out of it
    f"{R}/alias": _j(host="server1.prod.region1.skydns.test", ttl=60),
    f"{R}/chain/one": _j(host="two.chain.skydns.test"),
    f"{R}/chain/two": _j(host="10.0.0.9", ttl=20),
    f"{R}/ext": _j(host="www.example.org"),
    # MX (other_test.go's shape): a name with its address, an IP as host
    f"{R}/mail/a": _j(host="mx.skydns.test", priority=50, mail=True),
    f"{R}/mail/b": _j(host="10.0.0.26", priority=20, mail=True),
    f"{R}/mx": _j(host="10.0.0.25"),
    # group_test.go
    f"{R}/groups/dom/a": _j(host="127.0.0.1", group="g1"),
    f"{R}/groups/dom/sub/b": _j(host="127.0.0.2", group="g1"),
    f"{R}/groups/dom1/a": _j(host="127.0.0.1", group="g1"),
    f"{R}/groups/dom1/sub/b": _j(host="127.0.0.2", group="g2"),
    f"{R}/groups/dom2/a": _j(host="127.0.0.1", group="g1"),
    f"{R}/groups/dom2/sub/b": _j(host="127.0.0.2"),
    # sizes
    **{f"{R}/big/r{i:02d}": _j(host=f"10.1.0.{i}") for i in range(40)},
    f"{R}/text/long": _j(text="x" * 300),
    f"{R}/dual/a": _j(host="10.0.0.30"),
    f"{R}/dual/b": _j(host="fd00::30"),
    # the apex's own records, and zones without any
    "/skydns/test/apex/dns/apex/x1": _j(host="1.1.1.1", ttl=60),
    "/skydns/test/apex/dns/apex/x2": _j(host="1.1.1.2", ttl=60),
    "/skydns/test/apex/www": _j(host="10.5.5.5"),
    "/skydns/test/broken/bad": "not json",
    # the seed articles (000, 004): what kube2sky wrote for mysql-service
    "/skydns/local/kube/svc/default/mysql-service/2f1020d6": SEED_VALUE,
    "/skydns/local/kube/default/mysql-service": SEED_VALUE,
}
ZONES = "skydns.test kube.local apex.test empty.test broken.test in-addr.arpa"
EXTERNAL = {("www.example.org.", "A"): "www.example.org. 300 IN A 10.9.9.9"}


def soa(zone: str, serial: int) -> str:
    return f"{zone} 30 IN SOA ns.dns.{zone} hostmaster.{zone} {serial} 7200 1800 86400 30"


@dataclass(frozen=True)
class Case:
    qname: str
    qtype: str
    rcode: str
    answer: tuple[str, ...] = ()
    additional: tuple[str, ...] = ()
    # Negative answers carry the zone's SOA in the authority section.
    zone: str = "skydns.test."
    # False: the fast path hands it to the chain (a target outside the zone is looked up).
    fast: bool = True
    soa_answer: bool = False

    @property
    def negative(self) -> bool:
        return not self.answer and not self.soa_answer


def row(
    qname: str,
    qtype: str,
    rcode: str,
    *answer: str,
    additional: tuple[str, ...] = (),
    zone: str = "skydns.test.",
    fast: bool = True,
    soa_answer: bool = False,
    note: str = "",
) -> Any:
    case = Case(qname, qtype, rcode, answer, additional, zone, fast, soa_answer)
    short = qname.removesuffix(".")
    return pytest.param(case, id=f"{short} {qtype} → {rcode}{' ' + note if note else ''}")


S = ".skydns.test."
P1 = f"server1.prod.region1{S}"
KUBE = "mysql-service.default.svc.kube.local."
ROWS = [
    # the seeds: the article's names, with the TTL kube2sky wrote
    row(KUBE, "A", "NOERROR", f"{KUBE} 30 IN A 10.254.162.44", zone="kube.local.", note="seed"),
    row(
        "mysql-service.default.kube.local.",
        "A",
        "NOERROR",
        "mysql-service.default.kube.local. 30 IN A 10.254.162.44",
        zone="kube.local.",
        note="seed exact key",
    ),
    row(
        KUBE,
        "SRV",
        "NOERROR",
        f"{KUBE} 30 IN SRV 10 100 0 2f1020d6.{KUBE}",
        additional=(f"2f1020d6.{KUBE} 30 IN A 10.254.162.44",),
        zone="kube.local.",
    ),
    row(KUBE, "AAAA", "NOERROR", zone="kube.local.", note="NODATA"),
    row(KUBE, "CNAME", "NOERROR", zone="kube.local.", note="records only below: NODATA"),
    row(
        "svc.kube.local.",
        "A",
        "NOERROR",
        "svc.kube.local. 30 IN A 10.254.162.44",
        zone="kube.local.",
        note="SkyDNS reads the whole subtree",
    ),
    row(
        "kube.local.",
        "A",
        "NOERROR",
        "kube.local. 30 IN A 10.254.162.44",
        zone="kube.local.",
        note="apex falls back to the zone's subtree, one A per address",
    ),
    row("nope.default.svc.kube.local.", "A", "NXDOMAIN", zone="kube.local."),
    row(
        "MySQL-Service.Default.SVC.kube.LOCAL.",
        "A",
        "NOERROR",
        f"{KUBE} 30 IN A 10.254.162.44",
        zone="kube.local.",
        note="0x20 case",
    ),
    # lookup_test.go
    row(f"a.{P1}", "A", "NOERROR", f"a.{P1} 300 IN A 10.0.0.1"),
    row(
        f"a.{P1}",
        "SRV",
        "NOERROR",
        f"a.{P1} 300 IN SRV 10 100 8080 a.{P1}",
        additional=(f"a.{P1} 300 IN A 10.0.0.1",),
    ),
    row(
        f"b.server6.prod.region1{S}",
        "AAAA",
        "NOERROR",
        f"b.server6.prod.region1{S} 300 IN AAAA ::1",
    ),
    row(P1, "A", "NOERROR", f"{P1} 300 IN A 10.0.0.1", f"{P1} 300 IN A 10.0.0.2"),
    row(P1, "TXT", "NOERROR", f'{P1} 300 IN TXT "sometext"', f'{P1} 300 IN TXT "moretext"'),
    row(
        f"txt.{P1}",
        "TXT",
        "NOERROR",
        f'txt.{P1} 300 IN TXT "sometext"',
        f'txt.{P1} 300 IN TXT "moretext"',
    ),
    row(
        f"priority{S}",
        "SRV",
        "NOERROR",
        f"priority{S} 300 IN SRV 333 100 8080 priority.server1.",
        fast=False,
    ),
    row(
        f"sub.region1{S}",
        "SRV",
        "NOERROR",
        f"sub.region1{S} 300 IN SRV 10 33 0 sub.server1.",
        f"sub.region1{S} 300 IN SRV 10 33 80 sub.server2.",
        f"sub.region1{S} 300 IN SRV 10 33 8080 c.sub.region1{S}",
        additional=(f"c.sub.region1{S} 300 IN A 10.0.0.1",),
        fast=False,
    ),
    row(
        f"targetstrip{S}",
        "SRV",
        "NOERROR",
        f"targetstrip{S} 300 IN SRV 10 100 8080 targetstrip{S}",
        additional=(f"targetstrip{S} 300 IN A 10.0.0.1",),
    ),
    row(f"cname.prod.region1{S}", "A", "NOERROR", note="CNAME to a missing name: NODATA"),
    row(f"a.cname{S}", "A", "NOERROR", note="CNAME loop"),
    row(f"doesnotexist{S}", "A", "NXDOMAIN"),
    row(f"a.server1.dev.region1{S}", "TXT", "NOERROR", fast=False, note="CNAME out of the zone"),
    row(f"a.server1.dev.region1{S}", "HINFO", "NOERROR"),
    row(f"a.server1.nonexistent.region1{S}", "HINFO", "NXDOMAIN"),
    row("skydns.test.", "SOA", "NOERROR", soa_answer=True),
    row(f"a.server1.dev.region1{S}", "SOA", "NOERROR", note="below the apex: NODATA"),
    row(
        "skydns.test.",
        "NS",
        "NOERROR",
        "skydns.test. 300 IN NS a.ns.dns.skydns.test.",
        "skydns.test. 300 IN NS b.ns.dns.skydns.test.",
        "skydns.test. 300 IN NS c.ns.dns.skydns.test.",
        additional=(
            "a.ns.dns.skydns.test. 300 IN A 10.0.0.2",
            "b.ns.dns.skydns.test. 300 IN A 10.0.0.3",
            "c.ns.dns.skydns.test. 300 IN A 10.0.0.4",
            "c.ns.dns.skydns.test. 300 IN A 10.0.0.5",
        ),
    ),
    row(f"a{S}", "NS", "NXDOMAIN"),
    row(f"ns.dns{S}", "A", "NOERROR", *(f"ns.dns{S} 300 IN A 10.0.0.{i}" for i in (2, 3, 4, 5))),
    row(
        "1.0.0.10.in-addr.arpa.",
        "PTR",
        "NOERROR",
        "1.0.0.10.in-addr.arpa. 300 IN PTR reverse.example.com.",
        zone="in-addr.arpa.",
    ),
    row("2.0.0.10.in-addr.arpa.", "PTR", "NXDOMAIN", zone="in-addr.arpa."),
    row(
        f"prod.*{S}",
        "SRV",
        "NOERROR",
        f"prod.*{S} 300 IN SRV 10 25 0 unresolvable{S}",
        f"prod.*{S} 300 IN SRV 10 25 8080 a.{P1}",
        f"prod.*{S} 300 IN SRV 10 25 8080 b.{P1}",
        f"prod.*{S} 300 IN SRV 10 25 8080 b.server6.prod.region1{S}",
        additional=(
            f"a.{P1} 300 IN A 10.0.0.1",
            f"b.{P1} 300 IN A 10.0.0.2",
            f"b.server6.prod.region1{S} 300 IN AAAA ::1",
        ),
        note="wildcard",
    ),
    # CNAMEs
    row(
        f"alias{S}",
        "A",
        "NOERROR",
        f"alias{S} 60 IN CNAME {P1}",
        f"{P1} 300 IN A 10.0.0.1",
        f"{P1} 300 IN A 10.0.0.2",
    ),
    row(
        f"one.chain{S}",
        "A",
        "NOERROR",
        f"one.chain{S} 300 IN CNAME two.chain{S}",
        f"two.chain{S} 20 IN A 10.0.0.9",
    ),
    row(f"one.chain{S}", "CNAME", "NOERROR", f"one.chain{S} 300 IN CNAME two.chain{S}"),
    row(f"chain{S}", "CNAME", "NOERROR", note="records only below: NODATA"),
    row(
        f"ext{S}",
        "A",
        "NOERROR",
        f"ext{S} 300 IN CNAME www.example.org.",
        "www.example.org. 300 IN A 10.9.9.9",
        fast=False,
        note="target looked up",
    ),
    row(f"ext{S}", "CNAME", "NOERROR", f"ext{S} 300 IN CNAME www.example.org."),
    # MX
    row(
        f"mail{S}",
        "MX",
        "NOERROR",
        f"mail{S} 300 IN MX 50 mx{S}",
        f"mail{S} 300 IN MX 20 b.mail{S}",
        additional=(f"mx{S} 300 IN A 10.0.0.25", f"b.mail{S} 300 IN A 10.0.0.26"),
    ),
    row(f"a.{P1}", "MX", "NOERROR", note="not mail: NODATA"),
    # groups
    row(
        f"dom.groups{S}",
        "A",
        "NOERROR",
        f"dom.groups{S} 300 IN A 127.0.0.1",
        f"dom.groups{S} 300 IN A 127.0.0.2",
        note="one group",
    ),
    row(
        f"dom1.groups{S}",
        "A",
        "NOERROR",
        f"dom1.groups{S} 300 IN A 127.0.0.1",
        note="groups differ: the shortest key's",
    ),
    row(
        f"dom2.groups{S}",
        "A",
        "NOERROR",
        f"dom2.groups{S} 300 IN A 127.0.0.1",
        f"dom2.groups{S} 300 IN A 127.0.0.2",
        note="no group always answers",
    ),
    # sizes and families
    row(f"big{S}", "A", "NOERROR", *(f"big{S} 300 IN A 10.1.0.{i}" for i in range(40))),
    row(f"long.text{S}", "TXT", "NOERROR", f'long.text{S} 300 IN TXT "{"x" * 255}" "{"x" * 45}"'),
    row(f"dual{S}", "A", "NOERROR", f"dual{S} 300 IN A 10.0.0.30"),
    row(f"dual{S}", "AAAA", "NOERROR", f"dual{S} 300 IN AAAA fd00::30"),
    # the apex, empty zones, broken values
    row(
        "apex.test.",
        "A",
        "NOERROR",
        "apex.test. 60 IN A 1.1.1.1",
        "apex.test. 60 IN A 1.1.1.2",
        zone="apex.test.",
        note="apex.dns",
    ),
    row("empty.test.", "A", "NOERROR", zone="empty.test.", note="an empty zone's apex exists"),
    row("x.empty.test.", "A", "NXDOMAIN", zone="empty.test."),
    row("bad.broken.test.", "A", "SERVFAIL", zone="broken.test.", note="value is not JSON"),
]


def expected_message(
    query: dns.message.Message, case: Case, serial: int, *, payload: int
) -> list[tuple[int, dns.rrset.RRset]]:
    """The case's records as one-record RRsets tagged with their section (0, 1, 2)."""
    out: list[tuple[int, dns.rrset.RRset]] = []
    for section, texts in ((0, case.answer), (2, case.additional)):
        for text in texts:
            out.append((section, rrset_from_text(text)))
    if case.soa_answer:
        out.insert(0, (0, rrset_from_text(soa(case.zone, serial))))
    elif case.negative:
        out.insert(0, (1, rrset_from_text(soa(case.zone, serial))))
    out.sort(key=lambda item: item[0])
    return out


def rrset_from_text(text: str) -> dns.rrset.RRset:
    name, ttl, rdclass, rdtype, rdata = text.split(None, 4)
    return dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata)


def oracle(
    query: dns.message.Message, case: Case, serial: int, *, limit: int, payload: int
) -> bytes:
    """The reply dnspython renders for ``case``: records dropped from the end with TC when
    the reply would pass ``limit``, OPT mirrored (DO included) advertising ``payload``."""
    records = expected_message(query, case, serial, payload=payload)
    for count in range(len(records), -1, -1):
        response = dns.message.Message(id=query.id)
        response.flags = dns.flags.QR | dns.flags.AA | (query.flags & (dns.flags.RD | dns.flags.CD))
        response.set_rcode(dns.rcode.from_text(case.rcode))
        response.question = list(query.question)
        if query.edns >= 0:
            response.use_edns(0, ednsflags=query.ednsflags & dns.flags.DO, payload=payload)
        sections = (response.answer, response.authority, response.additional)
        for section, rrset in records[:count]:
            sections[section].append(rrset)
        if count < len(records):
            response.flags |= dns.flags.TC
        wire = response.to_wire(max_size=65535)
        if len(wire) <= limit:
            return wire
    raise AssertionError("even an empty reply does not fit")


def lines(message: dns.message.Message) -> tuple[list[str], list[str], list[str]]:
    """Each section as sorted record lines, lower-case, the SOA serial zeroed."""

    def section(rrsets: list[dns.rrset.RRset]) -> list[str]:
        out = []
        for rrset in rrsets:
            if rrset.rdtype == dns.rdatatype.OPT:
                continue
            for rdata in rrset:
                if rrset.rdtype == dns.rdatatype.SOA:
                    rdata = rdata.replace(serial=0)
                kind = dns.rdatatype.to_text(rrset.rdtype)
                out.append(f"{rrset.name} {rrset.ttl} IN {kind} {rdata}".lower())
        return sorted(out)

    return section(message.answer), section(message.authority), section(message.additional)


def expected_lines(case: Case) -> tuple[list[str], list[str], list[str]]:
    answer = [soa(case.zone, 0)] if case.soa_answer else list(case.answer)
    authority = [soa(case.zone, 0)] if case.negative else []

    def norm(texts: list[str]) -> list[str]:
        out = []
        for text in texts:
            rrset = rrset_from_text(text)
            for rdata in rrset:
                kind = dns.rdatatype.to_text(rrset.rdtype)
                out.append(f"{rrset.name} {rrset.ttl} IN {kind} {rdata}".lower())
        return sorted(out)

    return norm(answer), norm(authority), norm(list(case.additional))


def corefile(endpoints: list[str], *, extra: str = "") -> str:
    """Our zones served by etcd, and example.org by hosts for the targets looked up."""
    keys = " ".join(f"{zone}:0" for zone in ZONES.split())
    return (
        f"{keys} {{\n"
        f"    etcd {ZONES} {{\n"
        f"        endpoint {' '.join(endpoints)}\n"
        f"        {extra}\n"
        "    }\n"
        "}\n"
        "example.org:0 {\n"
        "    hosts {\n"
        "        10.9.9.9 www.example.org\n"
        "        ttl 300\n"
        "    }\n"
        "}\n"
    )


__all__ = ["EXTERNAL", "KEYS", "ROWS", "ZONES", "Case", "corefile", "lines", "oracle", "soa"]
