"""health: /health answers 200 while the process runs; lameduck delays exit."""

from __future__ import annotations

import time
from collections.abc import Sequence

from aiohttp import web

from clusterdns.core.http import split_http_address
from clusterdns.core.plugin import Plugin, SetupContext, only_once, parse_duration
from clusterdns.corefile import Directive

DEFAULT_ADDRESS = ":8080"


class Health(Plugin):
    in_chain = False

    def __init__(self, ctx: SetupContext) -> None:
        self.metrics = ctx.process.metrics

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        # CoreDNS keeps answering 200 during lameduck: the pod leaves the
        # Service through readiness and termination, not through liveness.
        response = web.Response(text="OK")
        self.metrics.health_duration.observe(time.perf_counter() - started)
        return response


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    args = directive.expect_args(0, 1)
    try:
        host, port = split_http_address(args[0] if args else DEFAULT_ADDRESS, default_port=8080)
    except ValueError as err:
        raise directive.error(str(err)) from None
    plugin = Health(ctx)
    for item in directive.block_items():
        if item.name != "lameduck":
            raise item.error(f"unknown property '{item.name}', expected lameduck")
        (duration,) = item.expect_args(1, 1)
        ctx.services.lameduck = max(ctx.services.lameduck, parse_duration(item, duration))
    ctx.services.add_route(host, port, "/health", plugin.handle)
    return plugin
