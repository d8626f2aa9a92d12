"""Parse ``file DBFILE [ZONES...] { reload DURATION }`` and load the zones."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dns.name

from clusterdns.core.plugin import Plugin, SetupContext, parse_duration, parse_zones
from clusterdns.corefile import Directive
from clusterdns.plugins.file.handler import File, ZoneSource, file_stat
from clusterdns.plugins.file.zone import ZoneError, load_zone

log = logging.getLogger("clusterdns.plugins.file")

DEFAULT_RELOAD = 60.0


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    sources: list[ZoneSource] = []
    seen: set[str] = set()
    reload = DEFAULT_RELOAD
    for directive in directives:
        args = directive.expect_args(1)
        path = ctx.resolve_path(args[0])
        origins = parse_zones(directive, ctx.zones, directive.args[1:])
        for item in directive.block_items():
            item.no_block()
            match item.name:
                case "reload":
                    (text,) = item.expect_args(1, 1)
                    reload = parse_duration(item, text)
                case "upstream":
                    log.info(
                        "file: 'upstream' is ignored: CNAME targets outside the zone are not resolved"
                    )
                case _:
                    raise item.error(f"unknown property '{item.name}', expected reload")
        for origin in origins:
            if origin in seen:
                raise directive.error(f"zone {origin} is loaded twice in this server block")
            seen.add(origin)
            stat = file_stat(path)
            try:
                data = load_zone(path, dns.name.from_text(origin))
            except ZoneError as err:
                raise directive.error(f"zone {origin}: {err}") from None
            sources.append(ZoneSource(origin, path, data, stat, {}))
    return File(sources, reload)
