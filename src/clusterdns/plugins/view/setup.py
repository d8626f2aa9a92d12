"""Parse ``view NAME { expr EXPRESSION }``."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.core.plugin import Plugin, SetupContext, only_once
from clusterdns.corefile import Directive
from clusterdns.corefile.model import Token
from clusterdns.plugins.view.expression import Expression, ExpressionError
from clusterdns.plugins.view.handler import View


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    (name,) = directive.expect_args(1, 1)
    expressions: list[Expression] = []
    for item in directive.block_items():
        here = Token(item.name, item.file, item.line)
        if item.name != "expr":
            raise directive.error(f"unknown property '{item.name}'", here)
        if item.block is not None:
            raise directive.error("unexpected block after 'expr'", here)
        if not item.args:
            raise directive.error("expr needs an expression", here)
        # The words of the line make one expression, as CoreDNS joins them.
        text = " ".join(arg.text for arg in item.args)
        try:
            expressions.append(Expression(text))
        except ExpressionError as err:
            raise directive.error(f"invalid expression {text!r}: {err}", here) from None
    return View(name, expressions)
