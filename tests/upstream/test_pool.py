"""TCP connection reuse: pooling, expiry, stale connections, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import dns.message
import pytest

from clusterdns.upstream import Upstream, UpstreamAddress, UpstreamConnectError, UpstreamTimeout
from tests.helpers.responder import DEFAULT_ADDRESS, Responder
from tests.upstream.test_exchange import _answers, deadline_in, make_query


async def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def upstream(responder: Responder) -> AsyncIterator[Upstream]:
    up = Upstream(UpstreamAddress("127.0.0.1", responder.port))
    yield up
    await up.close()


async def tcp(up: Upstream, name: str = "example.org.", timeout: float = 2.0) -> bytes:
    return await up.exchange(make_query(name), deadline=deadline_in(timeout), client_proto="tcp")


async def test_connection_is_reused(responder: Responder, upstream: Upstream) -> None:
    for _ in range(5):
        assert _answers(await tcp(upstream)) == [DEFAULT_ADDRESS]
    assert responder.tcp_connections == 1
    assert responder.count("tcp") == 5
    assert (upstream.conn_cache_misses, upstream.conn_cache_hits) == (1, 4)
    assert upstream.idle_connections == 1


async def test_idle_connection_expires(responder: Responder) -> None:
    up = Upstream(UpstreamAddress("127.0.0.1", responder.port), expire=0.2)
    await tcp(up)
    assert up.idle_connections == 1
    assert responder.open_tcp_connections == 1
    # closed by the sweep timer, without another query coming by
    await eventually(lambda: up.idle_connections == 0 and responder.open_tcp_connections == 0)
    await tcp(up)
    assert responder.tcp_connections == 2
    await up.close()


async def test_expire_zero_disables_pooling(responder: Responder) -> None:
    up = Upstream(UpstreamAddress("127.0.0.1", responder.port), expire=0)
    for _ in range(3):
        await tcp(up)
    assert responder.tcp_connections == 3
    assert up.idle_connections == 0
    await up.close()


async def test_stale_pooled_connection_is_retried_once(
    responder: Responder, upstream: Upstream
) -> None:
    await tcp(upstream)
    responder.tcp_close_without_reply = 1  # the pooled connection dies under the next query
    assert _answers(await tcp(upstream)) == [DEFAULT_ADDRESS]
    assert responder.tcp_connections == 2
    assert responder.count("tcp") == 3


async def test_connection_closed_by_server_while_idle(
    responder: Responder, upstream: Upstream
) -> None:
    await tcp(upstream)
    await responder.drop_tcp_connections()
    await asyncio.sleep(0.05)
    assert _answers(await tcp(upstream)) == [DEFAULT_ADDRESS]
    assert responder.tcp_connections == 2


async def test_fresh_connection_failure_is_not_retried(
    responder: Responder, upstream: Upstream
) -> None:
    responder.tcp_close_without_reply = 5
    with pytest.raises(UpstreamConnectError):
        await tcp(upstream)
    assert responder.count("tcp") == 1


async def test_stale_retry_happens_only_once(responder: Responder, upstream: Upstream) -> None:
    await tcp(upstream)
    responder.tcp_close_without_reply = 5
    with pytest.raises(UpstreamConnectError):
        await tcp(upstream)
    assert responder.count("tcp") == 3  # first query, pooled attempt, one fresh attempt
    assert upstream.idle_connections == 0


async def test_timed_out_connection_is_not_reused(responder: Responder, upstream: Upstream) -> None:
    """A late reply must never be read by the next query: the connection is closed instead."""
    responder.mode = "delay"
    responder.delay_ms = 300
    responder.answers = {"slow.example.": ["slow.example. 60 IN A 192.0.2.99"]}
    with pytest.raises(UpstreamTimeout):
        await tcp(upstream, "slow.example.", timeout=0.1)
    assert upstream.idle_connections == 0
    responder.mode = "answer"
    assert _answers(await tcp(upstream)) == [DEFAULT_ADDRESS]
    assert responder.tcp_connections == 2


async def test_concurrent_queries_do_not_mix(responder: Responder, upstream: Upstream) -> None:
    names = [f"host{i}.example." for i in range(10)]
    responder.answers = {n: [f"{n} 60 IN A 192.0.2.{i + 10}"] for i, n in enumerate(names)}
    responder.mode = "delay"
    responder.delay_ms = 50
    replies = await asyncio.gather(*(tcp(upstream, n) for n in names))
    for i, (name, reply) in enumerate(zip(names, replies, strict=True)):
        msg = dns.message.from_wire(reply)
        assert msg.question[0].name.to_text() == name
        assert _answers(reply) == [f"192.0.2.{i + 10}"]
    assert responder.tcp_connections == 10
    assert upstream.idle_connections == 10
    # and the pooled connections are then reused, not reopened
    await asyncio.gather(*(tcp(upstream, n) for n in names))
    assert responder.tcp_connections == 10


async def test_max_idle_caps_the_pool(responder: Responder) -> None:
    up = Upstream(UpstreamAddress("127.0.0.1", responder.port), max_idle=3)
    responder.mode = "delay"
    responder.delay_ms = 30
    await asyncio.gather(*(tcp(up) for _ in range(6)))
    assert up.idle_connections == 3
    await eventually(lambda: responder.open_tcp_connections == 3)
    await up.close()


async def test_close_closes_idle_connections(responder: Responder) -> None:
    up = Upstream(UpstreamAddress("127.0.0.1", responder.port))
    await asyncio.gather(tcp(up), tcp(up))
    assert up.idle_connections >= 1
    await up.close()
    assert up.idle_connections == 0
    await eventually(lambda: responder.open_tcp_connections == 0)


async def test_udp_does_not_touch_the_pool(responder: Responder, upstream: Upstream) -> None:
    await upstream.exchange(make_query(), deadline=deadline_in(2))
    assert upstream.idle_connections == 0
    assert responder.tcp_connections == 0


async def test_max_age_closes_a_connection_however_busy(responder: Responder) -> None:
    up = Upstream(UpstreamAddress("127.0.0.1", responder.port), expire=10.0, max_age=0.3)
    await tcp(up)
    await asyncio.sleep(0.1)
    await tcp(up)  # still young: reused
    assert responder.tcp_connections == 1
    await asyncio.sleep(0.25)
    await tcp(up)  # 0.35 s old: not reused, however recently used
    assert responder.tcp_connections == 2
    await eventually(lambda: responder.open_tcp_connections == 1)
    assert up.idle_connections == 1
    await up.close()
