"""forward through a real server: transports, retries, health, policies, failover, metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import pytest

from clusterdns.plugins.forward import Forward
from tests.helpers.dnsclient import make_query, query
from tests.helpers.responder import DEFAULT_ADDRESS, Mode, Responder
from tests.helpers.server import RunningServer, running_server
from tests.upstream.conftest import TLS_SERVERNAME, TLSFiles, tls_files

__all__ = ["tls_files"]  # the session fixture, shared with the upstream tests

pytestmark = pytest.mark.timeout(20)


def forward_of(server: RunningServer) -> Forward:
    plugin = server.plugin("forward")
    assert isinstance(plugin, Forward)
    return plugin


def fast(server: RunningServer, *, deadline: float = 1.0, try_timeout: float = 0.25) -> Forward:
    """Shrink CoreDNS's 5 s deadline and 2 s per-try timeout so failures are quick to test."""
    plugin = forward_of(server)
    for stanza in plugin.stanzas:
        stanza.deadline = deadline
        stanza.try_timeout = try_timeout
    for proxy in plugin.proxies:
        proxy.probe_timeout = 0.2
    return plugin


def answers(reply: dns.message.Message) -> list[str]:
    return [rd.to_text() for rrset in reply.answer for rd in rrset]


def sample(server: RunningServer, name: str, labels: dict[str, str] | None = None) -> float:
    value = server.app.process.metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


@pytest.fixture
async def upstream() -> AsyncIterator[Responder]:
    async with Responder() as r:
        yield r


@pytest.fixture
async def second() -> AsyncIterator[Responder]:
    async with Responder() as r:
        yield r


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_forwards_over_the_client_transport(upstream: Responder, tcp: bool) -> None:
    async with running_server(f". {{\n forward . 127.0.0.1:{upstream.port}\n}}\n") as server:
        reply = await query(server.port, "Example.ORG.", "A", tcp=tcp)
    assert reply.rcode() == dns.rcode.NOERROR
    assert answers(reply) == [DEFAULT_ADDRESS]
    assert upstream.count("tcp" if tcp else "udp") == 1


async def test_truncated_udp_reply_goes_to_the_client(upstream: Responder) -> None:
    upstream.mode = "truncate"
    async with running_server(f". {{\n forward . 127.0.0.1:{upstream.port}\n}}\n") as server:
        reply = await query(server.port, "example.org.", "A")
        assert reply.flags & dns.flags.TC
        retried = await query(server.port, "example.org.", "A", tcp=True)
    assert answers(retried) == [DEFAULT_ADDRESS]
    assert upstream.counts() == {"udp": 1, "tcp": 1}


async def test_prefer_udp_retries_truncation_over_tcp(upstream: Responder) -> None:
    upstream.mode = "truncate"
    corefile = f". {{\n forward . 127.0.0.1:{upstream.port} {{\n prefer_udp\n }}\n}}\n"
    async with running_server(corefile) as server:
        reply = await query(server.port, "example.org.", "A", tcp=True)
    assert answers(reply) == [DEFAULT_ADDRESS]
    assert upstream.counts() == {"udp": 1, "tcp": 1}


async def test_force_tcp(upstream: Responder) -> None:
    corefile = f". {{\n forward . 127.0.0.1:{upstream.port} {{\n force_tcp\n }}\n}}\n"
    async with running_server(corefile) as server:
        reply = await query(server.port, "example.org.", "A")
    assert answers(reply) == [DEFAULT_ADDRESS]
    assert upstream.counts() == {"tcp": 1}


@pytest.mark.parametrize(
    "mode", ["timeout", "wrong_id", "wrong_question", "other_address", "garbage"]
)
async def test_bad_upstream_replies_are_never_accepted(upstream: Responder, mode: Mode) -> None:
    upstream.mode = mode
    async with running_server(f". {{\n forward . 127.0.0.1:{upstream.port}\n}}\n") as server:
        fast(server)
        started = time.monotonic()
        reply = await query(server.port, "example.org.", "A", timeout=3)
        elapsed = time.monotonic() - started
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert answers(reply) == []
    assert elapsed < 1.0 + 0.5, "SERVFAIL must come within the forward deadline"


