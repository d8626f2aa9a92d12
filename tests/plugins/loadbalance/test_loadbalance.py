"""loadbalance: address records rotate per reply, on wire when possible, never in place."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import dns.message
import dns.rdatatype
import dns.rrset
import pytest

from clusterdns.core.block import Block
from clusterdns.core.instance import build_instance
from clusterdns.core.plugin import BlockSettings
from clusterdns.core.process import Process
from clusterdns.core.request import Reply, Request
from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.loadbalance import LoadBalance, Preference, rotate_message, rotate_wire
from clusterdns.wire import AnswerTemplate, parse_query
from tests.helpers.dnsclient import query
from tests.helpers.responder import Responder
from tests.helpers.server import running_server

pytestmark = pytest.mark.timeout(10)

ADDRESSES = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def response(name: str, *rrsets: tuple[str, str, list[str]]) -> dns.message.Message:
    message = dns.message.make_response(dns.message.make_query(name, "A"))
    for owner, rdtype, values in rrsets:
        message.answer.append(dns.rrset.from_text_list(owner, 30, "IN", rdtype, values))
    return message


def wire_of(message: dns.message.Message) -> bytes:
    """Wire bytes in the message's record order (dnspython shuffles RRsets by default)."""
    return message.to_wire(want_shuffle=False)


def order(message: dns.message.Message, rdtype: str = "A") -> list[str]:
    return [
        rd.to_text()
        for rrset in message.answer
        if dns.rdatatype.to_text(rrset.rdtype) == rdtype
        for rd in rrset
    ]


def request(name: str = "web.example.") -> Request:
    block = Block(
        zones=(".",), port=0, server_label="dns://:53", plugins=[], settings=BlockSettings(),
        file="Corefile", line=1,
    )  # fmt: skip
    wire = dns.message.make_query(name, "A").to_wire()
    return Request(
        parse_query(wire), transport="udp", client=("127.0.0.1", 1), block=block, zone="."
    )


async def serve_twice(reply: Reply) -> list[dns.message.Message]:
    plugin = LoadBalance()

    async def next_handler(req: Request) -> Reply:
        return reply

    out = []
    for _ in range(2):
        rotated = await plugin.serve(request(), next_handler)
        # A message reply is rotated in a copy (read it as is: rendering shuffles).
        message = rotated.message or rotated.to_message()
        assert message is not None
        out.append(message)
    return out


@pytest.mark.parametrize(
    "kind",
    ["wire", "template", "message"],
    ids=["upstream wire", "answer template", "dnspython message"],
)
async def test_addresses_rotate_and_next_reply_is_untouched(kind: str) -> None:
    message = response("web.example.", ("web.example.", "A", ADDRESSES))
    wire = wire_of(message)
    if kind == "wire":
        reply = Reply.of_wire(wire, plugin="forward")
    elif kind == "template":
        reply = Reply.of_template(
            AnswerTemplate.from_message(response("web.example.", ("web.example.", "A", ADDRESSES))),
            plugin="kubernetes",
        )
    else:
        reply = Reply.of(message, plugin="hosts")
    before = reply.wire, reply.template, order(message)
    first, second = await serve_twice(reply)
    assert sorted(order(first)) == sorted(ADDRESSES)
    assert order(first) != order(second)
    assert (reply.wire, reply.template, order(message)) == before  # next's reply untouched


async def test_cname_stays_first_and_targets_rotate() -> None:
    message = response(
        "www.example.",
        ("www.example.", "CNAME", ["web.example."]),
        ("web.example.", "A", ADDRESSES),
    )
    first, second = await serve_twice(Reply.of_wire(wire_of(message), plugin="forward"))
    for rotated in (first, second):
        assert dns.rdatatype.to_text(rotated.answer[0].rdtype) == "CNAME"
    assert order(first) != order(second)


async def test_mx_rotates_through_dnspython() -> None:
    message = response(
        "example.", ("example.", "MX", ["10 a.example.", "20 b.example.", "30 c.example."])
    )
    wire = wire_of(message)
    with pytest.raises(Exception):  # noqa: B017 - the wire path declines MX sets
        rotate_wire(wire, 1)
    first, second = await serve_twice(Reply.of_wire(wire, plugin="forward"))
    assert order(first, "MX") != order(second, "MX")
    assert sorted(order(first, "MX")) == sorted(order(message, "MX"))


def test_rotate_wire_keeps_message_valid() -> None:
    message = response(
        "web.example.", ("web.example.", "A", ADDRESSES), ("web.example.", "AAAA", ["::1", "::2"])
    )
    wire = wire_of(message)
    for shift in range(4):
        rotated = rotate_wire(wire, shift)
        assert rotated is not None and len(rotated) == len(wire)
        parsed = dns.message.from_wire(rotated)
        assert order(parsed) == ADDRESSES[shift % 3 :] + ADDRESSES[: shift % 3]
        assert sorted(order(parsed, "AAAA")) == ["::1", "::2"]


def test_single_records_need_no_rotation() -> None:
    assert (
        rotate_wire(wire_of(response("web.example.", ("web.example.", "A", ["10.0.0.1"]))), 1)
        is None
    )


