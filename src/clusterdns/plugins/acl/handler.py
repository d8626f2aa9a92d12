"""acl's decision: the first policy of the first rule whose zone and policy match wins.

The same decision runs on the fast path (``gate_fast``, possibly on a UDP receive thread:
it only reads) and in the chain (``serve``). Most queries meet no policy that depends on
the client (no rule for their zone, or a first matching policy for their type that
covers every source): then the verdict is the same for everyone and the replies behind
it may be memoised. Otherwise the source address decides and nothing after acl is
memoised for that query (core/fast.py, Gate.PRIVATE), since the reply memo is keyed by
the query's bytes and not by who sent them.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections.abc import Hashable
from typing import Final

import dns.rcode

from clusterdns.core.fast import DROP, PASS, PRIVATE, GateResult, Sinks
from clusterdns.core.plugin import Plugin
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.plugins.acl.metrics import AclMetrics
from clusterdns.wire import Query, error_reply, text_to_wire
from clusterdns.wire.edit import EDE_BLOCKED, EDE_FILTERED, OPTION_EDE, add_option

log = logging.getLogger("clusterdns.plugins.acl")

# (IP version, network as an integer, netmask as an integer)
Network = tuple[int, int, int]
# A client address as (version, integer); None when it cannot be read.
Address = tuple[int, int] | None
_ADDRESS_CACHE_LIMIT: Final = 4096


class Action(enum.Enum):
    NONE = "none"  # no policy matched: the next rule decides
    ALLOW = "allow"
    BLOCK = "block"
    FILTER = "filter"
    DROP = "drop"


# A policy whose verdict needs the client's address.
_DEPENDS: Final = None


class Policy:
    """``ACTION [type QTYPE...] [net SOURCE...]``; None means every type / every source."""

    __slots__ = ("action", "networks", "qtypes")

    def __init__(
        self, action: Action, qtypes: frozenset[int] | None, networks: tuple[Network, ...] | None
    ) -> None:
        self.action = action
        self.qtypes = qtypes
        self.networks = networks

    def covers(self, address: Address) -> bool:
        if self.networks is None:
            return True
        if address is None:
            return False
        version, value = address
        for net_version, network, mask in self.networks:
            if net_version == version and value & mask == network:
                return True
        return False

    def __repr__(self) -> str:
        return f"Policy({self.action.value}, types={self.qtypes}, nets={self.networks})"


class Rule:
    """One ``acl`` directive: its zones and its policies in order."""

    __slots__ = ("_by_type", "_wire_zones", "policies", "zones")

    def __init__(self, zones: tuple[str, ...], policies: tuple[Policy, ...]) -> None:
        self.zones = zones
        self.policies = policies
        self._wire_zones = {text_to_wire(zone): zone for zone in zones}
        # qtype → the action when it is the same for every client, else _DEPENDS.
        self._by_type: dict[int, Action | None] = {}

    def zone_of(self, query: Query) -> str | None:
        """The longest of the rule's zones the question is in (CoreDNS's Zones.Matches)."""
        lower = query.qname_lower
        zones = self._wire_zones
        for offset in query.label_offsets:
            zone = zones.get(lower[offset:])
            if zone is not None:
                return zone
        return None

    def constant(self, qtype: int) -> Action | None:
        """The action for ``qtype`` if no client address changes it, else None."""
        try:
            return self._by_type[qtype]
        except KeyError:
            pass
        action: Action | None = Action.NONE
        for policy in self.policies:
            if policy.qtypes is not None and qtype not in policy.qtypes:
                continue
            action = policy.action if policy.networks is None else _DEPENDS
            break
        if len(self._by_type) < 1024:  # bounded: a query may carry any of 65536 types
            self._by_type[qtype] = action
        return action

    def decide(self, qtype: int, address: Address) -> Action:
        if address is None:
            # CoreDNS blocks what it cannot place.
            return Action.BLOCK
        for policy in self.policies:
            if policy.qtypes is not None and qtype not in policy.qtypes:
                continue
            if policy.covers(address):
                return policy.action
        return Action.NONE


def parse_address(host: str) -> Address:
    """A client address as (version, integer); an IPv4-mapped IPv6 address is IPv4."""
    cut = host.find("%")
    if cut >= 0:
        host = host[:cut]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return (4, int(address.ipv4_mapped))
    return (address.version, int(address))


class Acl(Plugin):
    name = "acl"

    def __init__(self, rules: tuple[Rule, ...], metrics: AclMetrics, *, server_label: str) -> None:
        self.rules = rules
        self.metrics = metrics
        self.server_label = server_label
        self.view = ""
        self._addresses: dict[str, Address] = {}
        self._allowed = metrics.allowed.labels(server_label, self.view)

    # -- the decision ----------------------------------------------------------------------

    def _address(self, host: str) -> Address:
        addresses = self._addresses
        try:
            return addresses[host]
        except KeyError:
            pass
        address = parse_address(host)
        if address is None:
            log.error("acl: blocking request, unable to parse source address %r", host)
        if len(addresses) >= _ADDRESS_CACHE_LIMIT:
            addresses.clear()
        addresses[host] = address
        return address

    def verdict(self, query: Query, host: str) -> tuple[Action, str, bool]:
        """(action, the matched rule's zone, whether the client's address decided it)."""
        qtype = query.qtype
        private = False
        for rule in self.rules:
            zone = rule.zone_of(query)
            if zone is None:
                continue
            action = rule.constant(qtype)
            if action is _DEPENDS:
                private = True
                action = rule.decide(qtype, self._address(host))
            if action is Action.NONE:
                continue
            return action, zone, private
        return Action.NONE, "", private

    def refusal(self, query: Query, action: Action, payload: int) -> bytes:
        """REFUSED (block) or an empty NOERROR (filter), with the RFC 8914 extended error
        Blocked / Filtered when the client speaks EDNS."""
        blocked = action is Action.BLOCK
        edns = query.edns
        wire = error_reply(
            query.data,
            dns.rcode.REFUSED if blocked else dns.rcode.NOERROR,
            question_end=query.question_end,
            edns_do=None if edns is None else edns.do,
            payload=payload,
        )
        if edns is None:
            return wire
        code = EDE_BLOCKED if blocked else EDE_FILTERED
        return add_option(wire, OPTION_EDE, code.to_bytes(2, "big"))

    def _count(self, action: Action, zone: str) -> None:
        metrics = self.metrics
        counter = (
            metrics.blocked
            if action is Action.BLOCK
            else metrics.filtered
            if action is Action.FILTER
            else metrics.dropped
        )
        counter.labels(self.server_label, zone, self.view).inc()

    # -- fast path (core/fast.py FastGate) -------------------------------------------------

    def gate_fast(
        self, query: Query, client: tuple[str, int], limit: int, payload: int
    ) -> GateResult:
        action, zone, private = self.verdict(query, client[0])
        if action is Action.NONE or action is Action.ALLOW:
            # Counted as allowed by the dispatcher when the reply leaves (pass_sinks), or
            # by serve() if the chain ends up answering.
            return PRIVATE if private else PASS
        self._count(action, zone)
        if action is Action.DROP:
            return DROP
        return self.refusal(query, action, payload)

    def set_view(self, view: str) -> None:
        """The name of the block's view, for the metrics' ``view`` label."""
        self.view = view
        self._allowed = self.metrics.allowed.labels(self.server_label, view)

    def pass_sinks(self) -> Sinks:
        key: Hashable = ("acl", id(self))

        def count(hits: int, seconds: float) -> None:
            self._allowed.inc(hits)

        return ((key, count),)

    # -- the chain -------------------------------------------------------------------------

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        action, zone, _ = self.verdict(req.query, req.client[0])
        if action is Action.NONE or action is Action.ALLOW:
            self._allowed.inc()
            return await next_handler(req)
        self._count(action, zone)
        if action is Action.DROP:
            return Reply.dropped(plugin=self.name)
        return Reply.of_wire(
            self.refusal(req.query, action, req.block.settings.max_udp_size), plugin=self.name
        )