async def test_spoofed_datagrams_before_the_real_answer_are_skipped(upstream: Responder) -> None:
    upstream.mode = "bad_then_answer"
    async with running_server(f". {{\n forward . 127.0.0.1:{upstream.port}\n}}\n") as server:
        reply = await query(server.port, "example.org.", "A")
    assert answers(reply) == [DEFAULT_ADDRESS]


async def test_timeout_with_default_deadline_is_bounded(upstream: Responder) -> None:
    """CoreDNS's numbers: 2 s per try, an upstream down after max_fails (2) failures."""
    upstream.mode = "timeout"
    async with running_server(f". {{\n forward . 127.0.0.1:{upstream.port}\n}}\n") as server:
        started = time.monotonic()
        reply = await query(server.port, "example.org.", "A", timeout=8)
        elapsed = time.monotonic() - started
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert 3.5 < elapsed < 5.5


async def test_health_check_marks_down_then_up_and_all_down_fails_fast(
    upstream: Responder,
) -> None:
    upstream.mode = "timeout"
    corefile = (
        f". {{\n forward . 127.0.0.1:{upstream.port} {{\n max_fails 2\n"
        " health_check 100ms\n }\n prometheus 127.0.0.1:0\n}\n"
    )
    async with running_server(corefile) as server:
        plugin = fast(server)
        (proxy,) = plugin.proxies
        reply = await query(server.port, "example.org.", "A", timeout=3)
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert proxy.down
        # Every upstream down: SERVFAIL at once, no query sent.
        sent = upstream.count()
        started = time.monotonic()
        reply = await query(server.port, "example.org.", "A")
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert time.monotonic() - started < 0.2
        assert sample(server, "coredns_forward_healthcheck_broken_total") >= 1
        assert upstream.count() - sent <= 1  # at most a health probe slipped in
        # The health check keeps probing, and brings it back once it answers.
        upstream.mode = "answer"
        for _ in range(50):
            if not proxy.down:
                break
            await asyncio.sleep(0.05)
        assert not proxy.down
        assert any(q.qtype == "NS" and q.qname == "." for q in upstream.received)
        reply = await query(server.port, "example.org.", "A")
        assert answers(reply) == [DEFAULT_ADDRESS]
        to = f"127.0.0.1:{upstream.port}"
        assert (
            sample(
                server,
                "coredns_proxy_healthcheck_failures_total",
                {"proxy_name": "forward", "to": to},
            )
            >= 1
        )
        assert sample(server, "coredns_forward_healthcheck_failures_total", {"to": to}) >= 1


@pytest.mark.parametrize("option", ["max_fails 0", "health_check 0s"])
async def test_without_health_checks_upstreams_are_never_marked_down(
    upstream: Responder, option: str
) -> None:
    upstream.mode = "timeout"
    corefile = f". {{\n forward . 127.0.0.1:{upstream.port} {{\n {option}\n }}\n}}\n"
    async with running_server(corefile) as server:
        plugin = fast(server, deadline=0.6, try_timeout=0.2)
        reply = await query(server.port, "example.org.", "A", timeout=3)
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert not plugin.proxies[0].down
        assert upstream.count() >= 2  # kept trying until the deadline


async def test_unhealthy_upstream_is_skipped_for_a_healthy_one(
    upstream: Responder, second: Responder
) -> None:
    upstream.mode = "timeout"
    corefile = (
        f". {{\n forward . 127.0.0.1:{upstream.port} 127.0.0.1:{second.port} {{\n"
        " policy sequential\n health_check 10s\n }\n}\n"
    )
    async with running_server(corefile) as server:
        fast(server)
        for _ in range(4):
            reply = await query(server.port, "example.org.", "A", timeout=3)
            assert answers(reply) == [DEFAULT_ADDRESS]
    assert upstream.count() == 2  # then marked down and skipped
    assert second.count() == 4


