"""Compact, comparable views of a parsed Corefile for table-driven tests."""

from __future__ import annotations

from typing import Any

from clusterdns.corefile import Corefile, Directive


def directive_shape(d: Directive) -> Any:
    """(name, args) or (name, args, [nested shapes]) when the directive has a block."""
    if d.block is None:
        return (d.name, d.arg_texts())
    return (d.name, d.arg_texts(), [directive_shape(x) for x in d.block])


def corefile_shape(c: Corefile) -> list[Any]:
    """One (zones, directives) pair per server block; zones as "scheme://zone:port"."""
    return [
        (
            [f"{a.scheme}://{a.zone}:{a.port}" for a in b.addresses],
            [directive_shape(d) for d in b.directives],
        )
        for b in c.blocks
    ]
