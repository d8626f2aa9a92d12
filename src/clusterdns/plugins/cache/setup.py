"""Parse ``cache [TTL] [ZONES...] { ... }``."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.core.plugin import SetupContext, only_once, parse_duration, parse_int
from clusterdns.corefile import Directive
from clusterdns.plugins.cache.handler import Cache, CacheConfig
from clusterdns.plugins.cache.metrics import metrics_for

MAX_SERVFAIL_TTL = 300.0
DEFAULT_STALE = 3600.0
MAX_STALE_RECHECK = 300.0  # RFC 8767: should not exceed 5 minutes


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
    seen: set[str] = set()
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
            _serve_stale(item, config)
        elif name == "serve_stale_policy":
            if "serve_stale_policy" in seen:
                raise item.error("serve_stale_policy can only be specified once")
            (policy,) = item.expect_args(1, 1)
            if policy.lower() != "prefer_positive":
                raise item.error(f"invalid serve_stale_policy: {policy}")
            config.prefer_positive = True
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
        seen.add(name)
    return config


def _serve_stale(item: Directive, config: CacheConfig) -> None:
    """``serve_stale [DURATION] [immediate [RESPONSE_TTL [FAILURE_RECHECK]] |
    verify [VERIFY_TIMEOUT [RESPONSE_TTL [FAILURE_RECHECK]]]]`` (CoreDNS 1.14)."""
    values = item.expect_args(0, 5)
    config.stale_up_to = DEFAULT_STALE
    config.verify_stale = False
    config.verify_timeout = 0.0
    config.stale_ttl = 0
    config.stale_recheck = 0.0
    if values:
        config.stale_up_to = _non_negative(item, values[0], "duration for serve_stale")
    if len(values) > 1:
        mode = values[1].lower()
        if mode not in ("immediate", "verify"):
            raise item.error(f"invalid value for serve_stale refresh mode: {values[1]}")
        config.verify_stale = mode == "verify"
    rest = values[2:]
    if config.verify_stale and rest:
        config.verify_timeout = _non_negative(item, rest[0], "timeout for serve_stale verify")
        rest = rest[1:]
    elif len(rest) > 2:
        raise item.error("serve_stale immediate takes at most RESPONSE_TTL and FAILURE_RECHECK")
    if rest:
        ttl = _non_negative(item, rest[0], "response TTL for serve_stale")
        if ttl != int(ttl):
            raise item.error("serve_stale response TTL must be a whole number of seconds")
        if ttl > 2**32 - 1:
            raise item.error("serve_stale response TTL exceeds the DNS TTL range")
        config.stale_ttl = int(ttl)
    if len(rest) > 1:
        recheck = _non_negative(item, rest[1], "failure recheck for serve_stale")
        if recheck > MAX_STALE_RECHECK:
            raise item.error("serve_stale failure recheck cannot exceed 5 minutes")
        config.stale_recheck = recheck


def _non_negative(item: Directive, text: str, what: str) -> float:
    if text.startswith("-"):
        raise item.error(f"invalid negative {what}")
    return parse_duration(item, text)


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Cache:
    directive = only_once(directives)
    config = parse(directive, ctx.zones)
    return Cache(config, metrics_for(ctx.process.metrics.registry), server_label=ctx.server_label)
