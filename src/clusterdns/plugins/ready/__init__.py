"""ready: /ready is 200 when every plugin that reports readiness is ready, else 503."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from clusterdns.core.http import split_http_address
from clusterdns.core.plugin import Plugin, SetupContext, only_once
from clusterdns.core.process import Process
from clusterdns.corefile import Directive

DEFAULT_ADDRESS = ":8181"


class Ready(Plugin):
    in_chain = False

    def __init__(self, process: Process) -> None:
        self.process = process

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        waiting = self.process.not_ready()
        if waiting is None:
            return web.Response(status=503, text="starting")
        if waiting:
            return web.Response(status=503, text=", ".join(waiting))
        return web.Response(text="OK")


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.no_block()
    args = directive.expect_args(0, 1)
    try:
        host, port = split_http_address(args[0] if args else DEFAULT_ADDRESS, default_port=8181)
    except ValueError as err:
        raise directive.error(str(err)) from None
    plugin = Ready(ctx.process)
    ctx.services.add_route(host, port, "/ready", plugin.handle)
    return plugin
