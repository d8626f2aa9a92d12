"""Parse ``pprof [ADDRESS] { block [RATE] }`` and register the HTTP routes."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.core.http import split_http_address
from clusterdns.core.plugin import Plugin, SetupContext, only_once, parse_int
from clusterdns.corefile import Directive
from clusterdns.corefile.model import Token
from clusterdns.plugins.pprof.handler import PREFIX, Pprof

DEFAULT_ADDRESS = "localhost:6053"


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    args = directive.expect_args(0, 1)
    try:
        host, port = split_http_address(args[0] if args else DEFAULT_ADDRESS, default_port=6053)
    except ValueError as err:
        raise directive.error(str(err)) from None
    for item in directive.block_items():
        here = Token(item.name, item.file, item.line)
        if item.name != "block":
            raise directive.error(f"unknown property '{item.name}'", here)
        if item.block is not None:
            raise directive.error("unexpected block after 'block'", here)
        (rate,) = item.expect_args(0, 1) or ["1"]
        # Go's block profile has no Python counterpart: checked as CoreDNS does, then unused.
        parse_int(item, rate, what="block rate", minimum=1)
    plugin = Pprof()
    routes = {
        "": plugin.handle_index,
        "/": plugin.handle_index,
        "/goroutine": plugin.handle_stacks,
        "/threads": plugin.handle_stacks,
        "/heap": plugin.handle_heap,
        "/allocs": plugin.handle_heap,
        "/gc": plugin.handle_gc,
    }
    for path, handler in routes.items():
        ctx.services.add_route(host, port, PREFIX + path, handler)
    return plugin
