"""UDP listeners: a receive thread per socket (batched or one datagram at a time), or
the event loop's datagram protocol. All of them call Dispatcher.handle.

Who reads and who writes: a receive thread runs the whole fast path (parse, zone match,
the plugins' answer_fast, its own reply memo) and only reads plugin data; the event loop
applies cluster changes and answers what the chain must. Plugins make every update a
single assignment or a dict operation (atomic under the GIL) and move ``generation``
after it, so a thread sees the data before or after a change and the memo's next check
drops replies built across one. Each memo is written by its own thread only."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
import sys
import termios
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

from clusterdns.core import mmsg
from clusterdns.core.dispatch import Dispatcher
from clusterdns.core.memo import DEFAULT_SIZE as DEFAULT_MEMO_SIZE
from clusterdns.core.memo import Entry, ReplyMemo
from clusterdns.core.metrics import once_per_registry
from clusterdns.core.request import Request
from clusterdns.core.slowlane import OverloadMetrics, SlowLane

log = logging.getLogger("clusterdns.server")

# How long a closing socket goes on answering what is already queued in it.
DRAIN_LIMIT = 2.0
# A retired socket gets no new datagrams: once its queue stays empty this long, it is
# drained (the margin covers a datagram the kernel routed to it just before the retire).
DRAIN_QUIET = 0.05


def retire_socket(sock: socket.socket) -> bool:
    """Stop new datagrams from reaching ``sock`` and keep those already queued in it.

    Connecting a UDP socket to its own address does both on Linux: a connected socket
    only matches datagrams from its peer, and a SO_REUSEPORT group with a connected member
    picks among the others by score (Linux 5.2+), so every new query goes to the sockets
    that stay: a new process started beside this one with --reuse-port. Without such a
    peer, new queries get ICMP port unreachable (an immediate error at the client) instead
    of waiting in a queue about to be dropped. Closing right away instead throws away
    what the queue holds: the queries lost in a reuse-port restart (issue 14: 2 of 16,000).
    """
    try:
        host, port = sock.getsockname()[:2]
        if host == "0.0.0.0":
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        sock.connect((host, port))
    except OSError as err:
        log.debug("core: could not retire udp socket: %s", err)
        return False
    return True


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, dispatcher: Dispatcher, memo_size: int = DEFAULT_MEMO_SIZE) -> None:
        self.dispatcher = dispatcher
        self.transport: asyncio.DatagramTransport | None = None
        self.memo_stats = dispatcher.server.process.metrics.memo
        self.memo = ReplyMemo(memo_size, self.memo_stats)
        self.lane = _lane(dispatcher, asyncio.get_running_loop(), self._answer)

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        return self.lane.tasks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        prepared = self.dispatcher.handle(data, "udp", (addr[0], addr[1]), self.memo)
        if prepared is None:
            return
        if isinstance(prepared, bytes):
            assert self.transport is not None
            self.transport.sendto(prepared, addr)
            return
        self.lane.submit(prepared, (addr[0], addr[1]))

    async def _answer(self, req: Request, addr: tuple[str, int]) -> None:
        wire = await self.dispatcher.resolve(req)
        if wire is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("core: udp error: %s", exc)

    async def retire(self) -> None:
        """Retire the socket (see retire_socket), let the loop read and answer what is
        queued in it, and finish the queries handed to the chain."""
        transport = self.transport
        if transport is None:
            return
        raw = transport.get_extra_info("socket")
        if raw is None:
            return
        fd = raw.fileno()
        # The transport's socket object does not offer connect(): a duplicate of its
        # descriptor reaches the same socket.
        with socket.socket(fileno=os.dup(fd)) as alias:
            if not retire_socket(alias):
                return
        deadline = time.monotonic() + DRAIN_LIMIT
        while time.monotonic() < deadline and _queued_bytes(fd):
            await asyncio.sleep(0.005)
        await self.lane.drained(max(0.0, deadline - time.monotonic()))

    def connection_lost(self, exc: Exception | None) -> None:
        self.memo_stats.retire(self.memo)


def _lane(
    dispatcher: Dispatcher,
    loop: asyncio.AbstractEventLoop,
    answer: Callable[[Request, tuple[str, int]], Coroutine[Any, Any, None]],
) -> SlowLane:
    registry = dispatcher.server.process.metrics.registry
    return SlowLane(loop, answer, once_per_registry(registry, OverloadMetrics))


def _queued_bytes(fd: int) -> int:
    """The size of the next datagram waiting in the socket's queue (0 when empty)."""
    try:
        buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int.from_bytes(buf, sys.byteorder)


