"""reload: poll the Corefile (and its imports) and swap in a changed one."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.core.plugin import Plugin, SetupContext, only_once, parse_duration
from clusterdns.corefile import Directive


class Reload(Plugin):
    in_chain = False


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.no_block()
    args = directive.expect_args(0, 2)
    interval = parse_duration(directive, args[0]) if args else 30.0
    jitter = parse_duration(directive, args[1]) if len(args) > 1 else interval / 2
    if interval < 2.0:
        raise directive.error("interval value must be greater or equal to 2s")
    if jitter < 1.0 and len(args) > 1:
        raise directive.error("jitter value must be greater or equal to 1s")
    if jitter > interval / 2:
        raise directive.error("jitter value must be smaller than half of the interval")
    ctx.services.reload_interval = interval
    ctx.services.reload_jitter = jitter
    return Reload()
