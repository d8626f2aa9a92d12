"""acl against a real server: first match wins, block/filter/drop by source network and
query type, never a memoised reply to a client acl refuses, metrics, and the parser."""

from __future__ import annotations

from collections.abc import AsyncIterator

import dns.asyncquery
import dns.edns
import dns.exception
import dns.message
import dns.rcode
import pytest

from clusterdns.core.block import Block
from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.acl import Acl, Action
from clusterdns.wire import parse_query
from tests.helpers.server import RunningServer, running_server

pytestmark = pytest.mark.timeout(30)

# Loopback sources stand for clients of different networks (Linux routes all of 127/8).
COREFILE = """
. {
    acl {
        allow type A net 127.0.0.5
        block type A net 127.0.0.0/29
        filter type AAAA net 127.0.0.2
        drop net 127.0.0.3
    }
    acl private.example.org {
        allow net 127.0.0.9
        block
    }
    cache
    hosts {
        10.0.0.1 a.example.org
        fd00::1 a.example.org
        10.0.0.9 x.private.example.org
        fallthrough
    }
    whoami
}
"""
DROPPED = "no reply"


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with running_server(COREFILE) as running:
        yield running


async def ask(
    port: int, source: str, name: str, rdtype: str, *, tcp: bool = False, edns: bool = True
) -> dns.message.Message | None:
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    try:
        if tcp:
            return await dns.asyncquery.tcp(
                query, "127.0.0.1", port=port, source=source, timeout=0.6
            )
        return await dns.asyncquery.udp(query, "127.0.0.1", port=port, source=source, timeout=0.6)
    except dns.exception.Timeout:
        return None


def outcome(reply: dns.message.Message | None) -> str:
    if reply is None:
        return DROPPED
    return dns.rcode.to_text(reply.rcode()) + (" answered" if reply.answer else " empty")


async def seen(port: int, source: str, name: str, rdtype: str, *, tcp: bool = False) -> str:
    return outcome(await ask(port, source, name, rdtype, tcp=tcp))


def ede(reply: dns.message.Message | None) -> int | None:
    assert reply is not None
    for option in reply.options:
        if isinstance(option, dns.edns.EDEOption):
            return int(option.code)
    return None


# fmt: off
CASES = [
    pytest.param("127.0.0.1", "a.example.org", "A", "REFUSED empty", id="A from 127.0.0.0/29 → block"),
    pytest.param("127.0.0.5", "a.example.org", "A", "NOERROR answered", id="allow before block: first match wins"),
    pytest.param("127.0.0.9", "a.example.org", "A", "NOERROR answered", id="outside every net → allowed"),
    pytest.param("127.0.0.1", "a.example.org", "AAAA", "NOERROR answered", id="AAAA not blocked by a type A policy"),
    pytest.param("127.0.0.2", "a.example.org", "AAAA", "NOERROR empty", id="filter → NOERROR, no answer"),
    pytest.param("127.0.0.3", "a.example.org", "AAAA", DROPPED, id="drop → silence"),
    pytest.param("127.0.0.3", "a.example.org", "A", "REFUSED empty", id="block listed before drop wins"),
    pytest.param("127.0.0.1", "x.private.example.org", "A", "REFUSED empty", id="first rule decides before the second"),
    pytest.param("127.0.0.9", "x.private.example.org", "A", "NOERROR answered", id="second rule: allowed source"),
    pytest.param("127.0.0.10", "x.private.example.org", "A", "REFUSED empty", id="second rule: everyone else blocked"),
    pytest.param("127.0.0.10", "x.private.example.org", "TXT", "REFUSED empty", id="second rule: any type"),
]
# fmt: on


@pytest.mark.parametrize(("source", "name", "rdtype", "expected"), CASES)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_policies(
    server: RunningServer, source: str, name: str, rdtype: str, expected: str, tcp: bool
) -> None:
    reply = await ask(server.port, source, name, rdtype, tcp=tcp)
    assert outcome(reply) == expected
    if expected == "REFUSED empty":
        assert ede(reply) == 15  # RFC 8914 Blocked
    elif expected == "NOERROR empty":
        assert ede(reply) == 17  # Filtered


