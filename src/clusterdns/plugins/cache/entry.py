"""Cached replies kept as wire bytes, patched per hit (ID, question case, TTLs, EDNS).

A reply is walked once when it is stored; every hit afterwards is a header pack
and a ``bytes.join`` of the stored chunks around the TTL fields. No dnspython.
"""

from __future__ import annotations

import enum
import math
import struct
from typing import Final

from clusterdns.core.fast import VersionedRecords
from clusterdns.wire import FormError, Query, skip_name
from clusterdns.wire.query import FLAG_CD, FLAG_RD, FLAG_TC, TYPE_OPT
from clusterdns.wire.query import HEADER as _HEADER
from clusterdns.wire.query import RR_FIXED as _RR_FIXED
from clusterdns.wire.query import TYPE_CLASS as _TYPE_CLASS
from clusterdns.wire.render import opt_record

_U32: Final = struct.Struct("!I")

TYPE_NS: Final = 2
TYPE_SOA: Final = 6
RCODE_NOERROR: Final = 0
RCODE_SERVFAIL: Final = 2
RCODE_NXDOMAIN: Final = 3
# CoreDNS's dnsutil.MinimalDefaultTTL: used when a reply carries no TTL to go by.
DEFAULT_TTL: Final = 5


class Kind(enum.Enum):
    SUCCESS = "success"
    DENIAL = "denial"
    SERVFAIL = "servfail"  # kept in the denial cache, for the servfail duration


class WalkError(Exception):
    """The reply cannot be cached byte-for-byte (malformed, or an OPT that is not last)."""


def _skip_name(data: bytes, pos: int) -> int:
    try:
        return skip_name(data, pos)
    except FormError as err:
        raise WalkError(str(err)) from None


class ParsedReply:
    """What caching needs to know about one reply, found by a single walk."""

    __slots__ = (
        "an",
        "ar",
        "body",
        "flags",
        "has_ns",
        "min_ttl",
        "ns",
        "qclass",
        "qname",
        "qtype",
        "rcode",
        "soa_ttl",
        "ttl_offsets",
        "ttls",
    )

    def __init__(self, wire: bytes) -> None:
        if len(wire) < 12:
            raise WalkError("shorter than a header")
        _, flags, qdcount, an, ns, ar = _HEADER.unpack_from(wire)
        if qdcount != 1:
            raise WalkError("not exactly one question")
        self.flags = flags
        self.rcode = flags & 0xF
        name_end = _skip_name(wire, 12)
        if name_end - 12 < 1 or wire[name_end - 1] != 0:
            raise WalkError("compressed question name")
        question_end = name_end + 4
        if question_end > len(wire):
            raise WalkError("question runs past the end")
        self.qname = wire[12:name_end].lower()
        self.qtype, self.qclass = _TYPE_CLASS.unpack_from(wire, name_end)
        pos = question_end
        offsets: list[int] = []
        ttls: list[int] = []
        soa_ttl: int | None = None
        has_ns = False
        opt_span: tuple[int, int] | None = None
        total = an + ns + ar
        for index in range(total):
            start = pos
            pos = _skip_name(wire, pos)
            if pos + 10 > len(wire):
                raise WalkError("record header runs past the end")
            rtype, _, ttl, rdlength = _RR_FIXED.unpack_from(wire, pos)
            rdata = pos + 10
            end = rdata + rdlength
            if end > len(wire):
                raise WalkError("record data runs past the end")
            if rtype == TYPE_OPT:
                if index != total - 1 or opt_span is not None:
                    raise WalkError("OPT record is not the last record")
                if ttl >> 24:
                    raise WalkError("extended rcode")
                opt_span = (start, end)
            else:
                offsets.append(pos + 4 - question_end)
                ttls.append(ttl)
                if an <= index < an + ns:
                    if rtype == TYPE_SOA and rdlength >= 22:
                        (minimum,) = _U32.unpack_from(wire, end - 4)
                        soa_ttl = min(ttl, minimum) if soa_ttl is None else soa_ttl
                    elif rtype == TYPE_NS:
                        has_ns = True
            pos = end
        if opt_span is not None:
            ar -= 1
            body = wire[question_end : opt_span[0]] + wire[opt_span[1] : pos]
        else:
            body = wire[question_end:pos]
        self.an, self.ns, self.ar = an, ns, ar
        self.body = body
        self.ttl_offsets = tuple(offsets)
        self.ttls = tuple(ttls)
        self.min_ttl = min(ttls) if ttls else None
        self.soa_ttl = soa_ttl
        self.has_ns = has_ns

    def kind(self) -> Kind | None:
        """CoreDNS's response.Typify, reduced to what the cache stores (None: not cached)."""
        if self.flags & FLAG_TC:
            return None
        if self.rcode == RCODE_NOERROR:
            if self.an:
                return Kind.SUCCESS
            if self.soa_ttl is None and self.has_ns:
                return Kind.SUCCESS  # a referral (CoreDNS's Delegation)
            return Kind.DENIAL  # NODATA
        if self.rcode == RCODE_NXDOMAIN:
            return Kind.DENIAL
        if self.rcode == RCODE_SERVFAIL:
            return Kind.SERVFAIL
        return None

    def message_ttl(self, kind: Kind) -> int:
        """CoreDNS's dnsutil.MinimalTTL: SOA-based for denials, the smallest TTL otherwise."""
        if kind is Kind.DENIAL:
            return DEFAULT_TTL if self.soa_ttl is None else self.soa_ttl
        return DEFAULT_TTL if self.min_ttl is None else self.min_ttl


