"""prometheus: /metrics with CoreDNS's metric names and labels."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from threading import get_ident

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from clusterdns.core.fast import Sink
from clusterdns.core.http import split_http_address
from clusterdns.core.metrics import DnsStats
from clusterdns.core.plugin import Plugin, SetupContext, only_once
from clusterdns.core.process import Process
from clusterdns.core.request import Request
from clusterdns.corefile import Directive
from clusterdns.wire import Query

DEFAULT_ADDRESS = "localhost:9153"
_MEMO_SINKS = 4096  # label rows × sizes seen; bounded against odd sizes


class Prometheus(Plugin):
    in_chain = False
    observes = True

    def __init__(self, process: Process) -> None:
        self.process = process
        self.metrics = process.metrics
        # Each thread's DnsStats, by thread: the fast path records without asking Metrics.
        self._stats: dict[int, DnsStats] = {}
        self._memo_sinks: dict[tuple[Hashable, tuple[int, int]], tuple[Hashable, Sink]] = {}

    def observe(self, req: Request, rcode: int, wire: bytes, duration: float, plugin: str) -> None:
        self.metrics.record(
            server=req.block.server_label,
            zone=req.zone,
            proto=req.transport,
            family=req.family,
            qtype=req.qtype,
            rcode=rcode,
            plugin=plugin,
            request_size=len(req.query.data),
            response_size=len(wire),
            duration=duration,
        )

    def observe_fast(
        self,
        server: str,
        zone: str,
        transport: str,
        client: tuple[str, int],
        query: Query,
        rcode: int,
        wire: bytes,
        duration: float,
        plugin: str,
    ) -> None:
        stats = self._stats.get(get_ident())
        if stats is None:
            stats = self._stats[get_ident()] = self.metrics.thread_stats()
        stats.record(
            (server, zone, transport, 2 if ":" in client[0] else 1, query.qtype, rcode, plugin),
            len(query.data),
            len(wire),
            duration,
        )

    def memo_sink(
        self,
        server: str,
        zone: str,
        transport: str,
        family: int,
        query: Query,
        rcode: int,
        wire: bytes,
        plugin: str,
    ) -> tuple[Hashable, Sink]:
        """Reply memo hits of this answer, counted as observe_fast would count each."""
        key = (server, zone, transport, family, query.qtype, rcode, plugin)
        sizes = (len(query.data), len(wire))
        # One sink per label row and sizes, made once: the memo shares a tally among the
        # replies that name the same sink key, so a new closure per reply is wasted work.
        made = self._memo_sinks.get((key, sizes))
        if made is None:
            if len(self._memo_sinks) >= _MEMO_SINKS:
                self._memo_sinks.clear()
            made = ("prometheus", key, sizes), self.metrics.memo_sink(key, *sizes)
            self._memo_sinks[(key, sizes)] = made
        return made

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = generate_latest(self.process.metrics_registry())
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.no_block()
    args = directive.expect_args(0, 1)
    try:
        host, port = split_http_address(args[0] if args else DEFAULT_ADDRESS, default_port=9153)
    except ValueError as err:
        raise directive.error(str(err)) from None
    ctx.settings.metrics = True
    plugin = Prometheus(ctx.process)
    ctx.services.add_route(host, port, "/metrics", plugin.handle)
    return plugin
