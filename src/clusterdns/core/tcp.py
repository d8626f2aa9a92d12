"""TCP listeners: two-byte framing, pipelined queries, read and idle timeouts, a query cap per
connection (the ``timeouts`` plugin), connection cap."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Final, cast

from clusterdns.core.dispatch import Dispatcher
from clusterdns.core.memo import ReplyMemo
from clusterdns.core.request import Request

if TYPE_CHECKING:
    from clusterdns.core.server import DnsServer

_LENGTH: Final = struct.Struct("!H")


class TcpConnections:
    """What the TCP connections of one listener share: the dispatcher and the count."""

    def __init__(self, server: DnsServer, dispatcher: Dispatcher) -> None:
        self.server = server
        self.dispatcher = dispatcher
        self.active = 0
        # Every connection of the listener runs on the event loop: one memo for all.
        self.memo_stats = server.process.metrics.memo
        self.memo = ReplyMemo(server.options.reply_memo, self.memo_stats)

    def close(self) -> None:
        self.memo_stats.retire(self.memo)

    def limits(self) -> tuple[float, float, int]:
        """(seconds to wait for a new connection's first query, seconds to wait between
        later ones, queries per connection or 0 for no limit), from the ``timeouts`` of
        the blocks on this listener (the last block that sets one wins, as in CoreDNS)
        and the server's options otherwise."""
        idle = self.server.options.tcp_idle_timeout
        read: float | None = None
        max_queries = 0
        for block in self.dispatcher.mux.blocks:
            timeouts = block.settings.tcp
            if timeouts.idle is not None:
                idle = timeouts.idle
            if timeouts.read is not None:
                read = timeouts.read
            if timeouts.max_queries is not None:
                max_queries = max(timeouts.max_queries, 0)
        return (read if read is not None else idle), idle, max_queries

    def protocol(self) -> TcpDnsProtocol:
        return TcpDnsProtocol(self)


class TcpDnsProtocol(asyncio.Protocol):
    """One TCP connection: two-byte framing, pipelined queries answered as each is ready
    (in any order), an idle timeout, and the listener's connection cap.

    A Protocol with its own framing buffer rather than streams: no coroutine and no
    timeout wrapper per query (streams cost ~2.3x the CPU of UDP per query, bench/).
    """

    def __init__(self, shared: TcpConnections) -> None:
        self.shared = shared
        self.dispatcher = shared.dispatcher
        self.transport: asyncio.Transport | None = None
        self.client = ("", 0)
        self.buffer = bytearray()
        self.pending = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.eof = False
        self.counted = False
        self.last_activity = 0.0
        self.idle_timer: asyncio.TimerHandle | None = None
        # Set while the transport's write buffer is over its high-water mark: a reply of
        # many messages (a zone transfer) waits for it rather than buffering them all.
        self.writable: asyncio.Future[None] | None = None
        self.wait = self.idle = 0.0  # the current and the between-queries timeouts
        self.queries_left = 0  # 0: no limit

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        options = self.shared.server.options
        if self.shared.active >= options.tcp_max_connections:
            self.transport.close()
            return
        self.shared.active += 1
        self.counted = True
        peer = transport.get_extra_info("peername") or ("", 0)
        self.client = (str(peer[0]), int(peer[1]))
        loop = asyncio.get_running_loop()
        self.last_activity = loop.time()
        self.wait, self.idle, max_queries = self.shared.limits()
        self.queries_left = max_queries
        self.idle_timer = loop.call_later(self.wait, self._check_idle)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self.eof:
            return
        self.last_activity = asyncio.get_running_loop().time()
        buffer = self.buffer
        buffer += data
        while len(buffer) >= 2:
            length = (buffer[0] << 8) | buffer[1]
            if len(buffer) < 2 + length:
                break
            message = bytes(buffer[2 : 2 + length])
            del buffer[: 2 + length]
            self.wait = self.idle
            if self.queries_left:
                self.queries_left -= 1
                if self.queries_left == 0:
                    # The last query this connection may ask: answer it, then close.
                    buffer.clear()
                    self.eof = True
            prepared = self.dispatcher.handle(message, "tcp", self.client, self.shared.memo)
            if prepared is None:
                self._close_if_done()
                continue
            if isinstance(prepared, bytes):
                transport.write(_LENGTH.pack(len(prepared)) + prepared)
                self._close_if_done()
                continue
            self.pending += 1
            task = asyncio.ensure_future(self._answer(prepared))
            self.tasks.add(task)  # a strong reference until it is done
            task.add_done_callback(self.tasks.discard)

    async def _answer(self, req: Request) -> None:
        more: AsyncGenerator[bytes, None] | None = None
        try:
            wire, more = await self.dispatcher.resolve_all(req)
            transport = self.transport
            if transport is not None and not transport.is_closing() and wire is not None:
                transport.write(_LENGTH.pack(len(wire)) + wire)
                if more is not None:
                    await self._send_more(more)
        finally:
            self.pending -= 1
            if more is not None:
                await more.aclose()
        transport = self.transport
        if transport is not None and not transport.is_closing() and self.eof and self.pending == 0:
            transport.close()

    async def _send_more(self, messages: AsyncGenerator[bytes, None]) -> None:
        """The rest of a multi-message reply, each message as it is produced, waiting
        whenever the client reads slower than we write."""
        loop = asyncio.get_running_loop()
        async for wire in messages:
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            transport.write(_LENGTH.pack(len(wire)) + wire)
            self.last_activity = loop.time()
            if self.writable is not None:
                await self.writable

    def pause_writing(self) -> None:
        if self.writable is None:
            self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self.writable = self.writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def _close_if_done(self) -> None:
        if self.eof and self.pending == 0 and self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool:
        # Half-closed by the client: finish what it asked, then close.
        self.eof = True
        return self.pending != 0

    def _check_idle(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        timeout = self.wait
        loop = asyncio.get_running_loop()
        quiet = loop.time() - self.last_activity
        if quiet >= timeout and self.pending == 0:
            transport.close()
            return
        self.idle_timer = loop.call_later(max(timeout - quiet, 0.05), self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.resume_writing()
        if self.counted:
            self.shared.active -= 1
            self.counted = False
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        self.transport = None
