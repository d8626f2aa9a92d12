"""cache in a real server: in front of forward, and in front of hosts (generation)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.rcode
import pytest

from clusterdns.plugins.cache import Cache
from tests.helpers.dnsclient import make_query, query
from tests.helpers.responder import DEFAULT_ADDRESS, Responder
from tests.helpers.server import RunningServer, running_server

pytestmark = pytest.mark.timeout(20)


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def cache_of(server: RunningServer) -> tuple[Cache, Clock]:
    plugin = server.plugin("cache")
    assert isinstance(plugin, Cache)
    clock = Clock()
    plugin.clock = clock
    return plugin, clock


@pytest.fixture
async def upstream() -> AsyncIterator[Responder]:
    async with Responder() as r:
        yield r


async def test_forwarded_name_is_cached_with_decreasing_ttl(upstream: Responder) -> None:
    corefile = f". {{\n cache\n forward . 127.0.0.1:{upstream.port}\n}}\n"
    async with running_server(corefile) as server:
        _, clock = cache_of(server)
        first = await query(server.port, "example.org.", "A")
        clock.now += 15
        second = await query(server.port, "Example.Org.", "A", tcp=True)
        clock.now += 15
        third = await query(server.port, "EXAMPLE.ORG.", "A")
    assert [r.answer[0].ttl for r in (first, second, third)] == [60, 45, 30]
    assert [r.question[0].name.to_text() for r in (second, third)] == [
        "Example.Org.",
        "EXAMPLE.ORG.",
    ]
    assert third.answer[0][0].to_text() == DEFAULT_ADDRESS
    assert upstream.count() == 1


async def test_concurrent_clients_each_get_their_own_id(upstream: Responder) -> None:
    corefile = f". {{\n cache\n forward . 127.0.0.1:{upstream.port}\n}}\n"
    async with running_server(corefile) as server:
        await query(server.port, "example.org.", "A")
        messages = []
        for qid, name in ((1, "example.org."), (2, "EXAMPLE.org."), (3, "eXaMpLe.OrG.")):
            message = make_query(name, "A")
            message.id = qid
            messages.append(message)
        replies = await asyncio.gather(
            *(dns.asyncquery.udp(m, "127.0.0.1", port=server.port, timeout=2) for m in messages)
        )
    for message, reply in zip(messages, replies, strict=True):
        assert reply.id == message.id
        assert reply.question[0].name.to_text() == message.question[0].name.to_text()


async def test_serve_stale_while_upstream_is_down(upstream: Responder) -> None:
    corefile = (
        ". {\n cache {\n serve_stale 1h\n }\n"
        f" forward . 127.0.0.1:{upstream.port} {{\n max_fails 1\n health_check 10s\n }}\n}}\n"
    )
    async with running_server(corefile) as server:
        _, clock = cache_of(server)
        fresh = await query(server.port, "example.org.", "A")
        assert fresh.answer[0][0].to_text() == DEFAULT_ADDRESS
        upstream.mode = "timeout"  # down: the background refresh gets nothing
        clock.now += 120
        for _ in range(2):
            stale = await asyncio.wait_for(query(server.port, "example.org.", "A"), 0.5)
            assert stale.rcode() == dns.rcode.NOERROR
            assert stale.answer[0].ttl == 0
            assert stale.answer[0][0].to_text() == DEFAULT_ADDRESS
        upstream.mode = "refused"  # up again but refusing: an error never replaces the entry
        clock.now += 1
        await query(server.port, "example.org.", "A")
        await asyncio.sleep(0.1)
        stale = await query(server.port, "example.org.", "A")
        assert stale.answer[0][0].to_text() == DEFAULT_ADDRESS


async def test_denial_from_upstream_cached(upstream: Responder) -> None:
    upstream.mode = "nxdomain"
    corefile = f". {{\n cache\n forward . 127.0.0.1:{upstream.port}\n}}\n"
    async with running_server(corefile) as server:
        for _ in range(3):
            reply = await query(server.port, "nothing.example.", "A")
            assert reply.rcode() == dns.rcode.NXDOMAIN
    assert upstream.count() == 1


async def test_hosts_change_is_visible_at_once_behind_cache(
    tmp_path: Path, upstream: Responder
) -> None:
    """NXDOMAIN cached (from upstream, via hosts fallthrough); the name then appears in the
    hosts file: the next query resolves it, without waiting for the negative TTL."""
    upstream.mode = "nxdomain"
    hosts = tmp_path / "hosts"
    hosts.write_text("192.0.2.10 old.example.internal\n")
    corefile = (
        ". {\n cache\n"
        f" hosts {hosts} {{\n fallthrough\n reload 0\n }}\n"
        f" forward . 127.0.0.1:{upstream.port}\n}}\n"
    )
    async with running_server(corefile, tmp_path=tmp_path) as server:
        for _ in range(2):
            reply = await query(server.port, "new.example.internal.", "A")
            assert reply.rcode() == dns.rcode.NXDOMAIN
        assert upstream.count() == 1
        hosts.write_text("192.0.2.10 old.example.internal\n192.0.2.11 new.example.internal\n")
        plugin = server.plugin("hosts")
        assert await plugin.reload_if_changed()  # type: ignore[attr-defined]
        reply = await query(server.port, "new.example.internal.", "A")
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.answer[0][0].to_text() == "192.0.2.11"
        assert upstream.count() == 1


async def test_cache_metrics(upstream: Responder) -> None:
    corefile = f". {{\n cache\n forward . 127.0.0.1:{upstream.port}\n prometheus 127.0.0.1:0\n}}\n"
    async with running_server(corefile) as server:
        for _ in range(3):
            await query(server.port, "example.org.", "A")
        registry = server.app.process.metrics.registry
        labels = {"server": "dns://:0", "zones": ".", "view": ""}
        assert registry.get_sample_value("coredns_cache_requests_total", labels) == 3
        assert registry.get_sample_value("coredns_cache_misses_total", labels) == 1
        assert (
            registry.get_sample_value("coredns_cache_hits_total", {**labels, "type": "success"})
            == 2
        )
        assert (
            registry.get_sample_value("coredns_cache_entries", {**labels, "type": "success"}) == 1
        )


async def test_hits_take_the_core_fast_path(upstream: Responder) -> None:
    corefile = f". {{\n cache\n forward . 127.0.0.1:{upstream.port}\n}}\n"
    async with running_server(corefile) as server:
        plugin, _ = cache_of(server)
        block = server.app.instance.blocks[0]  # type: ignore[union-attr]
        assert [step.name for step in block.fast_steps] == ["cache"]
        calls = 0
        original = plugin.answer_fast

        def counting(query, limit, payload):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            return original(query, limit, payload)

        (step,) = block.fast_steps
        step.answer = counting
        await query(server.port, "example.org.", "A")
        reply = await query(server.port, "example.org.", "A")
    assert calls == 2
    assert reply.answer[0][0].to_text() == DEFAULT_ADDRESS
    assert upstream.count() == 1
