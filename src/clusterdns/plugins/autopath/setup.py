"""Parse ``autopath [ZONE...] RESOLV-CONF`` and ``autopath [ZONE...] @kubernetes { ... }``."""

from __future__ import annotations

import os
from collections.abc import Sequence

import dns.name

from clusterdns.core.plugin import Plugin, SetupContext, only_once
from clusterdns.corefile import Directive
from clusterdns.plugins.autopath.config import AutoPathConfig
from clusterdns.plugins.autopath.handler import AutoPath
from clusterdns.plugins.autopath.metrics import metrics_for
from clusterdns.plugins.autopath.searchpath import host_search, read_search

# Where ``@kubernetes`` finds the server's own search list (tests point it elsewhere).
HOST_RESOLV_CONF = "/etc/resolv.conf"
# Plugins that can give autopath a search path per client.
AUTOPATHERS = ("kubernetes",)


def _zone(directive: Directive, text: str) -> str:
    try:
        return dns.name.from_text(text.lower()).to_text()
    except Exception:
        raise directive.error(f"invalid zone {text!r}") from None


def _path(path: str, config_path: str | None) -> str:
    """As CoreDNS without ``root``: relative to the working directory, else the Corefile's."""
    if os.path.isabs(path) or os.path.exists(path) or config_path is None:
        return path
    beside = os.path.join(os.path.dirname(os.path.abspath(config_path)), path)
    return beside if os.path.exists(beside) else path


def parse_config(
    directive: Directive, ctx_zones: Sequence[str], config_path: str | None
) -> AutoPathConfig:
    args = directive.arg_texts()
    if not args:
        raise directive.error("no resolv-conf specified")
    resolv = args[-1]
    zones = tuple(_zone(directive, z) for z in args[:-1]) or tuple(ctx_zones)
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
    path = _path(resolv, config_path)
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
