"""loop: detect a forwarding loop back to ourselves at startup and stop the process."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
from collections.abc import Callable, Sequence

import dns.message
import dns.rdatatype

from clusterdns.core.plugin import Plugin, PluginError, SetupContext, only_once
from clusterdns.core.process import Process
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.corefile import Directive
from clusterdns.upstream import Upstream, UpstreamAddress, UpstreamError

log = logging.getLogger("clusterdns.loop")

HINFO = dns.rdatatype.HINFO
# CoreDNS: probe for 30 s at most, once a second while the probe itself fails.
PROBE_WINDOW = 30.0
PROBE_INTERVAL = 1.0
PROBE_TIMEOUT = 2.0
START_DELAY = 0.1
# Seeing our own probe more than this many times means it went round in a circle.
MAX_SEEN = 2


def _exit(status: int) -> None:
    """CoreDNS's log.Fatal: flush what was logged and leave at once."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _server_port(process: Process, host: str, port: int) -> int | None:
    """The port the server really bound for (host, port) — needed when configured as 0."""
    try:
        return process.bound_port(host, port)
    except KeyError:
        return None


class Loop(Plugin):
    def __init__(self, ctx: SetupContext) -> None:
        self.ctx = ctx
        self.zone = ctx.zones[0]
        self.qname = f"{secrets.randbits(63)}.{secrets.randbits(63)}.{self.zone}".replace("..", ".")
        self.seen = 0
        self.disabled = False
        self.exit: Callable[[int], None] = _exit
        self.address: tuple[str, int] | None = None  # where the probe goes; found at start
        self.start_delay = START_DELAY
        self.probe_window = PROBE_WINDOW
        self._prober: asyncio.Task[None] | None = None

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        if self.disabled or req.qtype != HINFO or req.name != self.qname:
            return await next_handler(req)
        self.seen += 1
        if self.seen > MAX_SEEN:
            port = self.address[1] if self.address is not None else self.ctx.port
            log.error(
                'loop: loop (%s:%d -> :%d) detected for zone "%s", see '
                'https://coredns.io/plugins/loop#troubleshooting. query: "HINFO %s"',
                req.client[0], req.client[1], port, self.zone, self.qname,
            )  # fmt: skip
            self.disabled = True
            self.exit(1)
            # Only reached when exit is replaced (tests): stop the query going round.
            raise PluginError("loop", "forwarding loop detected")
        return await next_handler(req)

    async def start(self) -> None:
        self._prober = asyncio.ensure_future(self._probe())

    async def stop(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            try:
                await self._prober
            except (asyncio.CancelledError, Exception):
                pass

    def _target(self) -> tuple[str, int] | None:
        hosts = self.ctx.settings.bind_hosts
        host = hosts[0] if hosts else ""
        port = self.ctx.port
        if port == 0:
            found = _server_port(self.ctx.process, host, port)
            if found is None:
                return None
            port = found
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return host, port

    async def _probe(self) -> None:
        """Send the HINFO probe to our own listener until one exchange completes."""
        await asyncio.sleep(self.start_delay)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.probe_window
        query = dns.message.make_query(self.qname, HINFO, use_edns=False).to_wire()
        upstream: Upstream | None = None
        try:
            while not self.disabled and loop.time() < give_up:
                if upstream is None:
                    self.address = self._target()
                    if self.address is None:
                        await asyncio.sleep(PROBE_INTERVAL)
                        continue
                    upstream = Upstream(UpstreamAddress(*self.address))
                try:
                    await upstream.exchange(query, deadline=loop.time() + PROBE_TIMEOUT)
                except UpstreamError:
                    self.seen = 0
                    await asyncio.sleep(PROBE_INTERVAL)
                    continue
                break  # an answer came back: no loop
        finally:
            self.disabled = True
            if upstream is not None:
                await upstream.close()


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.expect_args(0, 0)
    directive.no_block()
    return Loop(ctx)