async def test_no_opt_in_a_refusal_to_a_client_without_edns(server: RunningServer) -> None:
    reply = await ask(server.port, "127.0.0.1", "a.example.org", "A", edns=False)
    assert reply is not None and reply.rcode() == dns.rcode.REFUSED
    assert reply.edns < 0


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_a_memoised_reply_never_reaches_a_refused_client(
    server: RunningServer, tcp: bool
) -> None:
    # The allowed client asks first, several times: its reply would be memoised by its
    # bytes. Then refused and dropped clients send the same bytes.
    for _ in range(3):
        assert (
            await seen(server.port, "127.0.0.5", "a.example.org", "A", tcp=tcp)
            == "NOERROR answered"
        )
        assert (
            await seen(server.port, "127.0.0.9", "x.private.example.org", "A", tcp=tcp)
            == "NOERROR answered"
        )
    assert await seen(server.port, "127.0.0.1", "a.example.org", "A", tcp=tcp) == "REFUSED empty"
    assert (
        await seen(server.port, "127.0.0.10", "x.private.example.org", "A", tcp=tcp)
        == "REFUSED empty"
    )
    for _ in range(3):
        assert (
            await seen(server.port, "127.0.0.1", "a.example.org", "AAAA", tcp=tcp)
            == "NOERROR answered"
        )
    assert await seen(server.port, "127.0.0.2", "a.example.org", "AAAA", tcp=tcp) == "NOERROR empty"
    assert await ask(server.port, "127.0.0.3", "a.example.org", "AAAA", tcp=tcp) is None


async def test_verdicts_that_do_not_depend_on_the_client_keep_the_memo() -> None:
    corefile = """
. {
    acl {
        block type TXT
    }
    cache
    hosts {
        10.0.0.1 a.example.org
    }
}
"""
    async with running_server(corefile) as running:
        memo = running.app.process.metrics.memo
        for _ in range(4):
            assert await seen(running.port, "127.0.0.1", "a.example.org", "A") == "NOERROR answered"
            assert await seen(running.port, "127.0.0.7", "a.example.org", "TXT") == "REFUSED empty"
        hits, _ = memo.totals()
        assert hits >= 2  # the A answers came from the memo after the first


async def test_metrics(server: RunningServer) -> None:
    await ask(server.port, "127.0.0.1", "a.example.org", "A")  # blocked
    await ask(server.port, "127.0.0.2", "a.example.org", "AAAA")  # filtered
    await ask(server.port, "127.0.0.3", "a.example.org", "AAAA")  # dropped
    for _ in range(3):
        await ask(server.port, "127.0.0.9", "a.example.org", "A")  # allowed (memoised after one)
    await ask(server.port, "127.0.0.9", "nothing.example.net", "A")  # allowed, then the chain
    registry = server.app.process.metrics.registry
    server.app.process.metrics.memo.flush()
    acl = server.plugin("acl")
    assert isinstance(acl, Acl)
    label = acl.server_label

    def value(name: str, **labels: str) -> float:
        found = registry.get_sample_value(name, {"server": label, "view": "", **labels})
        return found or 0.0

    assert value("coredns_acl_blocked_requests_total", zone=".") == 1
    assert value("coredns_acl_filtered_requests_total", zone=".") == 1
    assert value("coredns_acl_dropped_requests_total", zone=".") == 1
    assert value("coredns_acl_allowed_requests_total") == 4


def block_of(body: str) -> Block:
    instance = build_instance(
        parse(f". {{\n{body}\n}}\n", filename="Corefile"), process=Process(), dns_port=0
    )
    return instance.blocks[0]


def acl_of(body: str) -> Acl:
    plugin = block_of(body).plugin("acl")
    assert isinstance(plugin, Acl)
    return plugin


def decide(acl: Acl, name: str, rdtype: str, source: str) -> Action:
    query = parse_query(dns.message.make_query(name, rdtype).to_wire())
    return acl.verdict(query, source)[0]