class CachedAnswer:
    """One stored reply: body chunks split around every TTL field, plus its bookkeeping.

    ``generation``/``owner`` stamp the record plugin that owned the name when it was
    stored; a hit whose owner has moved on is a miss.
    """

    __slots__ = (
        "an",
        "ar",
        "body",
        "chunks",
        "flags",
        "freq_hits",
        "freq_start",
        "generation",
        "kind",
        "ns",
        "origin",
        "owner",
        "rcode",
        "refresh_failed",
        "stored",
        "ttl",
    )

    def __init__(
        self,
        parsed: ParsedReply,
        *,
        kind: Kind,
        ttl: int,
        stored: float,
        owner: tuple[VersionedRecords, ...] | None,
        generation: tuple[int, ...] | None,
    ) -> None:
        self.kind = kind
        self.ttl = ttl
        self.stored = stored
        self.owner = owner
        self.generation = generation
        # RD and CD are the client's: taken from each query when rendering.
        self.flags = parsed.flags & ~(FLAG_RD | FLAG_CD)
        self.rcode = parsed.rcode
        self.an, self.ns, self.ar = parsed.an, parsed.ns, parsed.ar
        body = parsed.body
        self.body = body
        chunks: list[bytes] = []
        previous = 0
        for offset in parsed.ttl_offsets:
            chunks.append(body[previous:offset])
            previous = offset + 4
        chunks.append(body[previous:])
        self.chunks = tuple(chunks)
        self.freq_hits = 0
        self.freq_start = stored
        self.origin = ""  # the plugin whose reply this is (for introspection)
        # When a refresh of this (stale) entry last failed (serve_stale's FAILURE_RECHECK).
        self.refresh_failed = -math.inf

    def remaining(self, now: float) -> int:
        """Seconds of TTL left (CoreDNS truncates the elapsed time to whole seconds)."""
        return self.ttl - int(now - self.stored)

    def stale(self) -> bool:
        """Whether a record plugin that owned the name has changed its data since."""
        owners = self.owner
        if owners is None:
            return False
        if len(owners) == 1:
            return (owners[0].generation,) != self.generation
        return tuple(owner.generation for owner in owners) != self.generation

    def render(self, query: Query, ttl: int | None, payload: int) -> bytes:
        """The reply to ``query``: its ID, RD/CD, question bytes (letter case) and EDNS.

        Every TTL is set to ``ttl`` as CoreDNS does; None keeps the stored TTLs (keepttl).
        """
        body = self.body if ttl is None else _U32.pack(ttl if ttl > 0 else 0).join(self.chunks)
        flags = self.flags | (query.flags & (FLAG_RD | FLAG_CD))
        edns = query.edns
        question = query.data[12 : query.question_end]
        if edns is None:
            return _HEADER.pack(query.id, flags, 1, self.an, self.ns, self.ar) + question + body
        return b"".join(
            (
                _HEADER.pack(query.id, flags, 1, self.an, self.ns, self.ar + 1),
                question,
                body,
                opt_record(payload, self.rcode, edns.do),
            )
        )