async def test_errors_pass_untouched() -> None:
    plugin = LoadBalance()
    error = Reply.error(2, plugin="forward")

    async def next_handler(req: Request) -> Reply:
        return error

    assert await plugin.serve(request(), next_handler) is error


@pytest.fixture
async def upstream() -> AsyncIterator[Responder]:
    lines = [f"web.example. 30 IN A {address}" for address in ADDRESSES]
    async with Responder(answers={"web.example.": lines}) as r:
        yield r


async def test_order_changes_between_queries_through_a_server(upstream: Responder) -> None:
    corefile = f". {{\n loadbalance\n forward . 127.0.0.1:{upstream.port}\n}}\n"
    async with running_server(corefile) as server:
        orders = [order(await query(server.port, "web.example.", "A")) for _ in range(3)]
    assert all(sorted(o) == sorted(ADDRESSES) for o in orders)
    assert len({tuple(o) for o in orders}) == 3


async def test_behind_cache_each_hit_rotates(upstream: Responder) -> None:
    corefile = f". {{\n loadbalance\n cache\n forward . 127.0.0.1:{upstream.port}\n}}\n"
    async with running_server(corefile) as server:
        orders = [order(await query(server.port, "web.example.", "A")) for _ in range(3)]
    assert upstream.count() == 1
    assert len({tuple(o) for o in orders}) == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("loadbalance weighted", "missing weight file argument"),
        ("loadbalance shuffle", "unknown policy: shuffle"),
        ("loadbalance round_robin extra", "unknown property for round_robin"),
        ("loadbalance {\n prefer 10.0.0.0/33\n}", "invalid CIDR"),
        ("loadbalance {\n prefer 10.0.0.1\n}", "invalid CIDR"),
        ("loadbalance {\n choose 10.0.0.0/8\n}", "unknown property 'choose'"),
    ],
    ids=["weighted", "unknown policy", "extra argument", "bad prefix", "no prefix", "property"],
)
def test_setup_errors(body: str, message: str) -> None:
    with pytest.raises(CorefileError, match=message):
        build_instance(
            parse(f". {{\n{body}\n}}\n", filename="Corefile"), process=Process(), dns_port=0
        )


def test_setup_accepts_round_robin() -> None:
    instance = build_instance(
        parse(". {\nloadbalance round_robin\n}\n", filename="Corefile"),
        process=Process(),
        dns_port=0,
    )
    assert isinstance(instance.blocks[0].plugin("loadbalance"), LoadBalance)


def test_fast_filter_rotates_finished_replies() -> None:
    plugin = LoadBalance()
    wire = wire_of(response("web.example.", ("web.example.", "A", ADDRESSES)))
    first, second = plugin.filter_fast(wire), plugin.filter_fast(wire)
    assert first is not None and second is not None
    assert order(dns.message.from_wire(first)) != order(dns.message.from_wire(second))
    mx = wire_of(response("example.", ("example.", "MX", ["10 a.example.", "20 b.example."])))
    assert plugin.filter_fast(mx) is None


# --- prefer CIDR... (CoreDNS 1.13) ----------------------------------------------------------

MIXED = ["192.168.1.7", "10.9.20.1", "172.16.0.1", "10.9.20.2", "192.168.1.8"]


@pytest.fixture
async def mixed_upstream() -> AsyncIterator[Responder]:
    lines = [f"web.example. 30 IN A {address}" for address in MIXED]
    lines += ["web.example. 30 IN AAAA 2001:db8::1", "web.example. 30 IN AAAA fd00::1"]
    async with Responder(answers={"web.example.": lines}) as r:
        yield r


@pytest.mark.parametrize("cached", [False, True], ids=["forwarded", "cache hits"])
async def test_prefer_puts_preferred_subnets_first(mixed_upstream: Responder, cached: bool) -> None:
    corefile = (
        ". {\n loadbalance round_robin {\n  prefer 10.9.20.0/24 192.168.1.0/24 fd00::/8\n }\n"
        + (" cache\n" if cached else "")
        + f" forward . 127.0.0.1:{mixed_upstream.port}\n}}\n"
    )
    async with running_server(corefile) as server:
        orders = [order(await query(server.port, "web.example.", "A")) for _ in range(4)]
        v6 = order(await query(server.port, "web.example.", "AAAA"), "AAAA")
    for got in orders:
        assert sorted(got) == sorted(MIXED)
        # the first subnet, then the second, then the rest
        assert set(got[:2]) == {"10.9.20.1", "10.9.20.2"}
        assert set(got[2:4]) == {"192.168.1.7", "192.168.1.8"}
        assert got[4] == "172.16.0.1"
    assert len({tuple(o) for o in orders}) > 1, "still rotated within each group"
    assert v6 == ["fd00::1", "2001:db8::1"]


def test_prefer_on_the_dnspython_path() -> None:
    """A reply that slicing cannot rotate (MX beside the addresses) gets the same order."""
    message = response(
        "web.example.",
        ("web.example.", "A", ["192.0.2.1", "10.0.0.1", "192.0.2.2"]),
        ("example.", "MX", ["10 a.example.", "20 b.example."]),
    )
    prefer = Preference([ipaddress.ip_network("10.0.0.0/8")])
    for shift in range(3):
        rotated = rotate_message(dns.message.from_wire(wire_of(message)), shift, prefer)
        assert order(rotated)[0] == "10.0.0.1"
