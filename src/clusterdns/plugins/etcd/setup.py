"""Parse ``etcd [ZONES...] { ... }`` and wire the plugin to a watched copy of the keys."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from clusterdns.core.fallthrough import Fallthrough
from clusterdns.core.plugin import Plugin, SetupContext, only_once, parse_duration, parse_zones
from clusterdns.corefile import CorefileError, Directive
from clusterdns.plugins.etcd.config import EtcdConfig
from clusterdns.plugins.etcd.handler import Etcd
from clusterdns.plugins.etcd.metrics import register as register_metrics
from clusterdns.plugins.etcd.records import normalise_path

log = logging.getLogger("clusterdns.plugins.etcd")

IGNORED = ("stubzones", "debug", "upstream")  # CoreDNS still parses these, to no effect
MAX_TTL = 0xFFFFFFFF


def parse_ttl(option: Directive, text: str) -> int:
    """min-lease-ttl/max-lease-ttl: bare seconds or a Go duration, whole seconds kept."""
    if text.startswith("-"):
        raise option.error(f"invalid {option.name} value {text!r}: TTL must be non-negative")
    seconds = parse_duration(option, text)
    if not math.isfinite(seconds) or seconds > MAX_TTL:
        raise option.error(f"invalid {option.name} value {text!r}: maximum is {MAX_TTL} seconds")
    return int(seconds)


def endpoint_url(option: Directive, text: str) -> str:
    if "://" not in text:
        return "http://" + text  # etcd's clients take host:port too
    if not text.startswith(("http://", "https://")):
        raise option.error(f"endpoint must be an http:// or https:// URL, got {text!r}")
    return text


def parse_config(directive: Directive, ctx_zones: Sequence[str]) -> EtcdConfig:
    """The options of one ``etcd`` directive; CorefileError naming file:line on misuse
    (``Corefile:5: etcd: credentials requires 2 arguments, username and password``)."""
    try:
        return _parse_config(directive, ctx_zones)
    except CorefileError as err:
        if err.message.startswith(f"{directive.name}: "):
            raise
        raise CorefileError(err.file, err.line, f"{directive.name}: {err.message}") from None


def _parse_config(directive: Directive, ctx_zones: Sequence[str]) -> EtcdConfig:
    zones = parse_zones(directive, ctx_zones)
    path = "/skydns"
    endpoints: tuple[str, ...] = ("http://localhost:2379",)
    credentials: tuple[str, str] | None = None
    tls: tuple[str | None, str | None, str | None] | None = None
    min_lease, max_lease = 30, 86400
    fallthrough = Fallthrough()
    for option in directive.block_items():
        option.no_block()
        match option.name:
            case name if name in IGNORED:
                log.warning("etcd: %s:%d: %s is ignored", option.file, option.line, name)
            case "fallthrough":
                fallthrough = Fallthrough.parse(option)
            case "path":
                (text,) = option.expect_args(1, 1)
                path = normalise_path(text)
            case "endpoint":
                endpoints = tuple(endpoint_url(option, url) for url in option.expect_args(1))
            case "credentials":
                args = option.expect_args(1)
                if len(args) != 2:
                    raise CorefileError(
                        option.file,
                        option.line,
                        "credentials requires 2 arguments, username and password",
                    )
                credentials = (args[0], args[1])
            case "tls":
                args = option.expect_args(0, 3)
                # CoreDNS's order: [CERT KEY] [CACERT]: one argument is the CA.
                if len(args) == 1:
                    tls = (None, None, args[0])
                elif len(args) >= 2:
                    tls = (args[0], args[1], args[2] if len(args) == 3 else None)
                else:
                    tls = (None, None, None)
            case "min-lease-ttl" | "max-lease-ttl":
                (text,) = option.expect_args(1, 1)
                # 0 means "the default", as in CoreDNS.
                if option.name == "min-lease-ttl":
                    min_lease = parse_ttl(option, text) or 30
                else:
                    max_lease = parse_ttl(option, text) or 86400
            case _:
                raise CorefileError(option.file, option.line, f"unknown property '{option.name}'")
    return EtcdConfig(
        zones=zones,
        path=path,
        endpoints=endpoints,
        credentials=credentials,
        tls=tls,
        min_lease_ttl=min_lease,
        max_lease_ttl=max_lease,
        fallthrough=fallthrough,
    )


def build(config: EtcdConfig) -> Etcd:
    """The plugin with its client and store (nothing connects before start())."""
    from clusterdns.sources.etcd.client import EtcdClient, TLSConfig
    from clusterdns.sources.etcd.store import EtcdStore

    tls = None if config.tls is None else TLSConfig(*config.tls)
    client = EtcdClient(config.endpoints, credentials=config.credentials, tls=tls)
    store = EtcdStore(client, config.prefix)
    return Etcd(config, store, client=client)


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    config = parse_config(directive, ctx.zones)
    register_metrics(ctx.process, ctx.process.metrics.registry)
    return build(config)