async def test_max_concurrent_refuses_the_excess(upstream: Responder) -> None:
    upstream.mode = "delay"
    upstream.delay_ms = 300
    corefile = (
        f". {{\n forward . 127.0.0.1:{upstream.port} {{\n max_concurrent 1\n }}\n"
        " prometheus 127.0.0.1:0\n}\n"
    )
    async with running_server(corefile) as server:
        replies = await asyncio.gather(
            query(server.port, "one.example.", "A"),
            query(server.port, "two.example.", "A"),
        )
        rcodes = sorted(r.rcode() for r in replies)
        assert rcodes == [dns.rcode.NOERROR, dns.rcode.REFUSED]
        assert sample(server, "coredns_forward_max_concurrent_rejects_total") == 1


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("sequential", (6, 0)), ("round_robin", (3, 3))],
    ids=["sequential → all to the first", "round_robin → alternating"],
)
async def test_policy_order(
    upstream: Responder, second: Responder, policy: str, expected: tuple[int, int]
) -> None:
    corefile = (
        f". {{\n forward . 127.0.0.1:{upstream.port} 127.0.0.1:{second.port} {{\n"
        f" policy {policy}\n }}\n}}\n"
    )
    async with running_server(corefile) as server:
        for i in range(6):
            await query(server.port, f"q{i}.example.", "A")
    assert (upstream.count(), second.count()) == expected


async def test_random_policy_uses_every_upstream(upstream: Responder, second: Responder) -> None:
    corefile = f". {{\n forward . 127.0.0.1:{upstream.port} 127.0.0.1:{second.port}\n}}\n"
    async with running_server(corefile) as server:
        for i in range(30):
            await query(server.port, f"q{i}.example.", "A")
    assert upstream.count() > 0 and second.count() > 0


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("policy sequential", dns.rcode.SERVFAIL),
        ("policy sequential\n failover SERVFAIL REFUSED", dns.rcode.NOERROR),
    ],
    ids=["no failover → first upstream's SERVFAIL", "failover SERVFAIL → next upstream"],
)
async def test_failover(upstream: Responder, second: Responder, block: str, expected: int) -> None:
    upstream.mode = "servfail"
    corefile = (
        f". {{\n forward . 127.0.0.1:{upstream.port} 127.0.0.1:{second.port} {{\n"
        f" {block}\n }}\n}}\n"
    )
    async with running_server(corefile) as server:
        reply = await query(server.port, "example.org.", "A")
    assert reply.rcode() == expected


async def test_failover_everywhere_returns_the_last_reply(
    upstream: Responder, second: Responder
) -> None:
    upstream.mode = second.mode = "refused"
    corefile = (
        f". {{\n forward . 127.0.0.1:{upstream.port} 127.0.0.1:{second.port} {{\n"
        " failover REFUSED\n }\n}\n"
    )
    async with running_server(corefile) as server:
        reply = await query(server.port, "example.org.", "A")
    assert reply.rcode() == dns.rcode.REFUSED
    assert (upstream.count(), second.count()) == (1, 1)


async def test_next_passes_to_the_following_forward(upstream: Responder, second: Responder) -> None:
    upstream.mode = "nxdomain"
    corefile = (
        f". {{\n forward . 127.0.0.1:{upstream.port} {{\n next NXDOMAIN\n }}\n"
        f" forward . 127.0.0.1:{second.port}\n}}\n"
    )
    async with running_server(corefile) as server:
        reply = await query(server.port, "example.org.", "A")
    assert answers(reply) == [DEFAULT_ADDRESS]

    def asked(responder: Responder) -> int:  # health-check probes (". NS") aside
        return sum(1 for q in responder.received if q.qname == "example.org.")

    assert (asked(upstream), asked(second)) == (1, 1)


@pytest.mark.parametrize(
    ("name", "forwarded"),
    [
        ("example.org.", False),
        ("www.example.org.", False),
        ("example.com.", True),
    ],
    ids=["except zone apex → next", "except subdomain → next", "other → forwarded"],
)
async def test_except(upstream: Responder, name: str, forwarded: bool) -> None:
    corefile = (
        f". {{\n forward . 127.0.0.1:{upstream.port} {{\n except example.org\n }}\n whoami\n}}\n"
    )
    async with running_server(corefile) as server:
        reply = await query(server.port, name, "A")
    assert upstream.count() == (1 if forwarded else 0)
    if not forwarded:  # whoami answered
        assert reply.additional


async def test_from_zone_limits_forwarding(upstream: Responder) -> None:
    corefile = f". {{\n forward example.org 127.0.0.1:{upstream.port}\n whoami\n}}\n"
    async with running_server(corefile) as server:
        await query(server.port, "a.example.org.", "A")
        await query(server.port, "a.example.com.", "A")
    assert [q.qname for q in upstream.received] == ["a.example.org."]


