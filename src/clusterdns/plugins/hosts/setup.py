"""Parse ``hosts [FILE [ZONES...]] { ... }``."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from clusterdns.core.fallthrough import Fallthrough
from clusterdns.core.plugin import (
    Plugin,
    SetupContext,
    only_once,
    parse_duration,
    parse_int,
    parse_zones,
)
from clusterdns.corefile import Directive
from clusterdns.plugins.hosts.handler import Hosts, HostsOptions

log = logging.getLogger("clusterdns.plugins.hosts")

DEFAULT_PATH = "/etc/hosts"
OPTIONS = ("ttl", "no_reverse", "reload", "fallthrough")


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    args = directive.arg_texts()
    path = ctx.resolve_path(args[0] if args else DEFAULT_PATH)
    zones = parse_zones(directive, ctx.zones, directive.args[1:])
    if os.path.isdir(path):
        log.warning("hosts: %s is a directory", path)
    elif not os.path.exists(path):
        log.warning("hosts: file does not exist: %s", path)
    inline: list[str] = []
    ttl, reverse, reload, fallthrough = 3600, True, 5.0, Fallthrough()
    for item in directive.block_items():
        item.no_block()
        match item.name:
            case "ttl":
                (text,) = item.expect_args(1, 1)
                ttl = parse_int(item, text, what="ttl", minimum=1, maximum=65535)
            case "no_reverse":
                item.expect_args(0, 0)
                reverse = False
            case "reload":
                (text,) = item.expect_args(1, 1)
                reload = parse_duration(item, text)
            case "fallthrough":
                fallthrough = Fallthrough.parse(item)
            case _:
                # Anything else is a hosts line written inline.
                inline.append(" ".join([item.name, *item.arg_texts()]))
    options = HostsOptions(
        path=path,
        zones=zones,
        inline=tuple(inline),
        ttl=ttl,
        reverse=reverse,
        reload=reload,
        fallthrough=fallthrough,
    )
    return Hosts(options)
