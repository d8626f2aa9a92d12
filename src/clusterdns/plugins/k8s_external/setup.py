"""Parse ``k8s_external [ZONE...] { apex APEX; ttl TTL; headless; fallthrough [ZONE...] }``."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.core.fallthrough import Fallthrough
from clusterdns.core.plugin import Plugin, SetupContext, only_once, parse_int, parse_zones
from clusterdns.corefile import Directive
from clusterdns.plugins.k8s_external.config import DEFAULT_APEX, DEFAULT_TTL, ExternalConfig
from clusterdns.plugins.k8s_external.handler import K8sExternal


def parse_config(directive: Directive, block_zones: Sequence[str]) -> ExternalConfig:
    """The options of one ``k8s_external`` directive; errors name file:line."""
    zones = parse_zones(directive, block_zones)
    apex, ttl, headless, fallthrough = DEFAULT_APEX, DEFAULT_TTL, False, Fallthrough()
    for item in directive.block_items():
        item.no_block()
        match item.name:
            case "ttl":
                text = item.expect_args(1)[0]
                ttl = parse_int(item, text, what="ttl", minimum=0, maximum=3600)
            case "apex":
                apex = item.expect_args(1)[0].lower().strip(".")
                labels = apex.split(".")
                if not apex or any(not label or len(label) > 63 for label in labels):
                    raise item.error(f"invalid apex {item.args[0].text!r}")
            case "headless":
                item.expect_args(0, 0)
                headless = True
            case "fallthrough":
                fallthrough = Fallthrough.parse(item)
            case _:
                raise item.error(f"unknown property '{item.name}'")
    return ExternalConfig(
        zones=zones, apex=apex, ttl=ttl, headless=headless, fallthrough=fallthrough
    )


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    return K8sExternal(parse_config(directive, ctx.zones), ctx, directive=directive)
