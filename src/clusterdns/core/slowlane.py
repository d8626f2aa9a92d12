"""The bounded hand-off from a UDP receive thread to the event loop (the plugin chain).

Most questions are answered on the receive thread; the rest (forwarded names, the chain
before the first sync, plugins without a fast path) wait for the event loop. Under a
flood of such questions an unbounded hand-off grows a backlog that the loop works
through oldest first, so every new question waits behind seconds of questions whose
clients have already given up. The slow lane bounds that work:

- at most ``max_running`` questions are in the chain at once; the rest wait, at most
  ``max_waiting`` of them (beyond that the oldest waiting one is shed);
- a waiting question is started newest first, and one that waited longer than
  ``stale_after`` is shed rather than answered late (its client has retried or given up);
- one client address holds at most ``per_client`` places (running and waiting), so one
  pod's flood cannot take the lane from the others.

Shed questions get no reply: the client's retry is cheaper for everyone than a late
answer, and a SERVFAIL would be cached by some stubs. Each shed is counted by reason in
``clusterdns_overload_shed_total``.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from clusterdns.core.request import Request

Address = tuple[str, int]
Run = Callable[[Request, Address], Coroutine[Any, Any, None]]

MAX_RUNNING: Final = 1024
MAX_WAITING: Final = 4096
PER_CLIENT: Final = 256
STALE_AFTER: Final = 2.0


class OverloadMetrics:
    """What overload sheds, one set per process registry (the slow lane and the
    receive threads' late datagrams, core/mmsg.py)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.shed = Counter(
            "clusterdns_overload_shed",
            "Questions dropped unanswered under overload, by reason: late_datagram (waited "
            "in the socket's receive queue longer than a client waits), queue_full (the "
            "line for the plugin chain was full), queue_stale (waited too long in it), "
            "client_share (one client held too many places in it).",
            ["reason"],
            registry=registry,
        )
        self.waiting = Gauge(
            "clusterdns_slow_lane_waiting",
            "Questions waiting for the plugin chain.",
            registry=registry,
        )
        self.running = Gauge(
            "clusterdns_slow_lane_running",
            "Questions in the plugin chain now.",
            registry=registry,
        )
        self.late_datagram = self.shed.labels("late_datagram")
        self.full = self.shed.labels("queue_full")
        self.stale = self.shed.labels("queue_stale")
        self.client = self.shed.labels("client_share")


class SlowLane:
    """Questions handed from a receive thread to the event loop, bounded and fresh-first.

    :meth:`submit` may be called from any thread; everything else runs on the loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        run: Run,
        metrics: OverloadMetrics,
        *,
        max_running: int = MAX_RUNNING,
        max_waiting: int = MAX_WAITING,
        per_client: int = PER_CLIENT,
        stale_after: float = STALE_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.loop = loop
        self.run = run
        self.metrics = metrics
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.per_client = per_client
        self.stale_after = stale_after
        self.clock = clock
        # Filled by receive threads (deque appends are atomic), emptied by the loop.
        self._inbox: collections.deque[tuple[float, Request, Address]] = collections.deque()
        self._scheduled = False
        self._waiting: collections.deque[tuple[float, Request, Address]] = collections.deque()
        self._held: dict[str, int] = {}  # client host → places held (running + waiting)
        self.running = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def submit(self, req: Request, addr: Address) -> None:
        """Hand a question to the loop (from any thread). RuntimeError once the loop closed."""
        self._inbox.append((self.clock(), req, addr))
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        inbox = self._inbox
        held = self._held
        while inbox:
            item = inbox.popleft()
            host = item[2][0]
            places = held.get(host, 0)
            if places >= self.per_client:
                self.metrics.client.inc()
                continue
            held[host] = places + 1
            self._waiting.append(item)
            if len(self._waiting) > self.max_waiting:
                self._shed(self._waiting.popleft(), self.metrics.full)
        self._start()

    def _start(self) -> None:
        waiting = self._waiting
        oldest_allowed = self.clock() - self.stale_after
        while waiting and waiting[0][0] < oldest_allowed:
            self._shed(waiting.popleft(), self.metrics.stale)
        while waiting and self.running < self.max_running:
            _, req, addr = waiting.pop()  # newest first
            self.running += 1
            task = self.loop.create_task(self.run(req, addr))
            self.tasks.add(task)
            task.add_done_callback(functools.partial(self._done, host=addr[0]))
        self.metrics.waiting.set(len(waiting))
        self.metrics.running.set(self.running)

    def _shed(self, item: tuple[float, Request, Address], counter: Counter) -> None:
        counter.inc()
        self._release(item[2][0])

    def _release(self, host: str) -> None:
        places = self._held.get(host, 0) - 1
        if places > 0:
            self._held[host] = places
        else:
            self._held.pop(host, None)

    def _done(self, task: asyncio.Task[None], *, host: str) -> None:
        self.tasks.discard(task)
        self.running -= 1
        self._release(host)
        if self._waiting:
            self._start()
        else:
            self.metrics.running.set(self.running)

    async def drained(self, timeout: float) -> None:
        """Until every question handed over so far is answered or shed (a closing socket
        answers what it took in), for at most ``timeout`` seconds."""
        loop = self.loop
        deadline = loop.time() + timeout
        while (self._inbox or self._waiting or self.tasks) and loop.time() < deadline:
            if self.tasks:
                await asyncio.wait(
                    list(self.tasks),
                    timeout=max(0.0, deadline - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            else:
                await asyncio.sleep(0.005)

    @property
    def waiting(self) -> int:
        return len(self._waiting) + len(self._inbox)
