"""Parse ``header { query|response set|clear FLAGS... }``."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.core.plugin import Plugin, SetupContext, only_once
from clusterdns.corefile import Directive
from clusterdns.corefile.model import Token
from clusterdns.plugins.header.handler import FLAGS, Header, QueryHeader, Rule


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.expect_args(0, 0)
    query_rules: list[Rule] = []
    response_rules: list[Rule] = []
    for item in directive.block_items():
        here = Token(item.name, item.file, item.line)
        if item.block is not None:
            raise directive.error("unexpected block in a rule", here)
        selector = item.name.lower()
        if selector not in ("query", "response"):
            raise directive.error(
                f"invalid selector {item.name!r}: should be 'query' or 'response'", here
            )
        if not item.args:
            raise directive.error("no flag action provided (set or clear)", here)
        action, *flags = item.args
        if action.text.lower() not in ("set", "clear"):
            raise directive.error(
                f"unknown flag action {action.text!r}: should be 'set' or 'clear'", action
            )
        if not flags:
            raise directive.error("at least one flag (aa, ra, rd) should be given", here)
        rules = query_rules if selector == "query" else response_rules
        for flag in flags:
            bit = FLAGS.get(flag.text.lower())
            if bit is None:
                raise directive.error(
                    f"unknown or unsupported flag {flag.text!r} (aa, ra or rd)", flag
                )
            rules.append((bit, action.text.lower() == "set"))
    if not query_rules and not response_rules:
        raise directive.error("expected at least one 'query' or 'response' rule in a block")
    kind = QueryHeader if query_rules else Header
    return kind(query_rules, response_rules)
