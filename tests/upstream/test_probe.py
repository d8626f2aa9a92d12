"""probe(): CoreDNS's `. IN NS` health check."""

from __future__ import annotations

import socket

import dns.flags
import dns.message
import pytest

from clusterdns.upstream import Upstream, UpstreamAddress, probe, probe_query
from tests.helpers.responder import Mode, Responder

PROBE_CASES: list[tuple[Mode, bool]] = [
    ("answer", True),
    ("servfail", True),  # any reply is a healthy upstream, whatever its rcode
    ("refused", True),
    ("nxdomain", True),
    ("truncate", True),
    ("timeout", False),
    ("garbage", False),
    ("wrong_id", False),
    ("other_address", False),
]


@pytest.mark.parametrize(
    ("mode", "healthy"), PROBE_CASES, ids=[f"{m} → {'up' if h else 'down'}" for m, h in PROBE_CASES]
)
async def test_probe(responder: Responder, mode: Mode, healthy: bool) -> None:
    responder.mode = mode
    up = Upstream(UpstreamAddress("127.0.0.1", responder.port))
    assert await probe(up, timeout=0.3) is healthy
    (q,) = responder.received
    assert (q.qname, q.qtype, q.transport) == (".", "NS", "udp")
    assert q.flags & dns.flags.RD  # CoreDNS's default; `health_check … no_rec` clears it
    await up.close()


async def test_probe_options(responder: Responder) -> None:
    up = Upstream(UpstreamAddress("127.0.0.1", responder.port))
    assert await probe(up, timeout=1, recursion_desired=False, domain="example.org", force_tcp=True)
    (q,) = responder.received
    assert (q.qname, q.qtype, q.transport) == ("example.org.", "NS", "tcp")
    assert not q.flags & dns.flags.RD
    await up.close()


async def test_probe_uses_a_fresh_tcp_connection(responder: Responder) -> None:
    up = Upstream(UpstreamAddress("127.0.0.1", responder.port))
    assert await probe(up, timeout=1, force_tcp=True)
    assert await probe(up, timeout=1, force_tcp=True)
    assert responder.tcp_connections == 2
    await up.close()


async def test_probe_refused_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    up = Upstream(UpstreamAddress("127.0.0.1", port))
    assert not await probe(up, timeout=1)
    await up.close()


def test_probe_query() -> None:
    msg = dns.message.from_wire(probe_query())
    assert msg.question[0].to_text() == ". IN NS"
    assert msg.flags & dns.flags.RD
    assert msg.edns < 0
    assert not dns.message.from_wire(probe_query(recursion_desired=False)).flags & dns.flags.RD
