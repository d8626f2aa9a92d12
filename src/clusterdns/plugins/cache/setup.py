"""Parse ``cache [TTL] [ZONES...] { ... }``."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.core.plugin import SetupContext, only_once, parse_duration, parse_int
from clusterdns.corefile import Directive
from clusterdns.plugins.cache.handler import Cache, CacheConfig
from clusterdns.plugins.cache.metrics import metrics_for

MAX_SERVFAIL_TTL = 300.0
DEFAULT_STALE = 3600.0


def _zone(text: str) -> str:
    zone = text.lower()
    return zone if zone.endswith(".") else zone + "."


def _capacity_and_ttls(item: Directive) -> tuple[int, int | None, int | None]:
    args = item.expect_args(1, 3)
    capacity = parse_int(item, args[0], what="capacity")
    ttl = parse_int(item, args[1], what="TTL", minimum=1) if len(args) > 1 else None
    min_ttl = parse_int(item, args[2], what="min TTL") if len(args) > 2 else None
    return capacity, ttl, min_ttl


def parse(directive: Directive, ctx_zones: Sequence[str]) -> CacheConfig:
    config = CacheConfig()
    args = directive.arg_texts()
    if args and args[0].lstrip("-").isdigit():
        max_ttl = parse_int(directive, args[0], what="cache TTL", minimum=1)
        config.success_ttl = config.denial_ttl = max_ttl
        args = args[1:]
    zones = tuple(_zone(arg) for arg in args) or tuple(ctx_zones)
    config.zones = zones
    for item in directive.block_items():
        name = item.name
        if name == "success":
            capacity, ttl, min_ttl = _capacity_and_ttls(item)
            config.success_capacity = capacity
            if ttl is not None:
                config.success_ttl = ttl
            if min_ttl is not None:
                config.success_min_ttl = min_ttl
        elif name == "denial":
            capacity, ttl, min_ttl = _capacity_and_ttls(item)
            config.denial_capacity = capacity
            if ttl is not None:
                config.denial_ttl = ttl
            if min_ttl is not None:
                config.denial_min_ttl = min_ttl
        elif name == "prefetch":
            values = item.expect_args(1, 3)
            config.prefetch = parse_int(item, values[0], what="prefetch amount")
            if len(values) > 1:
                config.prefetch_duration = parse_duration(item, values[1])
            if len(values) > 2:
                text = values[2]
                if not text.endswith("%"):
                    raise item.error(
                        f"last character of percentage should be `%`, but is: {text[-1]!r}"
                    )
                config.prefetch_percentage = parse_int(
                    item, text[:-1], what="percentage", minimum=10, maximum=90
                )
        elif name == "serve_stale":
            values = item.expect_args(0, 2)
            config.stale_up_to = DEFAULT_STALE
            if values:
                config.stale_up_to = parse_duration(item, values[0])
            if len(values) > 1:
                mode = values[1]
                if mode not in ("immediate", "verify"):
                    raise item.error(f"invalid value for serve_stale refresh mode: {mode}")
                config.verify_stale = mode == "verify"
        elif name == "servfail":
            value = parse_duration(item, item.expect_args(1, 1)[0])
            if value > MAX_SERVFAIL_TTL:
                raise item.error("caching SERVFAIL responses over 5 minutes is not permitted")
            config.servfail_ttl = int(value)
        elif name == "disable":
            values = item.expect_args(1)
            kind, disabled = values[0], tuple(_zone(z) for z in values[1:]) or zones
            if kind == "success":
                config.disable_success = disabled
            elif kind == "denial":
                config.disable_denial = disabled
            else:
                raise item.error(f"cannot disable unknown cache type '{kind}'")
        elif name == "keepttl":
            item.expect_args(0, 0)
            config.keepttl = True
        else:
            raise item.error(f"unknown property '{name}'")
    return config


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Cache:
    directive = only_once(directives)
    config = parse(directive, ctx.zones)
    return Cache(config, metrics_for(ctx.process.metrics.registry), server_label=ctx.server_label)
