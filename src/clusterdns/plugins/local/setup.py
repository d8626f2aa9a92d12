"""Parse ``local [{ localhost_prefix on|off }]``."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.core.plugin import Plugin, SetupContext, only_once
from clusterdns.corefile import Directive
from clusterdns.corefile.model import Token
from clusterdns.plugins.local.handler import Local, metrics_for


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.expect_args(0, 0)
    legacy_prefix = True
    for item in directive.block_items():
        item.no_block()
        if item.name != "localhost_prefix":
            here = Token(item.name, item.file, item.line)
            raise directive.error(f"unknown property '{item.name}'", here)
        (value,) = item.expect_args(1, 1)
        if value not in ("on", "off"):
            raise directive.error(
                f"localhost_prefix expects 'on' or 'off', got {value!r}", item.args[0]
            )
        legacy_prefix = value == "on"
    return Local(legacy_prefix=legacy_prefix, metrics=metrics_for(ctx.process.metrics.registry))
