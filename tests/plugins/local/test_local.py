"""local against a real server: CoreDNS's table of local names, answered the same on the
fast path, from the memo and by the chain; the legacy localhost.<domain> switch; parsing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.local import Local
from tests.helpers.dnsclient import query
from tests.helpers.server import RunningServer, running_server

pytestmark = pytest.mark.timeout(30)

COREFILE = """
. {
    local
    hosts {
        10.0.0.1 a.example.org
        10.0.0.2 localhost.example.org
    }
}
"""
NO_PREFIX = COREFILE.replace("    local\n", "    local {\n        localhost_prefix off\n    }\n")
SOA = "SOA localhost. root.localhost. 1 0 0 0 604800"


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with running_server(COREFILE) as running:
        yield running


def rrs(section: list[dns.rrset.RRset]) -> list[str]:
    return sorted(
        f"{rrset.name.to_text()} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text()}"
        for rrset in section
        for rdata in rrset
    )


CASES = [
    pytest.param("localhost", "A", "NOERROR", ["localhost. 604800 A 127.0.0.1"], [], id="localhost A"),
    pytest.param("localhost", "AAAA", "NOERROR", ["localhost. 604800 AAAA ::1"], [], id="localhost AAAA"),
    pytest.param("localhost", "SOA", "NOERROR", [f"localhost. 604800 {SOA}"], [], id="localhost SOA"),
    pytest.param("localhost", "NS", "NOERROR", ["localhost. 604800 NS localhost."], [], id="localhost NS"),
    pytest.param("localhost", "MX", "NOERROR", [], [f"localhost. 604800 {SOA}"], id="localhost MX → NODATA"),
    pytest.param("app.localhost", "A", "NOERROR", ["app.localhost. 604800 A 127.0.0.1"], [], id="under localhost. (RFC 6761)"),
    pytest.param("a.b.localhost", "AAAA", "NOERROR", ["a.b.localhost. 604800 AAAA ::1"], [], id="deep under localhost."),
    pytest.param("app.localhost", "TXT", "NOERROR", [], [f"app.localhost. 604800 {SOA}"], id="under localhost. TXT → NODATA, SOA owned by the name"),
    pytest.param("localhost.example.org", "A", "NOERROR", ["localhost.example.org. 604800 A 127.0.0.1"], [], id="legacy localhost.<domain> prefix"),
    pytest.param("127.in-addr.arpa", "A", "NOERROR", [], [f"127.in-addr.arpa. 604800 {SOA}"], id="127.in-addr.arpa A → NODATA"),
    pytest.param("127.in-addr.arpa", "NS", "NOERROR", ["127.in-addr.arpa. 604800 NS localhost."], [], id="127.in-addr.arpa NS"),
    pytest.param("1.0.0.127.in-addr.arpa", "PTR", "NOERROR", ["1.0.0.127.in-addr.arpa. 604800 PTR localhost."], [], id="127.0.0.1 PTR"),
    pytest.param("1.0.0.127.in-addr.arpa", "A", "NOERROR", [], [f"127.in-addr.arpa. 604800 {SOA}"], id="127.0.0.1 other type → NODATA, zone SOA"),
    pytest.param("2.0.0.127.in-addr.arpa", "PTR", "NXDOMAIN", [], [f"127.in-addr.arpa. 604800 {SOA}"], id="127.0.0.2 PTR → NXDOMAIN"),
    pytest.param("0.in-addr.arpa", "SOA", "NOERROR", [f"0.in-addr.arpa. 604800 {SOA}"], [], id="0.in-addr.arpa SOA"),
    pytest.param("255.255.255.255.in-addr.arpa", "PTR", "NXDOMAIN", [], [f"255.in-addr.arpa. 604800 {SOA}"], id="broadcast PTR → NXDOMAIN"),
    pytest.param("a.example.org", "A", "NOERROR", ["a.example.org. 3600 A 10.0.0.1"], [], id="other names go on"),
    pytest.param("notlocalhost", "A", "SERVFAIL", [], [], id="a label ending in localhost is not local"),
    pytest.param("1.0.0.10.in-addr.arpa", "PTR", "NOERROR", ["1.0.0.10.in-addr.arpa. 3600 PTR a.example.org."], [], id="other reverse zones go on"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "rdtype", "rcode", "answer", "authority"), CASES)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_local(
    server: RunningServer,
    name: str,
    rdtype: str,
    rcode: str,
    answer: list[str],
    authority: list[str],
    tcp: bool,
) -> None:
    for _ in range(3):  # first sight, then the reply memo
        reply = await query(server.port, name, rdtype, tcp=tcp, payload=1232)
        assert dns.rcode.to_text(reply.rcode()) == rcode
        assert rrs(reply.answer) == answer
        assert rrs(reply.authority) == authority
        if any(" 604800 " in record for record in answer + authority):
            assert not reply.flags & dns.flags.AA  # CoreDNS replies with SetReply: no AA


async def test_question_case_is_kept(server: RunningServer) -> None:
    reply = await query(server.port, "App.LocalHost", "A")
    assert reply.answer[0].name.to_text() == "App.LocalHost."
    reply = await query(server.port, "2.0.0.127.IN-ADDR.arpa", "PTR")
    assert reply.authority[0].name.to_text() == "127.IN-ADDR.arpa."


async def test_localhost_prefix_off() -> None:
    async with running_server(NO_PREFIX) as running:
        reply = await query(running.port, "localhost.example.org", "A")
        assert rrs(reply.answer) == ["localhost.example.org. 3600 A 10.0.0.2"]
        reply = await query(running.port, "app.localhost", "A")
        assert rrs(reply.answer) == ["app.localhost. 604800 A 127.0.0.1"]


async def test_metric_counts_special_names_only(server: RunningServer) -> None:
    registry = server.app.process.metrics.registry

    def counted() -> float:
        server.app.process.metrics.memo.flush()
        return registry.get_sample_value("coredns_local_localhost_requests_total") or 0.0

    before = counted()
    for _ in range(3):
        await query(server.port, "localhost", "A")
    assert counted() == before
    for _ in range(3):
        await query(server.port, "x.localhost", "A")
    assert counted() == before + 3


def local_of(body: str) -> Local:
    instance = build_instance(
        parse(f". {{\n{body}\n}}\n", filename="Corefile"), process=Process(), dns_port=0
    )
    plugin = instance.blocks[0].plugin("local")
    assert isinstance(plugin, Local)
    return plugin


def test_setup() -> None:
    assert local_of("local").legacy_prefix
    assert not local_of("local {\nlocalhost_prefix off\n}").legacy_prefix


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("local example.org", "Corefile:2: local: expected 0 arguments"),
        (
            "local {\nlocalhost_prefix maybe\n}",
            "Corefile:3: local: localhost_prefix expects 'on' or 'off'",
        ),
        ("local {\nlocalhost_prefix\n}", "Corefile:3: localhost_prefix: expected 1 argument"),
        ("local {\nzones x\n}", "Corefile:3: local: unknown property 'zones'"),
    ],
)
def test_setup_errors(body: str, message: str) -> None:
    with pytest.raises(CorefileError, match=message):
        local_of(body)
