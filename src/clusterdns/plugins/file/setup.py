"""Parse ``file DBFILE [ZONES...] { reload DURATION }`` and load the zones."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import dns.name

from clusterdns.core.plugin import Plugin, SetupContext, parse_duration
from clusterdns.corefile import Directive
from clusterdns.plugins.file.handler import File, ZoneSource, file_stat
from clusterdns.plugins.file.zone import ZoneError, load_zone

log = logging.getLogger("clusterdns.plugins.file")

DEFAULT_RELOAD = 60.0


def resolve_path(path: str, config_path: str | None) -> str:
    """Relative paths are taken from the working directory (CoreDNS without ``root``),
    else from the Corefile's directory when the file is found there."""
    if os.path.isabs(path) or os.path.exists(path) or config_path is None:
        return path
    beside = os.path.join(os.path.dirname(os.path.abspath(config_path)), path)
    return beside if os.path.exists(beside) else path


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    sources: list[ZoneSource] = []
    seen: set[str] = set()
    reload = DEFAULT_RELOAD
    for directive in directives:
        args = directive.expect_args(1)
        path = resolve_path(args[0], ctx.config_path)
        origins: list[str] = []
        for index, text in enumerate(args[1:], start=1):
            try:
                origins.append(dns.name.from_text(text.lower()).to_text())
            except Exception:
                raise directive.error(f"invalid zone {text!r}", directive.args[index]) from None
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
        for origin in origins or list(ctx.zones):
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
