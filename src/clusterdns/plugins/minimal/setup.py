"""Parse ``minimal``."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.core.plugin import Plugin, SetupContext, only_once
from clusterdns.corefile import Directive
from clusterdns.plugins.minimal.handler import Minimal


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.expect_args(0, 0)
    directive.no_block()
    return Minimal()
