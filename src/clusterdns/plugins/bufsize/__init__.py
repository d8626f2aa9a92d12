"""bufsize: cap the UDP payload size the server uses and advertises."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.core.plugin import Plugin, SetupContext, only_once, parse_int
from clusterdns.corefile import Directive


class Bufsize(Plugin):
    in_chain = False


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.no_block()
    args = directive.expect_args(0, 1)
    size = (
        parse_int(directive, args[0], what="buffer size", minimum=512, maximum=4096)
        if args
        else 1232
    )
    ctx.settings.max_udp_size = size
    return Bufsize()
