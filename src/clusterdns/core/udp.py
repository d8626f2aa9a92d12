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
import logging
import socket
import threading
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

    def connection_lost(self, exc: Exception | None) -> None:
        self.memo_stats.retire(self.memo)


def _lane(
    dispatcher: Dispatcher,
    loop: asyncio.AbstractEventLoop,
    answer: Callable[[Request, tuple[str, int]], Coroutine[Any, Any, None]],
) -> SlowLane:
    registry = dispatcher.server.process.metrics.registry
    return SlowLane(loop, answer, once_per_registry(registry, OverloadMetrics))


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

        while self._running:
            try:
                _, hits, seconds = batch.serve_batch(handle, current_memo)
            except OSError:
                if not self._running:
                    return
                continue
            except Exception:
                # A bug must not take the socket's only reader down with it.
                log.exception("core: udp receive loop failed; going on")
                continue
            if hits:
                memo.hits += hits
                memo.hit_seconds += seconds  # the batch's time, charged to its hits
            if batch.late:
                late_datagrams.inc(batch.late)
                batch.late = 0
            if batch.over_share:
                over_share.inc(batch.over_share)
                batch.over_share = 0

    def _run_single(self, memo: ReplyMemo) -> None:
        recvfrom = self.sock.recvfrom
        sendto = self.sock.sendto
        dispatch = self.dispatcher.handle
        handoff = self.lane.submit
        while self._running:
            try:
                data, addr = recvfrom(65535)
            except TimeoutError:
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
        self._running = False
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
        await asyncio.to_thread(self.thread.join, 2.0)
        self.sock.close()