async def test_forward_stanzas_in_several_blocks(upstream: Responder, second: Responder) -> None:
    corefile = (
        f"example.org {{\n forward . 127.0.0.1:{upstream.port}\n}}\n"
        f". {{\n forward . 127.0.0.1:{second.port}\n}}\n"
    )
    async with running_server(corefile) as server:
        assert answers(await query(server.port, "a.example.org.", "A")) == [DEFAULT_ADDRESS]
        assert answers(await query(server.port, "a.example.net.", "A")) == [DEFAULT_ADDRESS]
    assert [q.qname for q in upstream.received] == ["a.example.org."]
    assert [q.qname for q in second.received] == ["a.example.net."]


async def test_request_and_response_metrics(upstream: Responder) -> None:
    corefile = f". {{\n forward . 127.0.0.1:{upstream.port}\n prometheus 127.0.0.1:0\n}}\n"
    async with running_server(corefile) as server:
        await query(server.port, "example.org.", "A")
        to = f"127.0.0.1:{upstream.port}"
        assert sample(server, "coredns_forward_requests_total", {"to": to}) == 1
        assert (
            sample(server, "coredns_forward_responses_total", {"to": to, "rcode": "NOERROR"}) == 1
        )
        assert (
            sample(
                server,
                "coredns_proxy_request_duration_seconds_count",
                {"proxy_name": "forward", "to": to, "rcode": "NOERROR"},
            )
            == 1
        )


async def test_reload_keeps_metrics_registered(upstream: Responder) -> None:
    corefile = f". {{\n forward . 127.0.0.1:{upstream.port}\n}}\n"
    async with running_server(corefile) as server:
        server.corefile.write_text(corefile + "\n# changed\n")
        assert await server.app.reload()
        reply = await query(server.port, "example.org.", "A")
    assert answers(reply) == [DEFAULT_ADDRESS]


async def test_upstream_reply_keeps_the_client_id(upstream: Responder) -> None:
    async with running_server(f". {{\n forward . 127.0.0.1:{upstream.port}\n}}\n") as server:
        message = make_query("example.org.", "A")
        message.id = 4242
        reply = await dns.asyncquery.udp(message, "127.0.0.1", port=server.port, timeout=2)
    assert reply.id == 4242


async def test_forwards_over_tls(tls_files: TLSFiles) -> None:
    async with Responder(tls_context=tls_files.server_context()) as tls_upstream:
        corefile = (
            f". {{\n forward . tls://127.0.0.1:{tls_upstream.port} {{\n"
            f" tls {tls_files.cert}\n tls_servername {TLS_SERVERNAME}\n }}\n}}\n"
        )
        async with running_server(corefile) as server:
            reply = await query(server.port, "example.org.", "A")
    assert answers(reply) == [DEFAULT_ADDRESS]
    assert tls_upstream.counts() == {"tls": 1}


# --- CoreDNS 1.12-1.14 options ------------------------------------------------------------