@pytest.mark.parametrize(
    ("rules", "source", "rdtype", "expected"),
    [
        ("block net 10.0.0.0/8", "10.1.2.3", "A", Action.BLOCK),
        ("block net 10.0.0.0/8", "11.1.2.3", "A", Action.NONE),
        ("block net 10.1.2.3", "10.1.2.3", "A", Action.BLOCK),
        ("block net 10.1.2.3", "10.1.2.4", "A", Action.NONE),
        ("block net 10.1.2.3/8", "10.200.0.1", "A", Action.BLOCK),  # host bits ignored
        ("drop net 2001:db8::/32", "2001:db8::1", "A", Action.DROP),
        ("drop net 2001:db8::/32", "10.0.0.1", "A", Action.NONE),
        ("drop net 10.0.0.0/8", "::ffff:10.0.0.1", "A", Action.DROP),  # IPv4-mapped
        ("filter type A AAAA", "192.0.2.1", "AAAA", Action.FILTER),
        ("filter type A AAAA", "192.0.2.1", "MX", Action.NONE),
        ("filter type MX *", "192.0.2.1", "TXT", Action.FILTER),
        ("block net *", "2001:db8::1", "A", Action.BLOCK),
        ("block", "192.0.2.1", "SRV", Action.BLOCK),
        ("block type A net 10.0.0.0/8", "not-an-address", "A", Action.BLOCK),
        ("allow net 10.0.0.0/8\n block", "10.0.0.1", "A", Action.ALLOW),
        ("allow net 10.0.0.0/8\n block", "192.0.2.1", "A", Action.BLOCK),
        ("BLOCK TYPE a NET 10.0.0.0/8", "10.0.0.1", "A", Action.BLOCK),
    ],
)
def test_decision(rules: str, source: str, rdtype: str, expected: Action) -> None:
    acl = acl_of(f"acl {{\n{rules}\n}}")
    assert decide(acl, "host.example.org", rdtype, source) == expected


def test_zones_limit_a_rule() -> None:
    acl = acl_of("acl a.example.org {\nblock\n}")
    assert decide(acl, "a.example.org", "A", "10.0.0.1") == Action.BLOCK
    assert decide(acl, "x.a.example.org", "A", "10.0.0.1") == Action.BLOCK
    assert decide(acl, "b.example.org", "A", "10.0.0.1") == Action.NONE


def test_the_fast_path_keeps_going_through_acl() -> None:
    block = block_of("acl {\nblock type TXT\n}\ncache\nhosts {\n10.0.0.1 a.example.org\n}")
    assert [step.name for step in block.fast_steps] == ["cache"]
    assert [gate.name for gate, _ in block.fast_steps[0].gates] == ["acl"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("acl {\npermit net 10.0.0.0/8\n}", "Corefile:3: acl: unexpected token 'permit'"),
        ("acl {\nblock net\n}", "Corefile:3: acl: no token specified in 'net' section"),
        ("acl {\nblock type\n}", "no token specified in 'type' section"),
        ("acl {\nblock type BOGUS\n}", "unexpected token 'BOGUS'; expect legal QTYPE"),
        ("acl {\nblock net 10.0.0.0/33\n}", "illegal CIDR notation '10.0.0.0/33'"),
        ("acl {\nblock net example.org\n}", "illegal CIDR notation"),
        ("acl {\nblock from 10.0.0.0/8\n}", "unexpected token 'from'; expect 'type | net'"),
        ("acl a..b {\nblock\n}", "no valid zone"),  # a port on a zone is ignored, as in CoreDNS
    ],
)
def test_setup_errors(body: str, message: str) -> None:
    with pytest.raises(CorefileError, match=message):
        block_of(body)


async def test_metrics_carry_the_view_name() -> None:
    corefile = """
. {
    view inside {
        expr incidr(client_ip(), '127.0.0.0/8')
    }
    acl {
        block type TXT
    }
    whoami
}
"""
    async with running_server(corefile) as running:
        assert await seen(running.port, "127.0.0.1", "x.test", "TXT") == "REFUSED empty"
        assert await seen(running.port, "127.0.0.1", "x.test", "A") == "NOERROR empty"
        acl = running.plugin("acl")
        assert isinstance(acl, Acl)
        registry = running.app.process.metrics.registry
        labels = {"server": acl.server_label, "view": "inside"}
        assert (
            registry.get_sample_value("coredns_acl_blocked_requests_total", {**labels, "zone": "."})
            == 1
        )
        assert registry.get_sample_value("coredns_acl_allowed_requests_total", labels) == 1
