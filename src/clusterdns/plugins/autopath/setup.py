"""Parse ``autopath [ZONE...] RESOLV-CONF`` and ``autopath [ZONE...] @kubernetes { ... }``."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.core.plugin import Plugin, SetupContext, only_once, parse_zones, resolve_path
from clusterdns.corefile import Directive
from clusterdns.plugins.autopath.config import AutoPathConfig
from clusterdns.plugins.autopath.handler import AutoPath
from clusterdns.plugins.autopath.metrics import metrics_for
from clusterdns.plugins.autopath.searchpath import host_search, read_search

# Where ``@kubernetes`` finds the server's own search list (tests point it elsewhere).
HOST_RESOLV_CONF = "/etc/resolv.conf"
# Plugins that can give autopath a search path per client.
AUTOPATHERS = ("kubernetes",)


def parse_config(
    directive: Directive, ctx_zones: Sequence[str], config_path: str | None
) -> AutoPathConfig:
    args = directive.arg_texts()
    if not args:
        raise directive.error("no resolv-conf specified")
    resolv = args[-1]
    zones = parse_zones(directive, ctx_zones, directive.args[:-1])
    compatible = False
    for item in directive.block_items():
        item.no_block()
        if item.name == "coredns_compatible":
            item.expect_args(0, 0)
            compatible = True
        else:
            raise item.error(f"unknown property '{item.name}'")
    if resolv.startswith("@"):
        name = resolv[1:]
        if name not in AUTOPATHERS:
            raise directive.error(f"{name} does not implement the AutoPather interface")
        return AutoPathConfig(
            zones=zones,
            plugin=name,
            coredns_compatible=compatible,
            host_search=tuple(host_search(HOST_RESOLV_CONF)),
        )
    if compatible:
        raise directive.error("coredns_compatible only applies to @kubernetes")
    path = resolve_path(resolv, config_path)
    try:
        search = read_search(path)
    except OSError as err:
        raise directive.error(f"failed to parse {resolv!r}: {err}") from None
    if not search:
        raise directive.error(f"{resolv} has no search list")
    return AutoPathConfig(zones=zones, search=tuple(search))


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    config = parse_config(directive, ctx.zones, ctx.config_path)
    return AutoPath(config, ctx, metrics_for(ctx.process.metrics.registry), directive=directive)
