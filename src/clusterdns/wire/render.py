"""Reply encoding: error replies by hand, dnspython messages with per-record
truncation, and precomputed answer templates patched per query.

Truncation follows miekg/dns (what CoreDNS uses): records are kept in order
(answer, authority, additional) while they fit, and TC is set when any was
dropped. dnspython's own ``prefer_truncation`` drops whole RRsets, so it is
not used.
"""

from __future__ import annotations

import struct
from typing import Final

import dns.exception
import dns.message
import dns.name
import dns.rdataset
import dns.renderer
import dns.rrset

from clusterdns.wire.query import (
    EDNS_DO,
    FLAG_AA,
    FLAG_CD,
    FLAG_QR,
    FLAG_RD,
    FLAG_TC,
    HEADER,
    TYPE_OPT,
    Query,
)

_OPT_FIXED: Final = struct.Struct("!BHHIH")
_OPT_LEN: Final = 11
_FLAGS_AND_COUNTS: Final = struct.Struct("!HH")


def opt_record(payload: int, rcode: int, do: bool) -> bytes:
    """An OPT RR advertising ``payload`` with the extended bits of ``rcode``."""
    ttl = ((rcode >> 4) & 0xFF) << 24
    if do:
        ttl |= EDNS_DO
    return _OPT_FIXED.pack(0, TYPE_OPT, payload, ttl, 0)


def reply_limit(query: Query, *, tcp: bool, max_udp: int) -> int:
    """How many bytes the reply to ``query`` may take on this transport."""
    return limit_for(tcp, None if query.edns is None else query.edns.payload, max_udp)


def limit_for(tcp: bool, payload: int | None, max_udp: int) -> int:
    """reply_limit() from the query's EDNS payload (None: no OPT record)."""
    if tcp:
        return 65535
    if payload is None:
        return 512
    return max(512, min(payload, max_udp))


def error_reply(
    data: bytes,
    rcode: int,
    *,
    question_end: int,
    edns_do: bool | None,
    payload: int,
) -> bytes:
    """A reply carrying only ``rcode``, built from the raw query bytes.

    ``question_end`` 0 means no question is echoed (it could not be read).
    ``edns_do`` None means the query had no OPT, so the reply has none either
    (RFC 6891 6.1.1); extended rcodes such as BADVERS need one.
    """
    msg_id, flags = struct.unpack_from("!HH", data)
    # Keep opcode, RD and CD from the query; set QR and the rcode's low bits.
    out_flags = FLAG_QR | (flags & (0x7800 | FLAG_RD | FLAG_CD)) | (rcode & 0xF)
    question = data[12:question_end] if question_end else b""
    arcount = 0 if edns_do is None else 1
    head = HEADER.pack(msg_id, out_flags, 1 if question else 0, 0, 0, arcount)
    if edns_do is None:
        return head + question
    return head + question + opt_record(payload, rcode, edns_do)


def render_message(
    message: dns.message.Message,
    query: Query,
    *,
    limit: int,
    payload: int,
) -> bytes:
    """Encode ``message`` as the reply to ``query`` within ``limit`` bytes.

    The ID, RD and CD come from the query; EDNS mirrors the query's (DO
    included, which dnspython's make_response drops). Records that do not
    fit are dropped from the end and TC is set.
    """
    rcode = message.rcode()
    flags = (message.flags & ~0x000F & ~(FLAG_RD | FLAG_CD)) | FLAG_QR
    flags |= query.flags & (FLAG_RD | FLAG_CD)
    flags |= rcode & 0xF
    edns = query.edns
    opt = opt_record(payload, rcode, edns.do) if edns is not None else b""
    renderer = dns.renderer.Renderer(query.id, flags, limit - len(opt))
    for question in message.question:
        renderer.add_question(question.name, question.rdtype, question.rdclass)
    truncated = False
    for section, rrsets in (
        (dns.renderer.ANSWER, message.answer),
        (dns.renderer.AUTHORITY, message.authority),
        (dns.renderer.ADDITIONAL, message.additional),
    ):
        for rrset in rrsets:
            if truncated:
                break
            try:
                # Keep record order: dnspython shuffles by default, loadbalance rotates on purpose.
                renderer.add_rrset(section, rrset, want_shuffle=False)
                continue
            except dns.exception.TooBig:
                pass
            # Whole RRset does not fit: add its records one at a time.
            for rdata in rrset:
                single = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
                single.update_ttl(rrset.ttl)
                single.add(rdata)
                try:
                    renderer.add_rrset(section, single, want_shuffle=False)
                except dns.exception.TooBig:
                    truncated = True
                    break
    renderer.write_header()
    wire = renderer.get_wire()
    if truncated:
        wire = wire[:2] + struct.pack("!H", flags | FLAG_TC) + wire[4:]
    if opt:
        arcount = struct.unpack_from("!H", wire, 10)[0] + 1
        wire = wire[:10] + struct.pack("!H", arcount) + wire[12:] + opt
    return bytes(wire)


class AnswerTemplate:
    """A complete reply encoded once when the data changed, served many times.

    ``wire`` has ID 0, the question name in lower case, no OPT record, and
    every owner name that equals the question compressed to offset 12, so
    copying the client's question bytes in restores its letter case
    everywhere (0x20) at no cost.
    """

    __slots__ = ("ancount", "body", "flags", "head_counts", "rcode", "wire")

    def __init__(self, wire: bytes, question_end: int) -> None:
        self.wire = wire
        _, self.flags, _, self.ancount, _, _ = HEADER.unpack_from(wire)
        self.rcode = self.flags & 0xF
        self.head_counts = wire[4:12]
        self.body = wire[question_end:]

    @classmethod
    def from_message(cls, message: dns.message.Message) -> AnswerTemplate:
        """Build a template from a reply whose question is in lower case."""
        message.id = 0
        wire = message.to_wire(max_size=65535, want_shuffle=False)
        question_end = 12
        for question in message.question:
            question_end += len(question.name.to_wire() or b"") + 4
        return cls(wire, question_end)


def render_template(
    template: AnswerTemplate,
    query: Query,
    *,
    limit: int,
    payload: int,
) -> bytes | None:
    """Patch a template into the reply for ``query``; None if it must be truncated.

    The caller falls back to :func:`render_message` on None, so the rare
    oversized answer is truncated record by record like any other.
    """
    flags = template.flags | (query.flags & (FLAG_RD | FLAG_CD))
    edns = query.edns
    if edns is None:
        size = query.question_end + len(template.body)
        if size > limit:
            return None
        return (
            _FLAGS_AND_COUNTS.pack(query.id, flags)
            + template.head_counts
            + query.data[12 : query.question_end]
            + template.body
        )
    size = query.question_end + len(template.body) + _OPT_LEN
    if size > limit:
        return None
    counts = template.head_counts
    arcount = ((counts[6] << 8) | counts[7]) + 1
    return b"".join(
        (
            _FLAGS_AND_COUNTS.pack(query.id, flags),
            counts[:6],
            arcount.to_bytes(2, "big"),
            query.data[12 : query.question_end],
            template.body,
            opt_record(payload, template.rcode, edns.do),
        )
    )


__all__ = [
    "FLAG_AA",
    "AnswerTemplate",
    "error_reply",
    "limit_for",
    "opt_record",
    "render_message",
    "render_template",
    "reply_limit",
]