class UdpThread:
    """A blocking receive loop in its own thread for one UDP socket.

    Fast-path answers never touch the event loop; queries that need the
    chain are handed to the event loop through a bounded SlowLane (core/slowlane.py)
    and answered from there.
    The dispatcher's data (mux, answer tables) is only read here, and every
    read is a single dict lookup, atomic under the GIL.
    """

    def __init__(
        self,
        sock: socket.socket,
        dispatcher: Dispatcher,
        loop: asyncio.AbstractEventLoop,
        *,
        batched: bool = True,
        memo_size: int = DEFAULT_MEMO_SIZE,
    ) -> None:
        self.sock = sock
        self.batched = batched
        self.memo_size = memo_size
        self.dispatcher = dispatcher
        self.loop = loop
        self.lane = _lane(dispatcher, loop, self._answer)
        self._running = True
        sock.setblocking(True)
        sock.settimeout(0.25)
        self.thread = threading.Thread(
            target=self._run, name=f"udp-{sock.getsockname()[:2]}", daemon=True
        )

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        return self.lane.tasks

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        stats = self.dispatcher.server.process.metrics.memo
        memo = ReplyMemo(self.memo_size, stats)
        try:
            if self.batched and mmsg.available():
                self._run_batched(memo)
            else:
                self._run_single(memo)
        finally:
            stats.retire(memo)

    def _run_batched(self, memo: ReplyMemo) -> None:
        batch = mmsg.BatchSocket(self.sock)
        memo.batch_timed = True  # serve_once() charges each batch's time to the memo
        dispatcher = self.dispatcher
        # serve_batch looks each query up in the memo itself (checked once per batch by
        # current_memo()), so a miss goes straight to the rest of Dispatcher.handle.
        dispatch = dispatcher.prepare
        handoff = self.lane.submit
        late_datagrams = self.lane.metrics.late_datagram
        over_share = self.lane.metrics.client

        def handle(data: bytes, client: tuple[str, int]) -> bytes | None:
            try:
                prepared = dispatch(data, "udp", client, memo)
            except Exception:
                log.exception("core: udp fast path failed")
                return None
            if prepared is None or isinstance(prepared, bytes):
                return prepared
            try:
                handoff(prepared, client)
            except RuntimeError:
                pass  # the loop is closed: we are shutting down
            return None

        def current_memo() -> dict[bytes, Entry]:
            mux = dispatcher.mux
            memo.check(mux, mux.versioned)
            return memo.entries

        counted = 0  # memo.counted when the batch started

        def account(hits: int, seconds: float) -> None:
            if hits or memo.counted != counted:
                # The batch's time, shared by its memo hits and the first sights counted
                # through tallies (core/memo.py flush()).
                memo.hits += hits
                memo.hit_seconds += seconds

        def serve_once() -> int:
            nonlocal counted
            counted = memo.counted
            try:
                received = batch.serve_batch(handle, current_memo, account)
            except OSError:
                return -1
            except Exception:
                # A bug must not take the socket's only reader down with it.
                log.exception("core: udp receive loop failed; going on")
                return -1
            if batch.late:
                late_datagrams.inc(batch.late)
                batch.late = 0
            if batch.over_share:
                over_share.inc(batch.over_share)
                batch.over_share = 0
            return received

        while self._running:
            serve_once()
        # Retired (no new datagrams): answer what the queue still holds, then stop.
        batch.set_timeout(DRAIN_QUIET)
        deadline = time.monotonic() + DRAIN_LIMIT
        while time.monotonic() < deadline and serve_once() > 0:
            pass

    def _run_single(self, memo: ReplyMemo) -> None:
        recvfrom = self.sock.recvfrom
        sendto = self.sock.sendto
        dispatch = self.dispatcher.handle
        handoff = self.lane.submit
        deadline = 0.0
        while True:
            if not self._running and not deadline:
                # Retired (no new datagrams): answer what the queue still holds, then stop.
                deadline = time.monotonic() + DRAIN_LIMIT
                self.sock.settimeout(DRAIN_QUIET)
            if deadline and time.monotonic() > deadline:
                return
            try:
                data, addr = recvfrom(65535)
            except TimeoutError:
                if deadline:
                    return
                continue
            except OSError:
                if not self._running:
                    return
                continue
            try:
                prepared = dispatch(data, "udp", (addr[0], addr[1]), memo)
            except Exception:
                log.exception("core: udp fast path failed")
                continue
            if prepared is None:
                continue
            if isinstance(prepared, bytes):
                try:
                    sendto(prepared, addr)
                except OSError:
                    pass
                continue
            try:
                handoff(prepared, (addr[0], addr[1]))
            except RuntimeError:
                return  # the loop is closed: we are shutting down

    async def _answer(self, req: Request, addr: tuple[str, int]) -> None:
        wire = await self.dispatcher.resolve(req)
        if wire is None:
            return
        try:
            self.sock.sendto(wire, addr)
        except OSError:
            pass

    def close(self) -> None:
        """Retire the socket and let the thread answer what is queued, then stop."""
        retired = retire_socket(self.sock)
        self._running = False
        if retired:
            # Connected to its own address, the socket takes datagrams from itself only:
            # an empty one wakes the blocked receive now, not at its 0.25 s timeout (every
            # in-process server's shutdown waited that out), and the header gate drops it.
            try:
                self.sock.send(b"")
            except OSError:
                pass
            return
        # Wake the blocked recvfrom now rather than at its timeout.
        try:
            host, port = self.sock.getsockname()[:2]
            with socket.socket(self.sock.family, socket.SOCK_DGRAM) as waker:
                waker.sendto(
                    b"",
                    (
                        host
                        if host not in ("0.0.0.0", "::")
                        else ("127.0.0.1" if self.sock.family == socket.AF_INET else "::1"),
                        port,
                    ),
                )
        except OSError:
            pass

    async def wait_closed(self) -> None:
        await asyncio.to_thread(self.thread.join, DRAIN_LIMIT + 1.0)
        # Queries handed to the chain are answered on this socket: let them finish first.
        await self.lane.drained(DRAIN_LIMIT)
        self.sock.close()
