"""local: the fixed answers for localhost and the loopback/broadcast reverse zones.

Every answer is a function of the question alone, built on the wire (wire/build.py)
from the same code on the fast path and in the chain, and may be memoised.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Final

from prometheus_client import CollectorRegistry, Counter

from clusterdns.core.fast import SLOW, FastReply, FastResult, Sinks
from clusterdns.core.metrics import once_per_registry
from clusterdns.core.plugin import Plugin
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.wire import Query, text_to_wire
from clusterdns.wire.build import (
    TYPE_A,
    TYPE_AAAA,
    TYPE_NS,
    TYPE_PTR,
    TYPE_SOA,
    Record,
    a_rdata,
    aaaa_rdata,
    build_reply,
    name_rdata,
    soa_rdata,
)
from clusterdns.wire.query import FLAG_QR

TTL: Final = 604800
NOERROR: Final = 0
NXDOMAIN: Final = 3
LOCALHOST: Final = text_to_wire("localhost.")
ZONES: Final = frozenset(
    text_to_wire(zone)
    for zone in ("localhost.", "0.in-addr.arpa.", "127.in-addr.arpa.", "255.in-addr.arpa.")
)
LOOPBACK_PTR: Final = text_to_wire("1.0.0.127.in-addr.arpa.")
_SOA: Final = soa_rdata(LOCALHOST, text_to_wire("root.localhost."), 1, 0, 0, 0, TTL)
# CoreDNS answers with SetReply: QR, no AA.
_FLAGS: Final = FLAG_QR


class LocalMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.localhost = Counter(
            "coredns_local_localhost_requests",
            "Counter of localhost.<domain> requests.",
            registry=registry,
        )


def metrics_for(registry: CollectorRegistry) -> LocalMetrics:
    return once_per_registry(registry, LocalMetrics)


def _soa(owner: bytes) -> Record:
    return (owner, TYPE_SOA, TTL, _SOA)


def local_reply(query: Query, *, legacy_prefix: bool, payload: int) -> tuple[bytes, bool] | None:
    """(the reply, whether it is a localhost special case counted by the metric), or None
    when the question is not a local name."""
    name = query.qname_lower
    offsets = query.label_offsets
    qtype = query.qtype
    # Names under localhost. (RFC 6761 6.3), and the legacy localhost.<domain> form.
    special = len(name) > len(LOCALHOST) and (
        name[offsets[-2] :] == LOCALHOST if len(offsets) > 2 else False
    )
    if not special and legacy_prefix and len(name) > len(LOCALHOST):
        special = name.startswith(LOCALHOST[:-1])
    if special:
        if qtype == TYPE_A:
            return _build(query, payload, answer=[(name, TYPE_A, TTL, a_rdata("127.0.0.1"))]), True
        if qtype == TYPE_AAAA:
            return _build(query, payload, answer=[(name, TYPE_AAAA, TTL, aaaa_rdata("::1"))]), True
        return _build(query, payload, authority=[_soa(name)]), True
    zone: bytes | None = None
    for offset in offsets:
        if name[offset:] in ZONES:
            zone = name[offset:]
            break
    if zone is None:
        return None
    if name == zone:
        if qtype == TYPE_A and name == LOCALHOST:
            return _build(query, payload, answer=[(name, TYPE_A, TTL, a_rdata("127.0.0.1"))]), False
        if qtype == TYPE_AAAA and name == LOCALHOST:
            return _build(query, payload, answer=[(name, TYPE_AAAA, TTL, aaaa_rdata("::1"))]), False
        if qtype == TYPE_SOA:
            return _build(query, payload, answer=[_soa(name)]), False
        if qtype == TYPE_NS:
            return _build(
                query, payload, answer=[(name, TYPE_NS, TTL, name_rdata(LOCALHOST))]
            ), False
        return _build(query, payload, authority=[_soa(name)]), False
    if name == LOOPBACK_PTR:
        if qtype == TYPE_PTR:
            return _build(
                query, payload, answer=[(name, TYPE_PTR, TTL, name_rdata(LOCALHOST))]
            ), False
        return _build(query, payload, authority=[_soa(zone)]), False
    return _build(query, payload, rcode=NXDOMAIN, authority=[_soa(zone)]), False


def _build(
    query: Query,
    payload: int,
    *,
    rcode: int = NOERROR,
    answer: list[Record] | None = None,
    authority: list[Record] | None = None,
) -> bytes:
    # Built without a size limit: the largest answer is one SOA.
    return build_reply(
        query,
        rcode=rcode,
        answer=answer or (),
        authority=authority or (),
        flags=_FLAGS,
        payload=payload,
    )


class Local(Plugin):
    name = "local"

    def __init__(self, *, legacy_prefix: bool, metrics: LocalMetrics) -> None:
        self.legacy_prefix = legacy_prefix
        self.metrics = metrics
        counter = metrics.localhost

        def count(hits: int, seconds: float) -> None:
            counter.inc(hits)

        key: Hashable = ("local", "localhost")
        self._sinks: Sinks = ((key, count),)

    def _answer(self, query: Query, payload: int) -> bytes | None:
        found = local_reply(query, legacy_prefix=self.legacy_prefix, payload=payload)
        if found is None:
            return None
        wire, special = found
        if special:
            self.metrics.localhost.inc()
        return wire

    def answer_fast(self, query: Query, limit: int, payload: int) -> FastResult:
        found = local_reply(query, legacy_prefix=self.legacy_prefix, payload=payload)
        if found is None:
            return None
        wire, special = found
        if len(wire) > limit:
            return SLOW  # never seen: a local answer is a few dozen bytes
        if special:
            self.metrics.localhost.inc()
            return FastReply(wire, sinks=self._sinks)
        return FastReply(wire)

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        wire = self._answer(req.query, req.block.settings.max_udp_size)
        if wire is None:
            return await next_handler(req)
        return Reply.of_wire(wire, plugin=self.name)
