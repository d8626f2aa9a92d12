"""Parse ``acl [ZONES...] { ACTION [type QTYPE...] [net SOURCE...] }``."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import dns.rdatatype

from clusterdns.core.plugin import Plugin, SetupContext, parse_zones
from clusterdns.corefile import Directive
from clusterdns.corefile.model import Token
from clusterdns.plugins.acl.handler import Acl, Action, Network, Policy, Rule
from clusterdns.plugins.acl.metrics import metrics_for

ACTIONS = {
    "allow": Action.ALLOW,
    "block": Action.BLOCK,
    "filter": Action.FILTER,
    "drop": Action.DROP,
}
SECTIONS = ("type", "net")


def parse_network(acl: Directive, item: Token, text: str) -> Network:
    """A CIDR, or a single address (a /32 or /128), as (version, network, mask)."""
    try:
        if "/" in text:
            network = ipaddress.ip_network(text, strict=False)
        else:
            address = ipaddress.ip_address(text)
            network = ipaddress.ip_network(f"{address}/{address.max_prefixlen}")
    except ValueError:
        raise acl.error(f"illegal CIDR notation {text!r}", item) from None
    return (network.version, int(network.network_address), int(network.netmask))


def parse_policy(acl: Directive, item: Directive) -> Policy:
    here = Token(item.name, item.file, item.line)
    action = ACTIONS.get(item.name.lower())
    if action is None:
        raise acl.error(
            f"unexpected token {item.name!r}; expect 'allow', 'block', 'filter' or 'drop'", here
        )
    if item.block is not None:
        raise acl.error("unexpected block in a policy", here)
    qtypes: set[int] = set()
    networks: list[Network] = []
    saw_type = saw_net = every_type = every_source = False
    tokens = list(item.args)
    while tokens:
        head = tokens.pop(0)
        section = head.text.lower()
        if section not in SECTIONS:
            raise acl.error(f"unexpected token {head.text!r}; expect 'type | net'", head)
        values = []
        while tokens and tokens[0].text.lower() not in SECTIONS:
            values.append(tokens.pop(0))
        if not values:
            raise acl.error(f"no token specified in {section!r} section", head)
        for token in values:
            if token.text == "*":
                # CoreDNS: '*' means all and ends the section's list.
                if section == "type":
                    every_type = True
                else:
                    every_source = True
                break
            if section == "type":
                try:
                    qtypes.add(int(dns.rdatatype.from_text(token.text)))
                except Exception:
                    raise acl.error(
                        f"unexpected token {token.text!r}; expect legal QTYPE", token
                    ) from None
            else:
                networks.append(parse_network(acl, token, token.text))
        saw_type = saw_type or section == "type"
        saw_net = saw_net or section == "net"
    # No 'type' section means every type, no 'net' section every source.
    return Policy(
        action,
        None if every_type or not saw_type else frozenset(qtypes),
        None if every_source or not saw_net else tuple(networks),
    )


def parse_rule(directive: Directive, block_zones: Sequence[str]) -> Rule:
    zones = parse_zones(directive, block_zones)
    policies = tuple(parse_policy(directive, item) for item in directive.block_items())
    return Rule(zones, policies)


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    # Used several times per server block: every line is one rule, checked in order.
    rules = tuple(parse_rule(directive, ctx.zones) for directive in directives)
    acl = Acl(rules, metrics_for(ctx.process.metrics.registry), server_label=ctx.server_label)
    for directive in ctx.block.directives:
        if directive.name == "view" and directive.args:
            acl.set_view(directive.args[0].text)  # the metrics' view label
    return acl
