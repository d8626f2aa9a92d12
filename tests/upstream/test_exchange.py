"""Upstream.exchange against the loopback responder: modes, IDs, protocol choice, errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Literal

import dns.flags
import dns.message
import dns.rcode
import pytest

from clusterdns.upstream import (
    Upstream,
    UpstreamAddress,
    UpstreamBadReply,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)
from tests.helpers.responder import DEFAULT_ADDRESS, Mode, Responder

Proto = Literal["udp", "tcp"]

TIMEOUT = 0.3  # deadline for cases expected to time out
SLACK = 0.25  # how far past the deadline an error may surface


def make_query(name: str = "example.org.", rdtype: str = "A", *, qid: int = 0x1234) -> bytes:
    query = dns.message.make_query(name, rdtype)
    query.id = qid
    return query.to_wire()


def deadline_in(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


@pytest.fixture
async def upstream(responder: Responder) -> AsyncIterator[Upstream]:
    up = Upstream(UpstreamAddress("127.0.0.1", responder.port))
    yield up
    await up.close()


def _answers(reply: bytes) -> list[str]:
    msg = dns.message.from_wire(reply)
    return [rd.to_text() for rrset in msg.answer for rd in rrset]


# -- responder modes, over each transport -------------------------------------------------

# (mode, transport, expected rcode name or exception, expected answers)
MODE_CASES: list[tuple[Mode, Proto, str | type[UpstreamError], list[str]]] = [
    ("answer", "udp", "NOERROR", [DEFAULT_ADDRESS]),
    ("answer", "tcp", "NOERROR", [DEFAULT_ADDRESS]),
    ("servfail", "udp", "SERVFAIL", []),
    ("servfail", "tcp", "SERVFAIL", []),
    ("refused", "udp", "REFUSED", []),
    ("refused", "tcp", "REFUSED", []),
    ("nxdomain", "udp", "NXDOMAIN", []),
    ("nxdomain", "tcp", "NXDOMAIN", []),
    ("delay", "udp", "NOERROR", [DEFAULT_ADDRESS]),
    ("delay", "tcp", "NOERROR", [DEFAULT_ADDRESS]),
    ("bad_then_answer", "udp", "NOERROR", [DEFAULT_ADDRESS]),
    ("truncate", "tcp", "NOERROR", [DEFAULT_ADDRESS]),
    ("timeout", "udp", UpstreamTimeout, []),
    ("timeout", "tcp", UpstreamTimeout, []),
    ("wrong_id", "udp", UpstreamTimeout, []),  # ignored as a spoof
    ("wrong_id", "tcp", UpstreamTimeout, []),  # skipped as out of order, as CoreDNS does
    ("wrong_question", "udp", UpstreamTimeout, []),  # ignored as a spoof
    ("wrong_question", "tcp", UpstreamBadReply, []),  # our own connection: the server is broken
    ("garbage", "udp", UpstreamTimeout, []),
    ("garbage", "tcp", UpstreamBadReply, []),
    ("other_address", "udp", UpstreamTimeout, []),  # the connected socket never sees it
]


def _case_id(case: tuple[Mode, Proto, str | type[UpstreamError], list[str]]) -> str:
    mode, transport, expected, _ = case
    outcome = expected if isinstance(expected, str) else expected.__name__
    return f"{mode} over {transport} → {outcome}"


@pytest.mark.parametrize(
    ("mode", "transport", "expected", "answers"), MODE_CASES, ids=[_case_id(c) for c in MODE_CASES]
)
async def test_modes(
    responder: Responder,
    upstream: Upstream,
    mode: Mode,
    transport: Proto,
    expected: str | type[UpstreamError],
    answers: list[str],
) -> None:
    responder.mode = mode
    responder.delay_ms = 50
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + (TIMEOUT if not isinstance(expected, str) else 2.0)
    call = upstream.exchange(make_query(), deadline=deadline, client_proto=transport)
    if isinstance(expected, str):
        reply = await call
        assert dns.rcode.to_text(dns.message.from_wire(reply).rcode()) == expected
        assert _answers(reply) == answers
    else:
        with pytest.raises(expected):
            await call
        assert loop.time() - start < TIMEOUT + SLACK
    assert responder.count(transport) == 1


async def test_delay_past_deadline_times_out(responder: Responder, upstream: Upstream) -> None:
    responder.mode = "delay"
    responder.delay_ms = 1000
    start = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamTimeout):
        await upstream.exchange(make_query(), deadline=start + 0.2)
    elapsed = asyncio.get_running_loop().time() - start
    assert 0.2 <= elapsed < 0.2 + SLACK


async def test_deadline_in_the_past(upstream: Upstream, responder: Responder) -> None:
    with pytest.raises(UpstreamTimeout):
        await upstream.exchange(make_query(), deadline=deadline_in(-1))
    assert responder.count() == 0


async def test_canned_answers(responder: Responder, upstream: Upstream) -> None:
    responder.answers = {
        "www.example.org.": [
            "www.example.org. 60 IN CNAME web.example.org.",
            "www.example.org. 60 IN TXT hello",
        ],
        "web.example.org": ["web.example.org. 60 IN A 192.0.2.80"],
    }
    reply = await upstream.exchange(make_query("www.example.org."), deadline=deadline_in(2))
    assert _answers(reply) == ["web.example.org."]
    reply = await upstream.exchange(make_query("WEB.example.org."), deadline=deadline_in(2))
    assert _answers(reply) == ["192.0.2.80"]


# -- IDs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_client_id_restored_and_upstream_id_random(
    responder: Responder, upstream: Upstream, transport: Proto
) -> None:
    for qid in (0, 0x1234, 0xFFFF):
        reply = await upstream.exchange(
            make_query(qid=qid),
            deadline=deadline_in(2),
            client_proto=transport,
        )
        assert dns.message.from_wire(reply).id == qid
    for _ in range(20):
        await upstream.exchange(make_query(qid=7), deadline=deadline_in(2), client_proto=transport)
    sent_ids = [q.id for q in responder.received]
    assert len(set(sent_ids)) >= len(sent_ids) - 1  # 23 draws from 65536: a repeat is rare
    assert sent_ids.count(7) <= 1


async def test_reply_keeps_upstream_case_and_rest_of_message(
    responder: Responder, upstream: Upstream
) -> None:
    query = make_query("MiXeD.Example.ORG.")
    reply = await upstream.exchange(query, deadline=deadline_in(2))
    assert reply[:2] == query[:2]
    msg = dns.message.from_wire(reply)
    assert msg.flags & dns.flags.QR
    assert msg.question[0].name.to_text() == "MiXeD.Example.ORG."


async def test_query_without_one_question_is_rejected(upstream: Upstream) -> None:
    with pytest.raises(ValueError, match="one well-formed question"):
        await upstream.exchange(b"\x00\x01" + b"\x00" * 10, deadline=deadline_in(1))


# -- protocol choice ------------------------------------------------------------------------

PROTO_CASES: list[tuple[Proto, bool, bool, str]] = [
    # (client_proto, force_tcp, prefer_udp, transport used)
    ("udp", False, False, "udp"),
    ("tcp", False, False, "tcp"),
    ("udp", True, False, "tcp"),
    ("tcp", False, True, "udp"),
    ("udp", True, True, "tcp"),  # force_tcp wins, as in CoreDNS
]


@pytest.mark.parametrize(
    ("client_proto", "force_tcp", "prefer_udp", "used"),
    PROTO_CASES,
    ids=[f"client {c[0]} force_tcp={c[1]} prefer_udp={c[2]} → {c[3]}" for c in PROTO_CASES],
)
async def test_protocol_choice(
    responder: Responder,
    upstream: Upstream,
    client_proto: Proto,
    force_tcp: bool,
    prefer_udp: bool,
    used: str,
) -> None:
    await upstream.exchange(
        make_query(),
        deadline=deadline_in(2),
        client_proto=client_proto,
        force_tcp=force_tcp,
        prefer_udp=prefer_udp,
    )
    assert [q.transport for q in responder.received] == [used]


# -- truncation -----------------------------------------------------------------------------

TC_CASES: list[tuple[Proto, bool, bool | None, list[str], bool]] = [
    # (client_proto, prefer_udp, tcp_on_truncation, transports seen, TC in final reply)
    ("udp", False, None, ["udp"], True),  # CoreDNS: the client retries over TCP itself
    ("udp", True, None, ["udp", "tcp"], False),  # prefer_udp: retry over TCP
    ("tcp", True, None, ["udp", "tcp"], False),
    ("udp", False, True, ["udp", "tcp"], False),
    ("udp", True, False, ["udp"], True),
]


@pytest.mark.parametrize(
    ("client_proto", "prefer_udp", "tcp_on_truncation", "seen", "truncated"),
    TC_CASES,
    ids=[f"client {c[0]} prefer_udp={c[1]} tcp_on_truncation={c[2]} → {c[3]}" for c in TC_CASES],
)
async def test_truncated_reply(
    responder: Responder,
    upstream: Upstream,
    client_proto: Proto,
    prefer_udp: bool,
    tcp_on_truncation: bool | None,
    seen: list[str],
    truncated: bool,
) -> None:
    responder.mode = "truncate"
    reply = await upstream.exchange(
        make_query(qid=99),
        deadline=deadline_in(2),
        client_proto=client_proto,
        prefer_udp=prefer_udp,
        tcp_on_truncation=tcp_on_truncation,
    )
    msg = dns.message.from_wire(reply)
    assert msg.id == 99
    assert bool(msg.flags & dns.flags.TC) == truncated
    assert _answers(reply) == ([] if truncated else [DEFAULT_ADDRESS])
    assert [q.transport for q in responder.received] == seen
    if len(seen) == 2:
        assert responder.received[0].id != responder.received[1].id  # fresh ID for the retry


async def test_truncation_retry_shares_the_deadline(
    responder: Responder, upstream: Upstream
) -> None:
    responder.mode = "truncate"
    responder.tcp_mode = "timeout"
    start = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamTimeout):
        await upstream.exchange(make_query(), deadline=start + 0.3, prefer_udp=True)
    assert asyncio.get_running_loop().time() - start < 0.3 + SLACK
    assert [q.transport for q in responder.received] == ["udp", "tcp"]


# -- anti-spoofing ---------------------------------------------------------------------------


async def test_unmatched_datagrams_are_skipped(responder: Responder, upstream: Upstream) -> None:
    responder.mode = "bad_then_answer"
    reply = await upstream.exchange(make_query(qid=5), deadline=deadline_in(2))
    msg = dns.message.from_wire(reply)
    assert msg.id == 5
    assert _answers(reply) == [DEFAULT_ADDRESS]


async def test_reply_from_other_port_is_dropped(responder: Responder, upstream: Upstream) -> None:
    """The kernel drops datagrams from another source on a connected socket: the answer, sent
    from another port of the same host, never reaches us."""
    responder.mode = "other_address"
    with pytest.raises(UpstreamTimeout):
        await upstream.exchange(make_query(), deadline=deadline_in(0.3))
    assert responder.count("udp") == 1
    # ...and the very same reply from the right port is accepted.
    responder.mode = "answer"
    await upstream.exchange(make_query(), deadline=deadline_in(2))


async def test_fresh_source_port_per_query(responder: Responder, upstream: Upstream) -> None:
    for _ in range(5):
        await upstream.exchange(make_query(), deadline=deadline_in(2))
    ports = [port for _, port in responder.udp_sources]
    assert len(set(ports)) == len(ports) == 5
    assert responder.port not in ports


# -- unreachable upstreams ------------------------------------------------------------------


def _closed_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_refused_fails_fast(transport: Proto) -> None:
    up = Upstream(UpstreamAddress("127.0.0.1", _closed_port(socket.SOCK_DGRAM)))
    start = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamConnectError):
        await up.exchange(make_query(), deadline=start + 5, client_proto=transport)
    assert asyncio.get_running_loop().time() - start < 0.5
    await up.close()


async def test_closed_upstream_raises(upstream: Upstream) -> None:
    await upstream.close()
    with pytest.raises(UpstreamError, match="closed"):
        await upstream.exchange(make_query(), deadline=deadline_in(1))


async def test_ipv6_loopback() -> None:
    try:
        r = Responder(host="::1")
        await r.start()
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        up = Upstream(UpstreamAddress.parse(f"[::1]:{r.port}"))
        protos: tuple[Proto, ...] = ("udp", "tcp")
        for proto in protos:
            reply = await up.exchange(make_query(), deadline=deadline_in(2), client_proto=proto)
            assert _answers(reply) == [DEFAULT_ADDRESS]
        await up.close()
    finally:
        await r.stop()
