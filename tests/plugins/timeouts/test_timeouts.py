"""timeouts against a real server: the TCP read timeout (first query), idle timeout (between
queries) and query cap per connection; parsing."""

from __future__ import annotations

import asyncio
import struct

import dns.message
import pytest

from clusterdns.core.instance import build_instance
from clusterdns.core.plugin import TcpTimeouts
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from tests.helpers.server import running_server

pytestmark = pytest.mark.timeout(30)


def corefile(options: str) -> str:
    block = f"    timeouts {{\n{options}\n    }}\n" if options else ""
    return f". {{\n{block}    whoami\n}}\n"


def framed(name: str) -> bytes:
    wire = dns.message.make_query(name, "A").to_wire()
    return struct.pack("!H", len(wire)) + wire


async def replies_then_close(
    port: int, payload: bytes, *, wait: float, count: int
) -> tuple[int, bool]:
    """Send ``payload``, read ``count`` replies, then see whether the server closes the
    connection within ``wait`` seconds: (replies read, closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if payload:
            writer.write(payload)
            await writer.drain()
        read = 0
        for _ in range(count):
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            await reader.readexactly(length)
            read += 1
        try:
            closed = await asyncio.wait_for(reader.read(1), wait) == b""
        except TimeoutError:
            closed = False
        return read, closed
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("options", "payload", "replies", "wait", "closed"),
    [
        ("", framed("a.example"), 1, 1.6, False),
        ("        idle 1s", framed("a.example"), 1, 1.6, True),
        ("        read 1s\n        idle 5s", b"", 0, 1.6, True),
        ("        read 1s\n        idle 5s", framed("a.example"), 1, 1.6, False),
        ("        read 5s\n        idle 1s", b"", 0, 1.6, False),
        ("        maxtcpqueries 2", framed("a.example") * 3, 2, 1.0, True),
        ("        maxtcpqueries -1", framed("a.example") * 3, 3, 1.0, False),
    ],
    ids=[
        "default idle 10s: open after 1.6s",
        "idle 1s: closed after a query",
        "read 1s: closed without a first query",
        "read 1s idle 5s: open after a query",
        "read 5s idle 1s: open while waiting for the first query",
        "maxtcpqueries 2: two replies, then closed",
        "maxtcpqueries -1: unlimited",
    ],
)
async def test_tcp_limits(
    options: str, payload: bytes, replies: int, wait: float, closed: bool
) -> None:
    async with running_server(corefile(options)) as running:
        got = await replies_then_close(running.port, payload, wait=wait, count=replies)
        assert got == (replies, closed)


def settings_of(options: str) -> TcpTimeouts:
    instance = build_instance(
        parse(corefile(options), filename="Corefile"), process=Process(), dns_port=0
    )
    return instance.blocks[0].settings.tcp


def test_setup() -> None:
    assert settings_of("read 10s\nwrite 20s\nidle 1m\nmaxtcpqueries 128") == TcpTimeouts(
        read=10.0, write=20.0, idle=60.0, max_queries=128
    )
    assert settings_of("idle 30") == TcpTimeouts(idle=30.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("", "Corefile:2: timeouts: timeouts block with no timeouts specified"),
        (
            "read 500ms",
            "Corefile:3: timeouts: timeout '500ms' needs to be between 1 second and 24 hours",
        ),
        ("idle 25h", "needs to be between 1 second and 24 hours"),
        ("idle", "Corefile:3: timeouts: idle takes exactly one value"),
        ("idle 1s 2s", "idle takes exactly one value"),
        ("linger 1s", "Corefile:3: timeouts: unknown option: 'linger'"),
        ("read soon", "invalid duration 'soon'"),
        ("maxtcpqueries 0", "maxtcpqueries needs to be -1 \\(unlimited\\) or a positive integer"),
        ("maxtcpqueries -2", "maxtcpqueries must be at least -1"),
    ],
)
def test_setup_errors(options: str, message: str) -> None:
    text = (
        ". {\n    timeouts {\n" + options + "\n    }\n}\n"
        if options
        else ". {\n    timeouts {\n    }\n}\n"
    )
    with pytest.raises(CorefileError, match=message):
        build_instance(parse(text, filename="Corefile"), process=Process(), dns_port=0)
