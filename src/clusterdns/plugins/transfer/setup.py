"""Parse ``transfer [ZONE...] { to ADDRESS...; source ADDRESS }`` (once or more per block)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from clusterdns.core.plugin import Plugin, SetupContext, parse_zones
from clusterdns.corefile import Directive
from clusterdns.plugins.transfer.config import ANYONE, TransferRule
from clusterdns.plugins.transfer.handler import Transfer

DEFAULT_PORT = 53


def normalise(directive: Directive, text: str) -> str:
    """``IP``, ``IP:port``, ``[IPv6]:port`` → ``host:port`` (CoreDNS's parse.HostPort)."""
    host, port = text, str(DEFAULT_PORT)
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (text[end + 1 :] and not text[end + 1 :].startswith(":")):
            raise directive.error(f"must specify an IP address: {text!r}")
        host, rest = text[1:end], text[end + 2 :]
        port = rest or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        raise directive.error(f"must specify an IP address: {text!r}") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise directive.error(f"invalid port in {text!r}")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_rule(directive: Directive, block_zones: Sequence[str]) -> TransferRule:
    zones = parse_zones(directive, block_zones)
    to: list[str] = []
    source: str | None = None
    for item in directive.block_items():
        item.no_block()
        match item.name:
            case "to":
                for text in item.expect_args(1):
                    to.append(ANYONE if text == ANYONE else normalise(item, text))
            case "source":
                (text,) = item.expect_args(1, 1)
                if source is not None:
                    raise item.error("source already specified")
                try:
                    source = str(ipaddress.ip_address(text))
                except ValueError:
                    raise item.error(f"invalid source address {text!r}") from None
            case _:
                raise item.error(f"unknown property {item.name!r}")
    if not to:
        raise directive.error("'to' is required")
    return TransferRule(zones=zones, to=tuple(to), source=source)


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    return Transfer([parse_rule(directive, ctx.zones) for directive in directives], ctx)
