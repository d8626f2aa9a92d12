"""Parse ``forward FROM TO... { ... }`` directives into stanzas."""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence

import dns.rcode

from clusterdns.core.plugin import SetupContext, parse_duration, parse_int
from clusterdns.corefile import Directive
from clusterdns.plugins.forward.handler import Forward, HealthCheck, Policy, Proxy, Stanza
from clusterdns.plugins.forward.metrics import metrics_for
from clusterdns.upstream import Upstream, UpstreamAddress, parse_resolv_conf

MAX_UPSTREAMS = 15
DEFAULT_EXPIRE = 10.0
DEFAULT_CONNECT_ATTEMPTS_PER_UPSTREAM = 2


def _normalize_zone(text: str) -> str:
    zone = text.lower()
    return zone if zone.endswith(".") else zone + "."


def _rcodes(item: Directive) -> frozenset[int]:
    codes: set[int] = set()
    for text in item.expect_args(1):
        try:
            codes.add(int(dns.rcode.from_text(text.upper())))
        except (dns.rcode.UnknownRcode, ValueError):
            raise item.error(f"{text} is not a valid rcode") from None
    return frozenset(codes)


def _tls_context(item: Directive) -> ssl.SSLContext:
    args = item.expect_args(0, 3)
    cafile = args[0] if len(args) == 1 else args[2] if len(args) == 3 else None
    try:
        context = ssl.create_default_context(cafile=cafile)
        if len(args) >= 2:
            context.load_cert_chain(args[0], args[1])
    except (OSError, ssl.SSLError) as err:
        raise item.error(f"cannot load TLS files: {err}") from None
    return context


def _upstream_texts(directive: Directive, targets: list[str]) -> list[str]:
    """TO arguments, with resolv.conf-style files replaced by their nameservers."""
    texts: list[str] = []
    for target in targets:
        try:
            UpstreamAddress.parse(target)
        except ValueError as err:
            if not os.path.isfile(target):
                raise directive.error(str(err)) from None
        else:
            texts.append(target)
            continue
        try:
            servers = parse_resolv_conf(target)
        except OSError as err:
            raise directive.error(f"cannot read {target}: {err}") from None
        if not servers:
            raise directive.error(f"no nameservers found in {target}")
        texts.extend(servers)
    return texts


def parse_stanza(directive: Directive, ctx: SetupContext) -> Stanza:
    args = directive.expect_args(2)
    origin = _normalize_zone(args[0])
    targets = _upstream_texts(directive, args[1:])
    if len(targets) > MAX_UPSTREAMS:
        raise directive.error(f"more than {MAX_UPSTREAMS} TOs configured: {len(targets)}")
    stanza = Stanza(origin=origin, proxies=[])
    max_fails = 2
    expire = DEFAULT_EXPIRE
    max_age = 0.0
    max_idle = 0
    max_connect_attempts: int | None = None
    tls_context: ssl.SSLContext | None = None
    tls_servername: str | None = None
    health = HealthCheck()
    for item in directive.block_items():
        name = item.name
        if name == "except":
            stanza.ignored = tuple(_normalize_zone(z) for z in item.expect_args(1))
        elif name == "force_tcp":
            item.expect_args(0, 0)
            stanza.force_tcp = True
        elif name == "prefer_udp":
            item.expect_args(0, 0)
            stanza.prefer_udp = True
        elif name == "expire":
            expire = parse_duration(item, item.expect_args(1, 1)[0])
        elif name == "max_fails":
            max_fails = parse_int(item, item.expect_args(1, 1)[0], what="max_fails")
        elif name == "max_age":
            max_age = _non_negative_duration(item, "max_age")
        elif name == "max_idle_conns":
            max_idle = parse_int(item, item.expect_args(1, 1)[0], what="max_idle_conns")
        elif name == "read_timeout":
            stanza.try_timeout = _non_negative_duration(item, "read_timeout")
            if stanza.try_timeout <= 0:
                raise item.error("read_timeout must be positive")
        elif name == "max_connect_attempts":
            max_connect_attempts = parse_int(
                item, item.expect_args(1, 1)[0], what="max_connect_attempts", maximum=2**32 - 1
            )
        elif name == "failfast_all_unhealthy_upstreams":
            item.expect_args(0, 0)
            stanza.failfast_all_unhealthy = True
        elif name == "next_on_nodata":
            item.expect_args(0, 0)
            stanza.next_on_nodata = True
        elif name == "tls":
            tls_context = _tls_context(item)
        elif name == "tls_servername":
            tls_servername = item.expect_args(1, 1)[0]
        elif name == "policy":
            value = item.expect_args(1, 1)[0]
            try:
                stanza.policy = Policy(value)
            except ValueError:
                raise item.error(f"unknown policy '{value}'") from None
        elif name == "health_check":
            health = _health_check(item)
        elif name == "max_concurrent":
            stanza.max_concurrent = parse_int(
                item, item.expect_args(1, 1)[0], what="max_concurrent"
            )
        elif name == "failover":
            codes = _rcodes(item)
            if dns.rcode.NOERROR in codes:
                raise item.error("NOERROR cannot be used in failover")
            stanza.failover_rcodes = codes
        elif name == "next":
            stanza.next_rcodes = _rcodes(item)
        else:
            raise item.error(f"unknown property '{name}'")
    if stanza.force_tcp:
        stanza.prefer_udp = False  # CoreDNS: force_tcp takes precedence
    if 0 < max_age < expire:
        raise directive.error(
            f"max_age ({_seconds(max_age)}) must not be less than expire ({_seconds(expire)})"
        )
    # CoreDNS: by default two passes over the upstreams; 0 lifts the cap.
    stanza.max_connect_attempts = (
        DEFAULT_CONNECT_ATTEMPTS_PER_UPSTREAM * len(targets)
        if max_connect_attempts is None
        else max_connect_attempts
    )
    metrics = metrics_for(ctx.process.metrics.registry)
    for text in targets:
        try:
            address = UpstreamAddress.parse(text, default_tls_servername=tls_servername)
            upstream = Upstream(
                address,
                expire=expire,
                tls_context=tls_context,
                max_idle=max_idle,
                max_age=max_age,
            )
        except ValueError as err:
            raise directive.error(str(err)) from None
        stanza.proxies.append(
            Proxy(
                upstream,
                metrics=metrics,
                health=health,
                max_fails=max_fails,
                force_tcp=stanza.force_tcp,
            )
        )
    return stanza


def _non_negative_duration(item: Directive, what: str) -> float:
    value = parse_duration(item, item.expect_args(1, 1)[0])
    if value < 0:
        raise item.error(f"{what} can't be negative")
    return value


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _health_check(item: Directive) -> HealthCheck:
    args = item.expect_args(1, 4)
    health = HealthCheck(interval=parse_duration(item, args[0]))
    rest = args[1:]
    while rest:
        word = rest.pop(0)
        if word == "no_rec":
            health.recursion_desired = False
        elif word == "domain":
            if not rest:
                raise item.error("domain needs a name")
            health.domain = _normalize_zone(rest.pop(0))
        else:
            raise item.error(f"unknown health_check option '{word}'")
    return health


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Forward:
    stanzas = [parse_stanza(directive, ctx) for directive in directives]
    return Forward(stanzas, metrics_for(ctx.process.metrics.registry))
