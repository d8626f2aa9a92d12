"""Idle TCP/TLS connections to one upstream, kept for reuse and closed after `expire` idle
(and, with `max_age`, once they are that old however busy they are)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class StreamConn:
    """One open TCP or TLS connection, when it was opened and when it was last handed back
    (loop time)."""

    __slots__ = ("created", "reader", "used", "writer")

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, created: float = 0.0
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.created = created
        self.used = 0.0

    def is_usable(self) -> bool:
        """False once the peer closed its side (EOF seen) or we started closing."""
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()

    async def aclose(self, timeout: float = 1.0) -> None:
        self.writer.close()
        # A TLS close_notify or an already reset socket must not hold up shutdown.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), timeout)


class ConnectionPool:
    """A LIFO stack of idle connections, all used exclusively by one query at a time.

    LIFO (as CoreDNS's connManager did): the most recently used connection is the least likely
    to have been closed by the server's idle timeout, and surplus connections after a burst sit
    at the bottom and expire. Connections are ordered by `used`, oldest first.
    """

    def __init__(self, *, expire: float, max_idle: int = 0, max_age: float = 0.0) -> None:
        self.expire = expire
        self.max_idle = max_idle
        # CoreDNS's forward max_age: a connection older than this is not reused, so a busy
        # one cannot pin the upstream (e.g. one of several behind a load balancer) forever.
        # 0: no limit.
        self.max_age = max_age
        self._idle: deque[StreamConn] = deque()
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._idle)

    def take(self, now: float) -> StreamConn | None:
        """The most recently used live connection, or None. Expired or dead ones are closed."""
        while self._idle:
            conn = self._idle.pop()
            if now - conn.used < self.expire and not self._too_old(conn, now) and conn.is_usable():
                return conn
            conn.close()
        return None

    def _too_old(self, conn: StreamConn, now: float) -> bool:
        return self.max_age > 0 and now - conn.created >= self.max_age

    def put(self, conn: StreamConn, now: float) -> None:
        """Hand a connection back after a clean exchange."""
        if self._closed or self.expire <= 0 or self._too_old(conn, now) or not conn.is_usable():
            conn.close()
            return
        conn.used = now
        self._idle.append(conn)
        if self.max_idle > 0:
            while len(self._idle) > self.max_idle:
                self._idle.popleft().close()
        if self._sweep_handle is None:
            self._schedule_sweep()

    def _schedule_sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweep_handle = loop.call_at(self._idle[0].used + self.expire, self._sweep)

    def _sweep(self) -> None:
        self._sweep_handle = None
        now = asyncio.get_running_loop().time()
        while self._idle and now - self._idle[0].used >= self.expire:
            self._idle.popleft().close()
        if self._idle:
            self._schedule_sweep()

    async def close(self) -> None:
        """Close every idle connection; connections handed back later are closed, not kept."""
        self._closed = True
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        conns = list(self._idle)
        self._idle.clear()
        await asyncio.gather(*(c.aclose() for c in conns))
