"""ready: /ready is 200 when every plugin that reports readiness is ready, else 503.

``monitor until-ready`` (CoreDNS's default): a plugin that has once been seen ready is not
asked again, so a kubernetes plugin that loses the API after its first sync keeps the pod
ready. ``monitor continuously``: every request asks every plugin.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from aiohttp import web

from clusterdns.core.http import split_http_address
from clusterdns.core.plugin import Plugin, SetupContext, only_once
from clusterdns.core.process import Process
from clusterdns.corefile import Directive

DEFAULT_ADDRESS = ":8181"


class Monitor(enum.StrEnum):
    UNTIL_READY = "until-ready"
    CONTINUOUSLY = "continuously"


class Ready(Plugin):
    in_chain = False

    def __init__(self, process: Process, monitor: Monitor = Monitor.UNTIL_READY) -> None:
        self.process = process
        self.monitor = monitor
        # until-ready: plugins (by name) seen ready by an earlier request.
        self.confirmed: set[str] = set()

    def waiting(self) -> list[str] | None:
        """The plugins /ready waits for; None while the server starts."""
        waiting = self.process.not_ready()
        if waiting is None or self.monitor is Monitor.CONTINUOUSLY:
            return waiting
        instance = self.process.current()
        if instance is not None:
            reporting = {p.name for p in instance.plugins() if p.ready() is not None}
            self.confirmed |= reporting - set(waiting)
        return [name for name in waiting if name not in self.confirmed]

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        waiting = self.waiting()
        if waiting is None:
            return web.Response(status=503, text="starting")
        if waiting:
            return web.Response(status=503, text=", ".join(waiting))
        return web.Response(text="OK")


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    args = directive.expect_args(0, 1)
    monitor = Monitor.UNTIL_READY
    for item in directive.block_items():
        if item.name != "monitor":
            raise item.error(f"unknown property '{item.name}'")
        (text,) = item.expect_args(1, 1)
        try:
            monitor = Monitor(text)
        except ValueError:
            raise item.error(f"monitor type '{text}' not supported") from None
    try:
        host, port = split_http_address(args[0] if args else DEFAULT_ADDRESS, default_port=8181)
    except ValueError as err:
        raise directive.error(str(err)) from None
    plugin = Ready(ctx.process, monitor)
    ctx.services.add_route(host, port, "/ready", plugin.handle)
    return plugin