def closed_udp_port() -> int:
    """A loopback port nothing listens on: a query there fails at once (ICMP unreachable)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("option", "attempts"),
    [
        pytest.param("", 4, id="default: two per upstream"),
        pytest.param("max_connect_attempts 1", 1, id="1"),
        pytest.param("max_connect_attempts 3", 3, id="3"),
    ],
)
async def test_max_connect_attempts_caps_failed_exchanges(option: str, attempts: int) -> None:
    dead = [closed_udp_port(), closed_udp_port()]
    corefile = (
        f". {{\n forward . 127.0.0.1:{dead[0]} 127.0.0.1:{dead[1]} {{\n max_fails 0\n"
        f" {option}\n }}\n prometheus 127.0.0.1:0\n}}\n"
    )
    async with running_server(corefile) as server:
        fast(server, deadline=2.0)
        reply = await query(server.port, "example.org.", "A", timeout=3)
        assert reply.rcode() == dns.rcode.SERVFAIL
        sent = sum(
            sample(server, "coredns_forward_requests_total", {"to": f"127.0.0.1:{port}"})
            for port in dead
        )
    assert sent == attempts


async def test_max_connect_attempts_zero_retries_until_the_deadline() -> None:
    dead = closed_udp_port()
    corefile = (
        f". {{\n forward . 127.0.0.1:{dead} {{\n max_fails 0\n max_connect_attempts 0\n }}\n"
        " prometheus 127.0.0.1:0\n}\n"
    )
    async with running_server(corefile) as server:
        fast(server, deadline=0.5)
        started = time.monotonic()
        reply = await query(server.port, "example.org.", "A", timeout=3)
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert time.monotonic() - started >= 0.45
        sent = sample(server, "coredns_forward_requests_total", {"to": f"127.0.0.1:{dead}"})
    assert sent > 4


async def test_a_healthy_upstream_answers_within_the_attempts(
    upstream: Responder, second: Responder
) -> None:
    upstream.mode = "timeout"
    corefile = (
        f". {{\n forward . 127.0.0.1:{upstream.port} 127.0.0.1:{second.port} {{\n"
        " policy sequential\n max_connect_attempts 2\n }\n}\n"
    )
    async with running_server(corefile) as server:
        fast(server)
        reply = await query(server.port, "example.org.", "A", timeout=3)
    assert answers(reply) == [DEFAULT_ADDRESS]

    def asked(responder: Responder) -> int:  # health-check probes (". NS") aside
        return sum(1 for q in responder.received if q.qname == "example.org.")

    assert (asked(upstream), asked(second)) == (1, 1)


async def test_failfast_all_unhealthy_upstreams(upstream: Responder) -> None:
    upstream.mode = "timeout"
    corefile = (
        f". {{\n forward . 127.0.0.1:{upstream.port} {{\n max_fails 1\n health_check 10s\n"
        " failfast_all_unhealthy_upstreams\n }\n}\n"
    )
    async with running_server(corefile) as server:
        plugin = fast(server)
        await query(server.port, "example.org.", "A", timeout=3)
        assert plugin.proxies[0].down
        sent = upstream.count()
        started = time.monotonic()
        reply = await query(server.port, "example.org.", "A")
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert time.monotonic() - started < 0.2
    assert upstream.count() == sent  # no query went to the dead upstream


async def test_max_age_replaces_a_busy_connection(upstream: Responder) -> None:
    corefile = (
        f". {{\n forward . 127.0.0.1:{upstream.port} {{\n force_tcp\n expire 300ms\n"
        " max_age 400ms\n }\n}\n"
    )
    async with running_server(corefile) as server:
        for _ in range(8):  # every 100 ms: never idle long enough to expire
            reply = await query(server.port, "example.org.", "A")
            assert answers(reply) == [DEFAULT_ADDRESS]
            await asyncio.sleep(0.1)
    assert upstream.count("tcp") == 8
    assert upstream.tcp_connections >= 2  # a new one once the first was 400 ms old


async def test_without_max_age_a_busy_connection_is_kept(upstream: Responder) -> None:
    corefile = (
        f". {{\n forward . 127.0.0.1:{upstream.port} {{\n force_tcp\n expire 300ms\n }}\n}}\n"
    )
    async with running_server(corefile) as server:
        for _ in range(8):
            await query(server.port, "example.org.", "A")
            await asyncio.sleep(0.1)
    assert upstream.tcp_connections == 1


@pytest.mark.parametrize(
    ("qtype", "from_second"),
    [("AAAA", True), ("A", False)],
    ids=["NODATA goes on", "an answer stays"],
)
async def test_next_on_nodata(
    upstream: Responder, second: Responder, qtype: str, from_second: bool
) -> None:
    second.answers = {"example.org.": ["example.org. 60 IN AAAA 2001:db8::1"]}
    corefile = (
        f". {{\n forward . 127.0.0.1:{upstream.port} {{\n next_on_nodata\n }}\n"
        f" forward . 127.0.0.1:{second.port}\n}}\n"
    )
    async with running_server(corefile) as server:
        reply = await query(server.port, "example.org.", qtype)
    assert reply.rcode() == dns.rcode.NOERROR
    assert answers(reply) == (["2001:db8::1"] if from_second else [DEFAULT_ADDRESS])
    assert second.count() == (1 if from_second else 0)
