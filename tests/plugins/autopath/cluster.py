"""The autopath test cluster, a loopback client that can pick its source address, and a
stub resolver that walks a search list the way glibc's res_nsearch does."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype

from tests.helpers.kubeapi import namespace, pod, service

Obj = dict[str, Any]
POD_IP = "127.0.0.1"  # the test client is this Pod in "default"
OTHER_POD_IP = "127.0.0.3"  # a Pod in "other"
NOT_A_POD = "127.0.0.2"
HOST_SEARCH = ("example.internal", "corp.example")
MYSQL_IP = "10.96.0.20"


def objects(*, client_namespace: str = "default") -> list[Obj]:
    return [
        namespace("default"),
        namespace("other"),
        service("mysql", "default", cluster_ip=MYSQL_IP, ports=(("mysql", 3306, "TCP"),)),
        service("web", "other", cluster_ip="10.96.0.30", ports=(("http", 80, "TCP"),)),
        pod("client", client_namespace, ip=POD_IP),
        pod("other-client", "other", ip=OTHER_POD_IP),
    ]


def write_manifests(folder: Path, items: list[Obj]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cluster.json").write_text(json.dumps({"kind": "List", "items": items}))
    return folder


def corefile(source: str, *, autopath: str = "autopath @kubernetes", extra: str = "") -> str:
    return (
        ".:0 {\n"
        "    bind 127.0.0.1\n"
        f"    {autopath}\n"
        "    kubernetes cluster.local {\n"
        f"        {source}\n"
        f"        {extra}\n"
        "    }\n"
        "}\n"
    )


async def ask(
    port: int, name: str, rdtype: str = "A", *, source: str = POD_IP
) -> dns.message.Message:
    """One UDP query to 127.0.0.1:port sent from ``source`` (any 127/8 address is ours)."""
    query = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.udp(query, "127.0.0.1", port=port, source=source, timeout=2.0)


def answer_text(reply: dns.message.Message) -> list[str]:
    return [rrset.to_text() for rrset in reply.answer]


@dataclass
class GlibcStub:
    """res_nsearch: names with fewer than ``ndots`` dots go through the search list first and
    are tried as given last. NXDOMAIN, NODATA and SERVFAIL try the next candidate; an answer
    or any other error ends the walk. Counts the round trips."""

    port: int
    search: tuple[str, ...]
    ndots: int = 5
    source: str = POD_IP
    asked: list[str] = field(default_factory=list)

    def candidates(self, name: str) -> list[str]:
        if name.endswith("."):
            return [name]
        listed = [f"{name}.{domain}." for domain in self.search]
        if name.count(".") >= self.ndots:
            return [f"{name}.", *listed]
        return [*listed, f"{name}."]

    async def resolve(self, name: str, rdtype: str = "A") -> dns.message.Message | None:
        for candidate in self.candidates(name):
            self.asked.append(candidate)
            reply = await ask(self.port, candidate, rdtype, source=self.source)
            if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                return reply
            if reply.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL):
                return None
        return None


def addresses(reply: dns.message.Message | None, rdtype: str = "A") -> set[str]:
    if reply is None:
        return set()
    wanted = dns.rdatatype.from_text(rdtype)
    return {rd.to_text() for rrset in reply.answer if rrset.rdtype == wanted for rd in rrset}


POD_SEARCH = ("default.svc.cluster.local", "svc.cluster.local", "cluster.local", *HOST_SEARCH)
