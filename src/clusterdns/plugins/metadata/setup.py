"""Parse ``metadata [ZONES...]``."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.core.plugin import Plugin, SetupContext, only_once, parse_zones
from clusterdns.corefile import Directive
from clusterdns.plugins.metadata.handler import Metadata


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.no_block()
    return Metadata(parse_zones(directive, ctx.zones))
