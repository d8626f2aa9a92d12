"""rewrite: rewrite the question (name, type, class, EDNS0 options) before the rest of
the chain sees it, and restore what the client asked in the reply."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.core.plugin import Plugin, SetupContext
from clusterdns.corefile import Directive
from clusterdns.plugins.rewrite.handler import Rewrite
from clusterdns.plugins.rewrite.setup import parse_rules

__all__ = ["Rewrite", "setup"]


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    return Rewrite(parse_rules(directives))
