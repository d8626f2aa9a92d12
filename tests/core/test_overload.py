"""Overload at the UDP socket: late datagrams dropped unread, one client's share of a
backlogged batch bounded; and through a running server, a flood of chain questions
bounded by the slow lane while another client is still answered."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from clusterdns.core import mmsg
from tests.core.conftest import serve
from tests.helpers.responder import Responder

pytestmark = pytest.mark.skipif(not mmsg.available(), reason="recvmmsg is Linux-only")


def make_query(n: int) -> bytes:
    return dns.message.make_query(f"q{n}.example.", "A", id=n & 0xFFFF).to_wire()


def echo(data: bytes, client: tuple[str, int]) -> bytes:
    reply = bytearray(data)
    reply[2] |= 0x80
    return bytes(reply)


def no_memo() -> dict[bytes, mmsg.Entry]:
    return {}


def stamped(sock: socket.socket, late_after: float) -> mmsg.BatchSocket:
    """A BatchSocket whose datagrams carry their arrival time. Linux turns receive
    timestamps on for the whole system a moment after the first socket asks (and off when
    the last one closes): a datagram that arrives before then is stamped when it is read,
    so the test waits that moment out before sending."""
    batch = mmsg.BatchSocket(sock, late_after=late_after)
    time.sleep(0.2)
    return batch


def receive_all(sock: socket.socket) -> list[int]:
    ids = []
    sock.settimeout(0.3)
    try:
        while True:
            data = sock.recv(4096)
            ids.append(int.from_bytes(data[:2], "big"))
    except TimeoutError:
        return ids


@pytest.fixture
def server_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    yield sock
    sock.close()


def test_datagrams_that_waited_too_long_are_dropped_unread(server_socket: socket.socket) -> None:
    batch = stamped(server_socket, 0.4)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    address = server_socket.getsockname()
    for n in range(10):
        client.sendto(make_query(n), address)
    time.sleep(0.6)  # these ten are now late
    for n in range(10, 15):
        client.sendto(make_query(n), address)
    received = batch.serve_batch(echo, no_memo)
    assert received == 15
    assert batch.late == 10
    assert receive_all(client) == list(range(10, 15)), "only the fresh ones are answered"
    client.close()


def test_a_fresh_queue_is_answered_in_full(server_socket: socket.socket) -> None:
    batch = stamped(server_socket, 0.4)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    for n in range(mmsg.BATCH):
        client.sendto(make_query(n), server_socket.getsockname())
    received = batch.serve_batch(echo, no_memo)
    assert received == mmsg.BATCH and batch.late == 0 and batch.over_share == 0
    assert sorted(receive_all(client)) == list(range(mmsg.BATCH))
    client.close()


def test_in_a_backlog_one_client_gets_its_share_of_a_batch(server_socket: socket.socket) -> None:
    """A full batch that waited past BACKLOGGED_AFTER: the flooding address (many source
    ports) gets SHARE answers; a second address in the same batch gets all of its own."""
    batch = stamped(server_socket, 5.0)
    address = server_socket.getsockname()
    flooders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
    for sock in flooders:
        sock.bind(("127.0.0.1", 0))
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.2", 0))
    for n in range(mmsg.BATCH - 4):
        flooders[n % len(flooders)].sendto(make_query(n), address)
    for n in range(1000, 1004):
        other.sendto(make_query(n), address)
    time.sleep(mmsg.BACKLOGGED_AFTER * 2)
    received = batch.serve_batch(echo, no_memo)
    assert received == mmsg.BATCH
    assert sorted(receive_all(other)) == [1000, 1001, 1002, 1003]
    answered = sum(len(receive_all(sock)) for sock in flooders)
    assert answered == mmsg.SHARE
    assert batch.over_share == mmsg.BATCH - 4 - mmsg.SHARE
    for sock in (*flooders, other):
        sock.close()


def test_in_a_backlog_a_lone_client_keeps_the_whole_batch(server_socket: socket.socket) -> None:
    """With nobody else waiting, holding one client to a share would only drop answers
    (one node's cache sends everything from one address)."""
    batch = stamped(server_socket, 5.0)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    for n in range(mmsg.BATCH):
        client.sendto(make_query(n), server_socket.getsockname())
    time.sleep(mmsg.BACKLOGGED_AFTER * 2)
    received = batch.serve_batch(echo, no_memo)
    assert received == mmsg.BATCH and batch.over_share == 0
    assert sorted(receive_all(client)) == list(range(mmsg.BATCH))
    client.close()


async def test_a_chain_flood_is_bounded_and_another_client_still_answered(
    tmp_path: Path,
) -> None:
    """Thousands of forwarded questions whose upstream answers after 0.5 s, from one
    address: the slow lane holds a bounded share for it and sheds the rest; a question
    from another address is answered meanwhile, and the server stays responsive."""
    async with Responder() as upstream:
        upstream.mode = "delay"
        upstream.delay_ms = 500
        text = (
            f".:0 {{\n    bind 127.0.0.1 127.0.0.2\n    forward . 127.0.0.1:{upstream.port}\n}}\n"
        )
        async with serve(text, tmp_path) as running:
            port = running.port()
            flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            flood.bind(("127.0.0.1", 0))
            flood.setblocking(False)
            for n in range(3000):
                try:
                    flood.sendto(make_query(n), ("127.0.0.1", port))
                except BlockingIOError:
                    await asyncio.sleep(0.001)
            await asyncio.sleep(0.2)
            started = time.monotonic()
            reply = await dns.asyncquery.udp(
                dns.message.make_query("other.example.", "A"),
                "127.0.0.1",
                timeout=5.0,
                port=port,
                source="127.0.0.2",
            )
            assert reply.rcode() == dns.rcode.NOERROR
            assert time.monotonic() - started < 4.0
            lanes = [
                worker.lane
                for listener in running.app.server.listeners.values()
                for worker in listener.udp_threads
            ]
            metrics = lanes[0].metrics
            assert metrics.client._value.get() > 0, "the flood was held to its share"
            assert all(lane.running <= lane.max_running for lane in lanes)
            flood.close()


def test_a_batch_is_counted_before_its_replies_leave(server_socket: socket.socket) -> None:
    """A client that has its answer finds it in the metrics: the batch's hits and time
    are handed over before the replies are sent (a scrape right after a reply saw one
    memo hit fewer, now and then, on a busy machine)."""
    batch = mmsg.BatchSocket(server_socket)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.setblocking(False)
    memoised = make_query(1)
    tail = echo(memoised, ("", 0))[2:]
    memo: dict[bytes, mmsg.Entry] = {memoised[2:]: (tail, float("inf"), [0], ())}
    for n in (1, 2):
        client.sendto(make_query(n), server_socket.getsockname())
    accounted: list[tuple[int, bool]] = []

    def account(hits: int, seconds: float) -> None:
        try:
            client.recv(4096)
            replied = True
        except BlockingIOError:
            replied = False
        accounted.append((hits, replied))

    deadline = time.monotonic() + 5
    served = 0
    while served < 2 and time.monotonic() < deadline:
        served += batch.serve_batch(echo, lambda: memo, account)
    assert served == 2
    assert sum(hits for hits, _ in accounted) == 1
    assert not any(replied for _, replied in accounted), "a reply left before its count"
    client.setblocking(True)
    assert sorted(receive_all(client)) == [1, 2]
    client.close()
